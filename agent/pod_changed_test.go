package agent

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodChanged(t *testing.T) {
	base := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "1", Labels: map[string]string{"a": "1"}},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
		Status:     v1.PodStatus{Phase: v1.PodRunning},
	}
	now := metav1.Now()
	tests := []struct {
		name   string
		mutate func(*v1.Pod)
		want   bool
	}{
		{"same object", nil, false},
		{"only resourceVersion and status details (Berth's own patch)", func(p *v1.Pod) {
			p.ResourceVersion = "2"
			p.Status.PodIP = "10.0.0.1"
			p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
		}, false},
		{"phase set by someone else", func(p *v1.Pod) { p.Status.Phase = v1.PodFailed }, true},
		{"image changed", func(p *v1.Pod) { p.Spec.Containers[0].Image = "busybox:2" }, true},
		{"label changed (downward API)", func(p *v1.Pod) { p.Labels = map[string]string{"a": "2"} }, true},
		{"annotation added", func(p *v1.Pod) { p.Annotations = map[string]string{"x": "y"} }, true},
		{"deletion started", func(p *v1.Pod) { p.DeletionTimestamp = &now }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			if tt.mutate != nil {
				p = base.DeepCopy()
				tt.mutate(p)
			}
			if got := podChanged(base, p); got != tt.want {
				t.Errorf("podChanged = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDeletingPodGetsNoSecondWorker: a new version of a pod that is already terminating for its
// deletion does not queue a replacement worker (which would delete the API pod a second time).
func TestDeletingPodGetsNoSecondWorker(t *testing.T) {
	n := newFakeNode(t, nil)
	var m *podWorkers
	for deadline := time.Now().Add(5 * time.Second); m == nil; time.Sleep(5 * time.Millisecond) {
		n.agent.mu.Lock()
		m = n.agent.workers
		n.agent.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the agent did not start")
		}
	}
	now := metav1.Now()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1", DeletionTimestamp: &now},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}
	m.mu.Lock()
	block := make(chan struct{}) // keep the first worker from starting, so it is still terminating
	w := newPodWorker(m, pod.UID, pod)
	w.waitFor = block
	m.start(w)
	m.mu.Unlock()
	m.remove(pod.UID)
	again := pod.DeepCopy()
	again.ResourceVersion = "2"
	m.update(again)
	m.mu.Lock()
	got := m.workers[pod.UID]
	m.mu.Unlock()
	if got != w {
		t.Fatalf("a second worker was queued behind the terminating one")
	}
	close(block)
}
