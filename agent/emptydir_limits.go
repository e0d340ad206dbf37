package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/berth-dev/berth/volumes"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// emptyDirCheckPeriod is how often disk-backed emptyDir volumes with a sizeLimit are measured (the
// kubelet's eviction manager runs every 10 s too). A memory-backed emptyDir needs no check: its
// tmpfs is sized to the limit.
const emptyDirCheckPeriod = 10 * time.Second

// emptyDirEvictionGrace is the grace period of a pod evicted for an emptyDir over its sizeLimit:
// the kubelet's immediate eviction.
const emptyDirEvictionGrace = int64(1)

// watchEmptyDirLimits measures, every emptyDirCheckPeriod, the disk-backed emptyDirs that have a
// sizeLimit, and evicts a pod whose emptyDir uses more, with the kubelet's message.
func (a *Agent) watchEmptyDirLimits(ctx context.Context, workers *podWorkers) {
	if workers.volumes == nil {
		return
	}
	t := a.cfg.Clock.NewTicker(emptyDirCheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		for _, pod := range workers.activePods() {
			msg := a.emptyDirOverLimit(pod)
			if msg == "" {
				continue
			}
			if evictionExempt(pod) {
				// The kubelet never evicts these (a static pod would not be admitted again).
				a.cfg.Logger.Error("not evicting a critical pod: "+msg, "pod", pod.Namespace+"/"+pod.Name)
				continue
			}
			a.evictPod(pod, msg, emptyDirEvictionGrace)
		}
	}
}

// emptyDirOverLimit returns the eviction message when one of the pod's disk emptyDirs uses more
// than its sizeLimit, else "".
func (a *Agent) emptyDirOverLimit(pod *v1.Pod) string {
	for _, vol := range pod.Spec.Volumes {
		ed := vol.EmptyDir
		if ed == nil || ed.Medium != v1.StorageMediumDefault || ed.SizeLimit == nil || ed.SizeLimit.Sign() <= 0 {
			continue
		}
		used, err := volumes.DiskUsage(volumes.VolumeDir(a.cfg.RootDir, pod.UID, volumes.PluginEmptyDir, vol.Name))
		if err != nil {
			continue // not set up yet, or gone
		}
		if resource.NewQuantity(used, resource.BinarySI).Cmp(*ed.SizeLimit) > 0 {
			return fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", vol.Name, ed.SizeLimit.String())
		}
	}
	return ""
}

// activePods are the pods that have a worker, are not being removed and are not finished or
// evicted.
func (m *podWorkers) activePods() []*v1.Pod {
	m.mu.Lock()
	ws := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	var out []*v1.Pod
	for _, w := range ws {
		w.mu.Lock()
		pod, removed, killed := w.pod, w.removed, w.killed
		w.mu.Unlock()
		if pod == nil || removed || killed != nil || terminal(pod) {
			continue
		}
		if r := m.store.get(w.uid); r != nil && podIsTerminal(&r.status) {
			continue // finished in the runtime (a completed Job-like pod), though its source says not yet
		}
		out = append(out, pod)
	}
	return out
}

// evictionExempt reports whether the kubelet would refuse to evict pod (its "critical pod" rule): a
// static pod, or one of system-critical priority.
func evictionExempt(pod *v1.Pod) bool {
	if pod.Annotations[annotationConfigSource] == SourceFile {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority
}
