package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func hashTestContainer() *v1.Container {
	return &v1.Container{
		Name:    "web",
		Image:   "nginx:1.27",
		Command: []string{"nginx", "-g", "daemon off;"},
		Env:     []v1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
		Ports:   []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
		Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("128Mi"), v1.ResourceCPU: resource.MustParse("1")},
		},
	}
}

func TestContainerHashStable(t *testing.T) {
	a, b := hashTestContainer(), hashTestContainer()
	ha, hb := ContainerHash(a), ContainerHash(b)
	if ha != hb {
		t.Fatalf("same spec hashed differently: %s vs %s", ha, hb)
	}
	if len(ha) != 16 {
		t.Errorf("hash %q: want 16 hex digits", ha)
	}
	// Hashing many times (map iteration order varies between runs) gives the same result.
	for range 50 {
		if h := ContainerHash(hashTestContainer()); h != ha {
			t.Fatalf("hash changed between calls: %s vs %s", h, ha)
		}
	}
}

// TestContainerHashGolden pins the hash of a fixed spec: it must not change across processes,
// releases or restarts, or every container on a node would be replaced after an upgrade.
func TestContainerHashGolden(t *testing.T) {
	c := &v1.Container{Name: "app", Image: "busybox:1.36"}
	const want = "51b5fe882a1f319b" // FNV-64a of {"name":"app","image":"busybox:1.36","resources":{}}
	if got := ContainerHash(c); got != want {
		t.Fatalf("ContainerHash(%s) = %s, want %s (the hash must stay stable)", c.Name, got, want)
	}
}

func TestContainerHashChanges(t *testing.T) {
	base := ContainerHash(hashTestContainer())
	tests := []struct {
		name   string
		mutate func(c *v1.Container)
	}{
		{"image", func(c *v1.Container) { c.Image = "nginx:1.28" }},
		{"command", func(c *v1.Container) { c.Command = append(c.Command, "-x") }},
		{"env value", func(c *v1.Container) { c.Env[1].Value = "3" }},
		{"env order", func(c *v1.Container) { c.Env[0], c.Env[1] = c.Env[1], c.Env[0] }},
		{"memory limit", func(c *v1.Container) { c.Resources.Limits[v1.ResourceMemory] = resource.MustParse("256Mi") }},
		{"host port", func(c *v1.Container) { c.Ports[0].HostPort = 8081 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := hashTestContainer()
			tt.mutate(c)
			if h := ContainerHash(c); h == base {
				t.Errorf("hash did not change after changing %s", tt.name)
			}
		})
	}
}
