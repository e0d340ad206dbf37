package agent

import (
	v1 "k8s.io/api/core/v1"
)

// reasonEvicted is the kubelet's pod status reason (and event reason) for an eviction.
const reasonEvicted = "Evicted"

// evictPod stops a pod for an eviction, as the kubelet does: its containers get the eviction's
// grace period, its sandbox is stopped, and the pod is reported Failed with reason Evicted, the
// message and a DisruptionTarget condition, for good — its source may still list it (an API pod
// stays until its controller deletes it), it is never started again. In cluster mode an Evicted
// event is recorded on the pod. It reports false when the pod has no worker, is already
// terminating, evicted or finished.
//
// The emptyDir sizeLimit check (emptydir_limits.go) and the node-pressure eviction manager
// (eviction.go) call it.
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
	k := &podKill{grace: gracePeriod, reason: reasonEvicted, message: message, at: a.cfg.Clock.Now()}
	if w == nil || !w.setKill(k) {
		return false
	}
	a.cfg.Logger.Warn("evicting pod", "pod", pod.Namespace+"/"+pod.Name, "uid", string(pod.UID), "gracePeriod", gracePeriod, "message", message)
	if a.recorder != nil {
		a.recorder.Eventf(&v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			v1.EventTypeWarning, k.reason, "%s", k.message)
	}
	return true
}
