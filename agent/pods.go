package agent

import (
	v1 "k8s.io/api/core/v1"
)

// Pods returns the pods this agent runs, each a copy with the status it last computed: the node
// server's /pods, and how it finds a pod for logs, exec and port-forward.
func (a *Agent) Pods() []*v1.Pod {
	a.store.mu.RLock()
	defer a.store.mu.RUnlock()
	out := make([]*v1.Pod, 0, len(a.store.pods))
	for _, r := range a.store.pods {
		p := r.pod.DeepCopy()
		p.Status = *r.status.DeepCopy()
		out = append(out, p)
	}
	return out
}
