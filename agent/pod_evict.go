package agent

import (
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// reasonEvicted is the kubelet's pod status reason (and event reason) for an eviction.
const reasonEvicted = "Evicted"

// podEviction is why a pod was evicted, and the grace period its containers get.
type podEviction struct {
	reason, message string
	gracePeriod     int64
	at              time.Time
}

// evictPod stops a pod for an eviction, as the kubelet does: its containers get the eviction's
// grace period, its sandbox is stopped, and the pod is reported Failed with reason Evicted, the
// message and a DisruptionTarget condition, for good — its source may still list it (an API pod
// stays until its controller deletes it), it is never started again. In cluster mode an Evicted
// event is recorded on the pod. It reports false when the pod has no worker, is already
// terminating, evicted or finished.
//
// The emptyDir sizeLimit check (emptydir_limits.go) calls it.
func (a *Agent) evictPod(pod *v1.Pod, message string, gracePeriod int64) bool {
	a.mu.Lock()
	workers := a.workers
	a.mu.Unlock()
	if workers == nil {
		return false
	}
	workers.mu.Lock()
	w := workers.workers[pod.UID]
	workers.mu.Unlock()
	e := &podEviction{reason: reasonEvicted, message: message, gracePeriod: gracePeriod, at: a.cfg.Clock.Now()}
	if w == nil || !w.setEvicted(e) {
		return false
	}
	a.cfg.Logger.Warn("evicting pod", "pod", pod.Namespace+"/"+pod.Name, "uid", string(pod.UID), "gracePeriod", gracePeriod, "message", message)
	if a.recorder != nil {
		a.recorder.Eventf(&v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			v1.EventTypeWarning, e.reason, "%s", e.message)
	}
	return true
}

// setEvicted marks the worker's pod evicted and wakes it; false when it is removed, already evicted
// or finished.
func (w *podWorker) setEvicted(e *podEviction) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.removed || w.evicted != nil || w.pod == nil || terminal(w.pod) {
		return false
	}
	if r := w.m.store.get(w.uid); r != nil && podIsTerminal(&r.status) {
		return false
	}
	w.evicted = e
	if w.cancelRun != nil {
		w.cancelRun() // a long image pull must not delay the eviction
	}
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
	return true
}

func (w *podWorker) eviction() *podEviction {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.evicted
}

// evictedStatus makes a status an evicted pod's: Failed, with the reason and message, and the
// DisruptionTarget condition the kubelet adds (reason TerminationByKubelet).
func evictedStatus(st *v1.PodStatus, e *podEviction) {
	st.Phase = v1.PodFailed
	st.Reason, st.Message = e.reason, e.message
	for _, c := range st.Conditions {
		if c.Type == v1.DisruptionTarget {
			return
		}
	}
	st.Conditions = append(st.Conditions, v1.PodCondition{
		Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: "TerminationByKubelet", Message: e.message,
		LastTransitionTime: metav1.NewTime(e.at),
	})
}
