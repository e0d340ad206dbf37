package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth/eviction"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// TestEvictPod: an evicted pod is stopped with the eviction's grace period (not its own), its
// sandbox stopped, and it is reported Failed/Evicted with a DisruptionTarget condition, for good:
// never restarted, no longer active, not evicted twice.
func TestEvictPod(t *testing.T) {
	h := newWorkersHarness(t)
	a := &Agent{cfg: Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: h.clock}, store: h.store, workers: h.workers}
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hog", UID: "hog-uid"},
		Spec: v1.PodSpec{
			RestartPolicy:                 v1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers:                    []v1.Container{{Name: "app", Image: "busybox", ImagePullPolicy: v1.PullIfNotPresent}},
		},
	}
	other := p.DeepCopy()
	other.Name, other.UID = "other", "other-uid"
	h.workers.update(p)
	h.workers.update(other)
	for _, q := range []*v1.Pod{p, other} {
		h.waitStatus(t, q.UID, q.Name+" Running", func(st v1.PodStatus) bool { return st.Phase == v1.PodRunning })
	}
	if got := len(a.activePods()); got != 2 {
		t.Fatalf("%d active pods, want 2", got)
	}
	e := eviction.Eviction{Signal: eviction.SignalMemoryAvailable, Reason: "Evicted", Message: "The node was low on resource: memory. ", GracePeriodSeconds: 1}
	if !a.evictPod(p, e.Message, e.GracePeriodSeconds) {
		t.Fatal("evictPod refused a running pod")
	}
	st := h.waitStatus(t, p.UID, "Failed", func(st v1.PodStatus) bool {
		return st.Phase == v1.PodFailed && st.ContainerStatuses[0].State.Terminated != nil
	})
	if st.Reason != "Evicted" || st.Message != e.Message {
		t.Errorf("status reason %q message %q", st.Reason, st.Message)
	}
	var dt *v1.PodCondition
	for i := range st.Conditions {
		if st.Conditions[i].Type == v1.DisruptionTarget {
			dt = &st.Conditions[i]
		}
	}
	if dt == nil || dt.Status != v1.ConditionTrue || dt.Reason != "TerminationByKubelet" || dt.Message != e.Message {
		t.Errorf("DisruptionTarget condition %+v", dt)
	}
	if g := h.rt.stopGraces(); !slices.Equal(g, []int64{minStopGrace}) {
		t.Errorf("stop graces %v, want the eviction's (1 s, raised to the %d s minimum), not the pod's 30", g, minStopGrace)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			h.clock.Step(100 * time.Millisecond)
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the sandbox stopped", func() bool {
		sbs, err := h.rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": "hog-uid"}})
		return err == nil && len(sbs) == 1 && sbs[0].State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	})
	if act := a.activePods(); len(act) != 1 || act[0].Name != "other" {
		t.Errorf("active pods %v, want other only", act)
	}
	if a.evictPod(p, e.Message, e.GracePeriodSeconds) {
		t.Error("evicted twice")
	}
	// Never started again: a minute of syncs later the container is still the one stopped.
	starts := len(h.rt.recorded("start app"))
	for range 20 {
		h.clock.Step(5 * time.Second)
		time.Sleep(2 * time.Millisecond)
	}
	h.workers.wake(p.UID)
	time.Sleep(50 * time.Millisecond)
	if got := len(h.rt.recorded("start app")); got != starts {
		t.Errorf("%d container starts after the eviction, want %d", got, starts)
	}
	if st := h.store.get(p.UID).status; st.Phase != v1.PodFailed || st.Reason != "Evicted" {
		t.Errorf("status after resyncs: %s %s", st.Phase, st.Reason)
	}
	if st := h.store.get(other.UID).status; st.Phase != v1.PodRunning {
		t.Errorf("other pod: %s", st.Phase)
	}
}
