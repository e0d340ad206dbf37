package agent

import (
	"testing"

	"github.com/berth-dev/berth/eviction"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// TestAdmissionUnderPressure: the eviction manager's verdict comes first (before maxPods), with
// its reason and message; a terminal pod is never refused for pressure.
func TestAdmissionUnderPressure(t *testing.T) {
	a := newAdmitter(1, func() *v1.Node { return nil })
	a.pressure = func(p *v1.Pod) *eviction.AdmitError {
		if p.Name == "refused" {
			return &eviction.AdmitError{Reason: "Evicted", Message: "The node had condition: [MemoryPressure]. "}
		}
		return nil
	}
	running := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "running", UID: "1"}}
	if err := a.admit(running); err != nil {
		t.Fatal(err)
	}
	refused := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "refused", UID: "2"}}
	if err := a.admit(refused); err == nil || err.reason != "Evicted" || err.message != "The node had condition: [MemoryPressure]. " {
		t.Errorf("admit under pressure: %v", err)
	}
	done := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "refused", UID: "3"}, Status: v1.PodStatus{Phase: v1.PodSucceeded}}
	if err := a.admit(done); err != nil {
		t.Errorf("terminal pod refused: %v", err)
	}
	// A pod that went terminal frees its room once refreshed.
	other := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", UID: "4"}}
	if err := a.admit(other); err == nil || err.reason != "OutOfpods" {
		t.Fatalf("second pod with maxPods 1: %v", err)
	}
	failed := running.DeepCopy()
	failed.Status.Phase = v1.PodFailed
	a.refresh(failed)
	if err := a.admit(other); err != nil {
		t.Errorf("after the first pod failed: %v", err)
	}
}
