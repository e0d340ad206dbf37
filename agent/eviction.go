package agent

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/eviction"
	"github.com/berth-dev/berth/volumes"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// newEvictionManager wires the eviction manager to the node: signals from the host (memory
// cgroup, statfs of the root dir and of the runtime's image filesystem, pid_max), pods from the
// workers, usage from the runtime's container stats, evictions through evictPod.
func (a *Agent) newEvictionManager() error {
	cfg := a.cfg
	thresholds, err := eviction.ParseThresholds(cfg.EvictionHard)
	if err != nil {
		return err
	}
	readers := eviction.SignalReaders{
		Memory:  eviction.HostMemory{Root: "/"},
		Fs:      eviction.Statfs{},
		ImageFs: runtimeImageFs{cfg.Runtime},
		PIDs:    eviction.HostPIDs{},
		RootDir: cfg.RootDir,
	}
	m, err := eviction.NewManager(eviction.Config{
		Thresholds:               thresholds,
		PressureTransitionPeriod: cfg.EvictionPressureTransitionPeriod,
		MonitoringPeriod:         cfg.EvictionMonitoringPeriod,
		Signals:                  readers,
		ActivePods:               a.activePods,
		PodUsage:                 a.podUsage,
		Evict: func(p *v1.Pod, e eviction.Eviction) bool {
			return a.evictPod(p, e.Message, e.GracePeriodSeconds)
		},
		Reclaim: a.reclaimImages,
		OnChange: func() {
			if a.node != nil {
				a.node.poke()
			}
		},
		Event:  a.nodeEvent,
		Clock:  cfg.Clock,
		Logger: cfg.Logger.With("component", "eviction"),
	})
	if err != nil {
		return err
	}
	a.eviction = m
	return nil
}

// nodeEvent records an event on the Node (cluster mode).
func (a *Agent) nodeEvent(eventType, reason, message string) {
	if a.recorder == nil || a.node == nil {
		return
	}
	a.recorder.Eventf(a.node.nodeRef(), eventType, reason, "%s", message)
}

// activePods are the pods that run (podWorkers.activePods), none before Run.
func (a *Agent) activePods() []*v1.Pod {
	a.mu.Lock()
	workers := a.workers
	a.mu.Unlock()
	if workers == nil {
		return nil
	}
	return workers.activePods()
}

// podUsage sums the runtime's container stats by pod: working set, writable layer (bytes and
// inodes), plus the size of the pod's log directory and of its disk-backed emptyDir volumes for
// ephemeral storage, as the kubelet counts it. Process counts come from the
// runtime's sandbox stats (CRI ListPodSandboxStats); a runtime without them leaves pid.available
// ranking by priority alone.
func (a *Agent) podUsage(ctx context.Context) (map[types.UID]eviction.PodUsage, error) {
	stats, err := a.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{
		LabelSelector: map[string]string{cri.LabelManagedBy: cri.ManagedByValue},
	})
	if err != nil {
		return nil, err
	}
	out := map[types.UID]eviction.PodUsage{}
	add := func(dst **int64, v int64) {
		if *dst == nil {
			*dst = new(int64)
		}
		**dst += v
	}
	logDirs := map[types.UID]string{}
	for _, st := range stats {
		attrs := st.GetAttributes()
		labels := attrs.GetLabels()
		uid := types.UID(labels[cri.LabelPodUID])
		if uid == "" {
			continue
		}
		u := out[uid]
		if u.Containers == nil {
			u.Containers = map[string]eviction.ContainerUsage{}
		}
		name := attrs.GetMetadata().GetName()
		cu := u.Containers[name]
		if m := st.GetMemory(); m != nil && m.WorkingSetBytes != nil {
			add(&u.MemoryWorkingSet, int64(m.WorkingSetBytes.Value))
			add(&cu.MemoryWorkingSet, int64(m.WorkingSetBytes.Value))
		}
		if wl := st.GetWritableLayer(); wl != nil {
			if wl.UsedBytes != nil {
				add(&u.EphemeralBytes, int64(wl.UsedBytes.Value))
				add(&cu.EphemeralBytes, int64(wl.UsedBytes.Value))
			}
			if wl.InodesUsed != nil {
				add(&u.Inodes, int64(wl.InodesUsed.Value))
			}
		}
		u.Containers[name] = cu
		out[uid] = u
		if ns, pod := labels[cri.LabelPodNamespace], labels[cri.LabelPodName]; pod != "" {
			logDirs[uid] = cri.PodLogDir(a.cfg.PodLogsDir, ns, pod, uid)
		}
	}
	if sbStats, err := a.cfg.Runtime.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{
		LabelSelector: map[string]string{cri.LabelManagedBy: cri.ManagedByValue},
	}); err == nil {
		for _, st := range sbStats {
			uid := types.UID(st.GetAttributes().GetMetadata().GetUid())
			if pc := st.GetLinux().GetProcess().GetProcessCount(); pc != nil && uid != "" {
				u := out[uid]
				add(&u.Processes, int64(pc.Value))
				out[uid] = u
			}
		}
	}
	for _, pod := range a.activePods() {
		u, ok := out[pod.UID]
		if !ok {
			continue
		}
		for _, vol := range pod.Spec.Volumes {
			if ed := vol.EmptyDir; ed != nil && ed.Medium == v1.StorageMediumDefault {
				if n, err := volumes.DiskUsage(volumes.VolumeDir(a.cfg.RootDir, pod.UID, volumes.PluginEmptyDir, vol.Name)); err == nil {
					add(&u.EphemeralBytes, n)
				}
			}
		}
		out[pod.UID] = u
	}
	for uid, dir := range logDirs {
		if n, err := dirSize(dir); err == nil {
			u := out[uid]
			add(&u.EphemeralBytes, n)
			out[uid] = u
		}
	}
	return out, nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a log rotated away while walking
		}
		if info, err := d.Info(); err == nil && d.Type().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// runtimeImageFs finds the runtime's image filesystem with CRI ImageFsInfo.
type runtimeImageFs struct{ rt Runtime }

func (r runtimeImageFs) ImageFsPath(ctx context.Context) (string, error) {
	fss, err := r.rt.ImageFsInfo(ctx)
	if err != nil {
		return "", err
	}
	for _, f := range fss {
		if mp := f.GetFsId().GetMountpoint(); mp != "" {
			return mp, nil
		}
	}
	return "", errors.New("the runtime reports no image filesystem")
}

// reclaimImages frees disk before any pod is evicted for it: every image no container uses goes
// (the kubelet's DeleteUnusedImages).
func (a *Agent) reclaimImages(ctx context.Context, _ eviction.Signal) error {
	if a.imageGC == nil {
		return nil
	}
	return a.imageGC.DeleteUnusedImages(ctx)
}
