package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/volumes"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// relist is Berth's pod lifecycle event generator: every period it lists the sandboxes and
// containers Berth manages, and wakes the worker of every pod whose runtime state changed since the
// last list (a container died, a sandbox went away). Once the sources have all reported, a pod in
// the runtime that no worker owns is an orphan and gets a terminating worker.
//
// Where the runtime streams container events (container_events.go), the events wake the workers
// and the relist runs every eventedRelistPeriod only, as a safety net; when the stream breaks it
// runs at once and every period again.
type relist struct {
	rt           Runtime
	clock        clock.WithTicker
	period       time.Duration
	log          *slog.Logger
	workers      *podWorkers
	sourcesReady func() bool
	events       *containerEvents // nil: the runtime has no event stream
	kick         chan struct{}    // relist now (buffered, one pending at most)

	last        map[types.UID]string
	healthy     bool
	lastCleanup time.Time    // of pod directories and cgroups left behind
	lastRelist  atomic.Int64 // unix nanos of the last successful relist, for health checks
}

// eventedRelistPeriod is the relist's period while the runtime's container events are followed.
const eventedRelistPeriod = 30 * time.Second

// currentPeriod is the time between two relists now.
func (r *relist) currentPeriod() time.Duration {
	if r.events.isLive() {
		return eventedRelistPeriod
	}
	return r.period
}

func (r *relist) run(ctx context.Context) {
	// A fine tick, with relists every currentPeriod: the period changes as the event stream comes
	// and goes, and a relist asked for runs at once.
	t := r.clock.NewTicker(r.period)
	defer t.Stop()
	for {
		r.once(ctx)
		last := r.clock.Now()
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
				waiting = false
			case <-t.C():
				waiting = r.clock.Since(last) < r.currentPeriod()-r.period/2
			}
		}
	}
}

var managedSelector = map[string]string{cri.LabelManagedBy: cri.ManagedByValue}

func (r *relist) once(ctx context.Context) {
	listedAt := r.clock.Now()
	defer func() { metrics.PLEGRelistDuration.Observe(r.clock.Since(listedAt).Seconds()) }()
	sandboxes, err := r.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: managedSelector})
	var containers []*runtimeapi.Container
	if err == nil {
		containers, err = r.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: managedSelector})
	}
	if err != nil {
		if ctx.Err() == nil && r.healthy {
			r.log.Error("relisting the runtime failed; pods are left as they are until it answers again", "err", err)
		}
		r.healthy = false
		return
	}
	if !r.healthy {
		r.log.Info("relisting the runtime works", "sandboxes", len(sandboxes), "containers", len(containers))
	}
	r.healthy = true
	r.lastRelist.Store(r.clock.Now().UnixNano())

	sandboxesOf := map[types.UID][]*runtimeapi.PodSandbox{}
	containersOf := map[types.UID][]*runtimeapi.Container{}
	sandboxOf := map[types.UID]*runtimeapi.PodSandbox{}
	for _, sb := range sandboxes {
		uid := types.UID(sb.Labels[cri.LabelPodUID])
		sandboxesOf[uid] = append(sandboxesOf[uid], sb)
		if cur := sandboxOf[uid]; cur == nil || sb.CreatedAt > cur.CreatedAt {
			sandboxOf[uid] = sb
		}
	}
	running := map[string]bool{}
	for _, c := range containers {
		uid := types.UID(c.Labels[cri.LabelPodUID])
		containersOf[uid] = append(containersOf[uid], c)
		if _, ok := sandboxesOf[uid]; !ok {
			sandboxesOf[uid] = nil // containers whose sandbox is gone still make a pod
		}
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running[c.Id] = true
			if !r.events.isLive() {
				r.workers.exits.watch(uid, c.Id) // adopted containers, and any a sync started unseen
			}
		}
	}
	r.workers.exits.keepOnly(running, listedAt)
	now := make(map[types.UID]string, len(sandboxesOf))
	for uid, sbs := range sandboxesOf {
		now[uid] = runtimeFingerprint(sbs, containersOf[uid])
	}
	// The first list has nothing to compare with: every pod is woken once, so a change between a
	// worker's own read and this first list is not missed until the periodic resync.
	// A change the pod's worker saw itself (it made the sandbox or started the container) is not
	// one to wake it for.
	for uid, fp := range now {
		if r.last == nil || (r.last[uid] != fp && !r.workers.seen(uid, fp)) {
			r.workers.wake(uid)
		}
	}
	for uid := range r.last {
		if _, ok := now[uid]; !ok {
			r.workers.wake(uid)
		}
	}
	r.last = now
	if r.sourcesReady() {
		for uid, sb := range sandboxOf {
			if uid != "" && !r.workers.known(uid) {
				r.workers.terminateOrphan(uid, sb)
			}
		}
		if r.lastCleanup.IsZero() || r.clock.Since(r.lastCleanup) >= leftoverCleanupPeriod {
			r.cleanupPodDirs(now)
			r.cleanupPodCgroups(now)
			r.lastCleanup = r.clock.Now()
		}
	}
}

// leftoverCleanupPeriod is how often pod directories and cgroups left behind are looked for.
const leftoverCleanupPeriod = time.Minute

// cleanupPodCgroups removes the pod cgroups of pods that neither a worker nor the runtime knows
// (left by a Berth that stopped before removing them, or by a pod removed while Berth was down).
// The first run is right after the sources are ready: orphans found at startup go at once.
func (r *relist) cleanupPodCgroups(inRuntime map[types.UID]string) {
	cg := r.workers.cfg.Cgroups
	if cg == nil {
		return
	}
	err := cg.CleanupOrphans(func(uid types.UID) bool {
		_, ok := inRuntime[uid]
		return ok || r.workers.known(uid)
	})
	if err != nil {
		r.log.Warn("removing pod cgroups left behind failed; will retry", "err", err)
	}
}

// cleanupPodDirs removes the directories under <rootDir>/pods of pods that neither a worker nor the
// runtime knows any more (their pod was removed while Berth was down and the runtime lost it too).
func (r *relist) cleanupPodDirs(inRuntime map[types.UID]string) {
	root := r.workers.cfg.RootDir
	if root == "" {
		return
	}
	entries, err := os.ReadDir(filepath.Join(root, "pods"))
	if err != nil {
		return
	}
	for _, e := range entries {
		uid := types.UID(e.Name())
		if _, ok := inRuntime[uid]; ok || r.workers.known(uid) {
			continue
		}
		// Unmount first (tmpfs volumes, subPath bind mounts): a removal must never go through a
		// mount into a hostPath.
		if err := volumes.RemovePodDir(podDir(root, uid)); err != nil {
			r.log.Warn("removing a pod directory left behind failed", "uid", string(uid), "err", err)
		} else {
			r.log.Info("removed a pod directory left behind", "uid", string(uid))
		}
	}
}
