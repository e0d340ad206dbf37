package agent

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// TestPodRequestWithSidecars: sidecars add to the app containers and to every regular init
// container started after them.
func TestPodRequestWithSidecars(t *testing.T) {
	c := func(name, cpu string, sidecar bool) v1.Container {
		ct := v1.Container{Name: name, Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}}
		if sidecar {
			ct.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
		}
		return ct
	}
	tests := []struct {
		name string
		init []v1.Container
		want string
	}{
		{"no init", nil, "300m"},
		{"big regular init", []v1.Container{c("i", "1", false)}, "1"},
		{"sidecar adds to the apps", []v1.Container{c("s", "200m", true)}, "500m"},
		{"init after a sidecar", []v1.Container{c("s", "200m", true), c("i", "1", false)}, "1200m"},
		{"init before a sidecar", []v1.Container{c("i", "1", false), c("s", "200m", true)}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1.Pod{Spec: v1.PodSpec{InitContainers: tt.init, Containers: []v1.Container{c("a", "100m", false), c("b", "200m", false)}}}
			got := podRequest(p, v1.ResourceCPU)
			if want := resource.MustParse(tt.want); got.Cmp(want) != 0 {
				t.Errorf("podRequest = %s, want %s", got.String(), tt.want)
			}
		})
	}
}
