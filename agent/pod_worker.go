package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/probes"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podWorker serialises everything done to one pod (one UID) in the runtime: it is the only code that
// creates, starts, stops or removes that pod's sandboxes and containers. Its lifecycle:
//
//	        update(pod)                      remove(uid) / orphan found
//	(new) ─────────────▶ syncing ◀─┐  wake  ───────────────────────────▶ terminating ──▶ done
//	                        │      │ (relist,                              preStop hooks, stop apps
//	                        └──────┘  timer,                               then sidecars (grace),
//	                     one step per sync;                                stop + remove sandboxes,
//	                     requeued on back-off                              unmount volumes, remove
//	                     (volumes set up first)                            logs and pod dir;
//	                                                                       retried until it succeeds
//
// A pod that replaces another of the same namespace/name (an edited static pod gets a new UID) waits
// until the old one is done before its first sync, so the two never hold the same host port.
type podWorker struct {
	m   *podWorkers
	uid types.UID
	log *slog.Logger

	mu        sync.Mutex
	pod       *v1.Pod // latest desired spec; nil for an orphan found in the runtime
	removed   bool
	orphan    orphanInfo
	cancelRun context.CancelFunc // cancels the sync in progress when the pod is removed
	// killed is set by setKill (a node shutdown, an eviction): the pod is stopped and reported Failed
	// for good.
	killed *podKill

	wakeCh  chan struct{}
	done    chan struct{}
	waitFor <-chan struct{}
	// observed is the runtime fingerprint of the worker's last look at its pod (runtimeFingerprint):
	// the relist wakes the worker only for a change it has not seen, not for what it did itself.
	observed atomic.Value // string
	syncs    atomic.Int64 // syncs done, for tests

	// Owned by the worker goroutine.
	cache             statusCache
	actedStreak       int // syncs in a row whose step acted without asking for a time
	startTime         time.Time
	lastStatus        *v1.PodStatus
	lastSandboxErr    string
	lastStartErr      map[string]string
	lastCreateWaiting map[string]*v1.ContainerStateWaiting
	// lastSynced is the pod object of the last sync (an update is a sync of another one); started
	// is set once the pod start SLI was observed, or when it cannot be (the pod was adopted
	// running); pullStart and pullEnd span the image pulls of the pod's start.
	lastSynced         *v1.Pod
	killPublished      bool
	started            bool
	pullStart, pullEnd time.Time
	// reportedBackOff and reportedPresent keep events to one per occurrence, not one per sync.
	reportedBackOff map[string]string
	reportedPresent map[string]bool
	// lastMountErr is the volume setup error shown during its back-off; reportedMountErr holds the
	// FailedMount messages already sent as events.
	lastMountErr     string
	reportedMountErr map[string]bool
	// volumesReady is set once every volume of the pod was set up: from then on a failed refresh
	// no longer holds the pod back.
	volumesReady bool
}

// orphanInfo describes a pod found in the runtime that no source wants, from its sandbox labels.
type orphanInfo struct {
	namespace, name string
	grace           int64
}

func newPodWorker(m *podWorkers, uid types.UID, pod *v1.Pod) *podWorker {
	w := &podWorker{
		m:                 m,
		uid:               uid,
		pod:               pod,
		wakeCh:            make(chan struct{}, 1),
		done:              make(chan struct{}),
		cache:             statusCache{},
		lastStartErr:      map[string]string{},
		lastCreateWaiting: map[string]*v1.ContainerStateWaiting{},
		reportedBackOff:   map[string]string{},
		reportedPresent:   map[string]bool{},
		reportedMountErr:  map[string]bool{},
	}
	ns, name := w.names()
	w.log = m.log.With("pod", ns+"/"+name, "uid", string(uid))
	return w
}

func (w *podWorker) names() (namespace, name string) {
	if w.pod != nil {
		return w.pod.Namespace, w.pod.Name
	}
	return w.orphan.namespace, w.orphan.name
}

func (w *podWorker) fullName() string {
	ns, name := w.names()
	return name + "_" + ns + "(" + string(w.uid) + ")"
}

// key prefixes back-off keys with the pod UID, so they are forgotten with the pod.
func (w *podWorker) key(s string) string { return string(w.uid) + "/" + s }

func (w *podWorker) wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

func (w *podWorker) setPod(pod *v1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.wake()
}

func (w *podWorker) markRemoved() {
	w.mu.Lock()
	w.removed = true
	if w.cancelRun != nil {
		w.cancelRun() // a long image pull must not delay the termination
	}
	w.mu.Unlock()
	w.wake()
}

// gracePeriod is the pod's terminationGracePeriodSeconds (30 by default), or the deletion's grace
// period when the pod is being deleted with a shorter one, or a kill's (node shutdown) when shorter.
func (w *podWorker) gracePeriod() int64 {
	g := w.ownGracePeriod()
	if k := w.kill(); k != nil && k.grace < g {
		return k.grace
	}
	return g
}

func (w *podWorker) ownGracePeriod() int64 {
	if w.pod != nil {
		g := int64(30)
		if w.pod.Spec.TerminationGracePeriodSeconds != nil {
			g = *w.pod.Spec.TerminationGracePeriodSeconds
		}
		if d := w.pod.DeletionGracePeriodSeconds; d != nil && *d < g {
			g = *d
		}
		return g
	}
	if w.orphan.grace >= 0 {
		return w.orphan.grace
	}
	return 30
}

func (w *podWorker) run() {
	defer w.m.wg.Done()
	ctx := w.m.ctx
	if w.waitFor != nil {
		select {
		case <-w.waitFor:
		case <-ctx.Done():
			return
		}
	}
	for {
		w.mu.Lock()
		pod, removed := w.pod, w.removed
		syncCtx, cancel := context.WithCancel(ctx)
		w.cancelRun = cancel
		w.mu.Unlock()
		if removed || pod == nil {
			cancel()
			w.terminate(ctx)
			return
		}
		op := "sync"
		switch {
		case w.lastSynced == nil:
			op = "create"
		case w.lastSynced != pod:
			op = "update"
		}
		began := w.m.clock.Now()
		next := w.sync(syncCtx, pod)
		w.syncs.Add(1)
		metrics.PodWorkerDuration.WithLabelValues(op).Observe(w.m.clock.Since(began).Seconds())
		w.lastSynced = pod
		cancel()
		if next <= 0 {
			if ctx.Err() != nil {
				return
			}
			continue // the next step at once (a timer of 0 would wait for a fake clock to move)
		}
		t := w.m.clock.NewTimer(next)
		select {
		case <-w.wakeCh:
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// maxImmediateSteps bounds the syncs that follow each other at once (sync).
const maxImmediateSteps = 8

// observe reads the pod's state from the runtime (observePod) and remembers its fingerprint.
func (w *podWorker) observe(ctx context.Context) (*podRuntime, error) {
	rt, err := observePod(ctx, w.m.rt, w.uid, w.cache)
	if err == nil {
		w.observed.Store(rt.fingerprint)
	}
	return rt, err
}

// observedFingerprint is the fingerprint of the worker's last look at the runtime ("" before one).
func (w *podWorker) observedFingerprint() string {
	fp, _ := w.observed.Load().(string)
	return fp
}

// sync makes one step of progress and publishes the pod's status; it returns when to sync again.
func (w *podWorker) sync(ctx context.Context, pod *v1.Pod) time.Duration {
	m := w.m
	rt, err := w.observe(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reading pod state from the runtime failed", "err", err)
			w.publish(pod, &podRuntime{}, nil, err.Error())
		}
		return 2 * time.Second
	}
	if w.startTime.IsZero() {
		w.startTime = m.clock.Now()
		if n := len(rt.sandboxes); n > 0 { // adopted after a restart: it started with its first sandbox
			w.startTime = time.Unix(0, rt.sandboxes[n-1].CreatedAt)
			w.started = true // its start was another Berth's to observe
		}
	}
	if k := w.kill(); k != nil && !w.killPublished {
		// As the kubelet does, the final status is published before the containers are stopped:
		// a node shutdown may end before they are.
		w.killPublished = true
		w.publish(pod, rt, nil, "")
	}
	s := &podSync{
		w:          w,
		pod:        pod,
		rt:         rt,
		log:        w.log,
		waiting:    map[string]*v1.ContainerStateWaiting{},
		requeue:    m.cfg.SyncFrequency,
		startedNow: map[string]string{},
		stoppedNow: map[string]bool{},
	}
	if s.step(ctx) {
		if rt2, err := w.observe(ctx); err == nil {
			s.rt = rt2
		}
		// The step changed the runtime: the next step (the sandbox stopped, now the pod cgroup;
		// the containers started, now nothing) comes at once, since the relist does not wake a
		// worker for its own changes. A step that asked for a time (a back-off, a retry) keeps it,
		// and a run of steps that keep acting slows to one a second.
		if !s.requeueAsked {
			w.actedStreak++
			s.requeue = 0
			if w.actedStreak > maxImmediateSteps {
				s.requeue = time.Second
			}
		}
	} else {
		w.actedStreak = 0
	}
	if ctx.Err() != nil {
		return 0 // removed or shutting down: the loop sees which
	}
	w.syncProbes(pod, s.rt)
	w.publish(pod, s.rt, s.waiting, s.err)
	return s.requeue
}

// syncProbes tells the prober which container instances run now, so it starts their probe workers
// and stops those of instances that are gone.
func (w *podWorker) syncProbes(pod *v1.Pod, rt *podRuntime) {
	var states []probes.ContainerState
	sb := rt.currentSandbox()
	add := func(typ string, c *v1.Container) {
		inst := rt.newestIn(sb.Id, typ, c.Name)
		if inst == nil {
			return
		}
		st := probes.ContainerState{Name: c.Name, ID: inst.id, Running: inst.state == runtimeapi.ContainerState_CONTAINER_RUNNING}
		if inst.status != nil {
			st.StartedAt = time.Unix(0, inst.status.StartedAt)
		}
		states = append(states, st)
	}
	if sb != nil {
		for i := range pod.Spec.InitContainers {
			if c := &pod.Spec.InitContainers[i]; isSidecar(c) {
				add(cri.ContainerTypeInit, c) // sidecars are probed like app containers
			}
		}
		for i := range pod.Spec.Containers {
			add(cri.ContainerTypeApp, &pod.Spec.Containers[i])
		}
	}
	podIP := ""
	if ss := rt.sandboxStatus; ss != nil && ss.Network != nil {
		podIP = ss.Network.Ip
	}
	if podIP == "" && pod.Spec.HostNetwork {
		podIP = first(w.m.cfg.NodeIPs)
	}
	w.m.prober.Sync(pod, podIP, states)
}

func (w *podWorker) computeStatus(pod *v1.Pod, rt *podRuntime, waiting map[string]*v1.ContainerStateWaiting, _ string) v1.PodStatus {
	st := computePodStatus(statusInput{
		pod:         pod,
		rt:          rt,
		waiting:     waiting,
		runtimeName: w.m.cfg.RuntimeName,
		hostIPs:     w.m.cfg.NodeIPs,
		startTime:   w.startTime,
		now:         w.m.clock.Now(),
		previous:    w.lastStatus,
		probes:      w.m.prober,
	})
	if k := w.kill(); k != nil {
		killedStatus(&st, k)
	}
	return st
}

func (w *podWorker) publish(pod *v1.Pod, rt *podRuntime, waiting map[string]*v1.ContainerStateWaiting, syncErr string) {
	st := w.computeStatus(pod, rt, waiting, syncErr)
	w.lastStatus = &st
	w.observeStart(pod, &st)
	w.m.store.set(pod, st, syncErr)
}

// observeStart records the pod start SLI once, when every container of the pod first runs: from
// the pod's creation, less the time its image pulls took (first pull started to last one ended).
func (w *podWorker) observeStart(pod *v1.Pod, st *v1.PodStatus) {
	if w.started || pod.CreationTimestamp.IsZero() || len(st.ContainerStatuses) != len(pod.Spec.Containers) {
		return
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil {
			return
		}
	}
	w.started = true
	d := w.m.clock.Since(pod.CreationTimestamp.Time)
	if !w.pullStart.IsZero() && w.pullEnd.After(w.pullStart) {
		d -= w.pullEnd.Sub(w.pullStart)
	}
	if d >= 0 {
		metrics.PodStartSLIDuration.Observe(d.Seconds())
	}
}

// event records a pod event (cluster mode), about a container when container is not "".
func (w *podWorker) event(pod *v1.Pod, container, eventType, reason, format string, args ...any) {
	if w.m.recorder == nil || pod == nil {
		return
	}
	ref := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if container != "" {
		ref.FieldPath = containerFieldPath(pod, container)
	}
	w.m.recorder.Eventf(ref, eventType, reason, format, args...)
}

func containerFieldPath(pod *v1.Pod, name string) string {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return "spec.initContainers{" + name + "}"
		}
	}
	return "spec.containers{" + name + "}"
}

func (w *podWorker) dnsConfig(pod *v1.Pod) *runtimeapi.DNSConfig {
	m := w.m
	dns, err := cri.DNSConfigForPod(pod, m.cfg.HostResolvConf, m.cfg.ClusterDNS, m.cfg.ClusterDomain)
	if err != nil {
		w.log.Warn("DNS configuration", "err", err)
	}
	return dns
}

// terminate stops and removes everything the runtime has of the pod, retrying until it is all gone
// or Berth shuts down (then the next Berth finds the pod as an orphan and finishes the job).
func (w *podWorker) terminate(ctx context.Context) {
	w.m.prober.RemovePod(w.uid) // a terminating pod's liveness must not restart anything
	grace := w.gracePeriod()
	w.log.Info("terminating pod", "gracePeriod", grace)
	delay := 500 * time.Millisecond
	for {
		err := w.killPod(ctx, grace)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		w.log.Error("terminating pod failed, will retry", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return
		case <-w.m.clock.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
	w.log.Info("pod terminated and removed")
	w.m.workerDone(w)
}

func (w *podWorker) killPod(ctx context.Context, grace int64) error {
	m := w.m
	rt, err := w.observe(ctx)
	if err != nil {
		return err
	}
	// App containers stop in parallel, then the sidecars in reverse order, each after its preStop
	// hook, all within the grace period.
	if err := w.stopContainers(ctx, w.pod, rt, rt.containers, grace, killingMessage); err != nil {
		return err
	}
	for _, sb := range rt.sandboxes {
		if err := m.rt.StopPodSandbox(ctx, sb.Id); err != nil && !cri.IsNotFound(err) {
			return err
		}
	}
	for _, c := range rt.containers {
		if err := m.rt.RemoveContainer(ctx, c.id); err != nil && !cri.IsNotFound(err) {
			return err
		}
	}
	for _, sb := range rt.sandboxes {
		if err := m.rt.RemovePodSandbox(ctx, sb.Id); err != nil && !cri.IsNotFound(err) {
			return err
		}
	}
	if cg := m.cfg.Cgroups; cg != nil {
		// The runtime removed the sandbox's and containers' cgroups, not the pod's.
		if err := cg.RemovePod(w.uid); err != nil {
			return err
		}
	}
	ns, name := w.names()
	if name != "" {
		if err := os.RemoveAll(cri.PodLogDir(m.cfg.PodLogsDir, ns, name, w.uid)); err != nil {
			return fmt.Errorf("remove pod logs: %w", err)
		}
	}
	if m.volumes != nil { // there is a root directory
		// Unmounts the pod's volumes (tmpfs, subPath bind mounts) before removing the directory:
		// a removal never goes through a mount.
		if err := m.volumes.TearDown(w.uid); err != nil {
			return fmt.Errorf("tear down volumes: %w", err)
		}
	}
	return nil
}

// orphanFromSandbox reads what terminating an unknown pod needs from its sandbox.
func orphanFromSandbox(sb *runtimeapi.PodSandbox) orphanInfo {
	o := orphanInfo{namespace: sb.Metadata.GetNamespace(), name: sb.Metadata.GetName(), grace: -1}
	if g, err := strconv.ParseInt(sb.Annotations[cri.AnnotationTerminationGrace], 10, 64); err == nil {
		o.grace = g
	}
	return o
}
