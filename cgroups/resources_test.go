package cgroups

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func u64(v uint64) *uint64 { return &v }
func i64(v int64) *int64   { return &v }

func sidecar(c v1.Container) v1.Container {
	always := v1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

// TestPodResourceConfig follows the kubelet's pod cgroup rules: shares from the effective request,
// quota and memory only when every container has the limit, BestEffort shares 2, pids from
// podPidsLimit.
func TestPodResourceConfig(t *testing.T) {
	tests := []struct {
		name  string
		init  []v1.Container
		apps  []v1.Container
		pids  int64
		want  string
		class v1.PodQOSClass
	}{
		{"best effort", nil, []v1.Container{ctr(nil, nil)}, -1, "cpu.shares=2", v1.PodQOSBestEffort},
		{"best effort with pids limit", nil, []v1.Container{ctr(nil, nil)}, 100, "cpu.shares=2 pids=100", v1.PodQOSBestEffort},
		{"guaranteed", nil, []v1.Container{ctr(nil, res("cpu", "250m", "memory", "64Mi"))}, -1,
			"cpu.shares=256 cpu.quota=25000 cpu.period=100000 memory=67108864", v1.PodQOSGuaranteed},
		{"guaranteed, two containers add up", nil, []v1.Container{ctr(nil, res("cpu", "1", "memory", "1Gi")), ctr(nil, res("cpu", "500m", "memory", "512Mi"))}, 0,
			"cpu.shares=1536 cpu.quota=150000 cpu.period=100000 memory=1610612736", v1.PodQOSGuaranteed},
		{"burstable with all limits", nil, []v1.Container{ctr(res("cpu", "100m", "memory", "32Mi"), res("cpu", "300m", "memory", "96Mi"))}, 50,
			"cpu.shares=102 cpu.quota=30000 cpu.period=100000 memory=100663296 pids=50", v1.PodQOSBurstable},
		{"burstable, one container without limits: no pod limits", nil,
			[]v1.Container{ctr(res("cpu", "100m"), res("cpu", "300m", "memory", "96Mi")), ctr(res("cpu", "50m"), nil)}, -1,
			"cpu.shares=153", v1.PodQOSBurstable},
		{"burstable, memory limits everywhere, cpu not", nil,
			[]v1.Container{ctr(res("cpu", "100m"), res("memory", "96Mi")), ctr(nil, res("memory", "32Mi"))}, -1,
			"cpu.shares=102 memory=134217728", v1.PodQOSBurstable},
		{"an init container's larger request wins", []v1.Container{ctr(res("cpu", "2"), nil)},
			[]v1.Container{ctr(res("cpu", "500m"), nil)}, -1, "cpu.shares=2048", v1.PodQOSBurstable},
		{"an init container without limits spoils the pod's limits", []v1.Container{ctr(nil, nil)},
			[]v1.Container{ctr(res("cpu", "1"), res("cpu", "1", "memory", "1Gi"))}, -1, "cpu.shares=1024", v1.PodQOSBurstable},
		{"sidecars add to the apps; a later init container runs beside the earlier sidecar",
			[]v1.Container{sidecar(ctr(res("cpu", "200m"), nil)), ctr(res("cpu", "1"), nil)},
			[]v1.Container{ctr(res("cpu", "300m"), nil)}, -1,
			"cpu.shares=1228", v1.PodQOSBurstable}, // max(200m+1, 200m+300m) = 1200m
		{"limits without requests are requests (API defaulting)", nil,
			[]v1.Container{ctr(nil, res("cpu", "500m", "memory", "64Mi")), ctr(res("cpu", "100m"), nil)}, -1,
			"cpu.shares=614", v1.PodQOSBurstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{InitContainers: tt.init, Containers: tt.apps}}
			if got := QOSClass(withDefaultedRequests(pod)); got != tt.class {
				t.Fatalf("class %s, want %s", got, tt.class)
			}
			if got := PodResourceConfig(pod, tt.pids).String(); got != tt.want {
				t.Errorf("PodResourceConfig = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPodResourceConfigOverhead(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{
		Containers: []v1.Container{ctr(nil, res("cpu", "1", "memory", "1Gi"))},
		Overhead:   res("cpu", "250m", "memory", "120Mi"),
	}}
	if got, want := PodResourceConfig(pod, -1).String(), "cpu.shares=1280 cpu.quota=125000 cpu.period=100000 memory=1199570944"; got != want {
		t.Errorf("with overhead: %q, want %q", got, want)
	}
}

func TestNodeResourceConfig(t *testing.T) {
	got := NodeResourceConfig(res("cpu", "1500m", "memory", "4Gi", "pid", "31768", "ephemeral-storage", "10Gi")).String()
	if want := "cpu.shares=1536 memory=4294967296 pids=31768"; got != want {
		t.Errorf("NodeResourceConfig = %q, want %q", got, want)
	}
}
