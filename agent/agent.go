package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/cgroups"
	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/eviction"
	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// Config is what an Agent runs with; cmd/berth fills it from flags and the config file.
type Config struct {
	NodeName string
	// RootDir holds Berth's state: the local socket (berth.sock) and, later, pod directories.
	RootDir string
	// PodLogsDir is the root of container logs, in the kubelet layout (/var/log/pods).
	PodLogsDir string
	// StaticPodPath is the manifest directory; "" runs no static pods.
	StaticPodPath      string
	FileCheckFrequency time.Duration
	// SyncFrequency is how often a pod is synced when nothing wakes its worker.
	SyncFrequency time.Duration
	// RelistPeriod is how often the runtime is relisted to notice containers that died.
	RelistPeriod time.Duration

	HostResolvConf     cri.ResolvConf
	ClusterDNS         []string
	ClusterDomain      string
	NodeIPs            []string
	NodeMemoryCapacity int64
	// MaxPods is how many pods may run here (110 by default); pods beyond it fail with OutOfpods.
	MaxPods int

	Runtime     Runtime
	RuntimeName string // prefix of container IDs in status ("containerd")

	// ShutdownGracePeriod enables graceful node shutdown (0: off): Logind's delay lock holds a
	// shutdown back while the pods stop, regular ones within ShutdownGracePeriod −
	// ShutdownGracePeriodCriticalPods, then critical ones within ShutdownGracePeriodCriticalPods
	// (node_shutdown.go).
	ShutdownGracePeriod             time.Duration
	ShutdownGracePeriodCriticalPods time.Duration
	Logind                          ShutdownInhibitor

	// Cgroups, when set, owns the pod cgroups (cgroups.Manager): a pod's cgroup is made before its
	// sandbox and given to the runtime as CgroupParent, and removed once the pod is gone. nil:
	// sandboxes get no CgroupParent (cgroupsPerQOS false) and the runtime's default parent.
	Cgroups PodCgroups

	// EvictionHard are the hard eviction thresholds (kubelet syntax; nil: the kubelet's defaults),
	// kept for EvictionPressureTransitionPeriod (5m) after they were last met, measured every
	// EvictionMonitoringPeriod (10s; not a kubelet setting, so not in the config file). See
	// docs/eviction.md.
	EvictionHard                     map[string]string
	EvictionPressureTransitionPeriod time.Duration
	EvictionMonitoringPeriod         time.Duration
	// ImageGCHighThresholdPercent (85) and ImageGCLowThresholdPercent (80) bound the image
	// filesystem's use; ImageMinimumGCAge (2m) is how long an image must be unused to go.
	ImageGCHighThresholdPercent int
	ImageGCLowThresholdPercent  int
	ImageMinimumGCAge           time.Duration

	// Cluster, when set, makes Berth a cluster node (API pods, Node, Lease, mirror pods, status).
	Cluster *ClusterConfig

	Clock  clock.WithTicker
	Logger *slog.Logger
}

// PodCgroups is the pod cgroup hierarchy as the agent uses it (cgroups.Manager).
type PodCgroups interface {
	// PodParent is the pod's cgroup as the runtime names it (the sandbox's CgroupParent).
	PodParent(pod *v1.Pod) string
	// EnsurePod makes the pod's cgroup with the pod's limits (or updates them).
	EnsurePod(pod *v1.Pod) error
	// RemovePod removes the pod's cgroup once nothing of the pod runs.
	RemovePod(uid types.UID) error
	// CleanupOrphans removes the pod cgroups of pods for which active is false.
	CleanupOrphans(active func(types.UID) bool) error
}

// Agent runs the pods its sources want on the local runtime.
type Agent struct {
	cfg    Config
	store  *statusStore
	static *staticSource

	mu      sync.Mutex
	workers *podWorkers
	relist  *relist

	// sourcesReady reports whether every source has sent its first snapshot; set by Run.
	sourcesReady func() bool

	// shuttingDown is set while the node shuts down (node_shutdown.go): new pods are rejected.
	shuttingDown atomic.Bool

	// admitter holds the pods given a worker; rejected those refused, by UID. Both are touched only
	// by Run's loop.
	admitter *admitter
	rejected map[types.UID]bool
	// spareDesired is a cleared map that apply reuses for its next snapshot (only the Run loop
	// touches it).
	spareDesired map[types.UID]*v1.Pod

	// Cluster mode.
	health   *apiHealth
	node     *nodeAgent
	api      *apiSource
	mirrors  *mirrorPods
	statuses *statusManager
	recorder record.EventRecorder

	// Node pressure: signals, conditions, admission and evictions; image garbage collection.
	eviction *eviction.Manager
	imageGC  *eviction.ImageGC
}

// New checks cfg and prepares an agent; nothing runs until Run.
func New(cfg Config) (*Agent, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("agent: no container runtime")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("agent: node name is empty")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SyncFrequency <= 0 {
		cfg.SyncFrequency = time.Minute
	}
	if cfg.RelistPeriod <= 0 {
		cfg.RelistPeriod = time.Second
	}
	if cfg.PodLogsDir == "" {
		cfg.PodLogsDir = "/var/log/pods"
	}
	if cfg.MaxPods <= 0 {
		cfg.MaxPods = 110
	}
	if cfg.RuntimeName == "" {
		cfg.RuntimeName = "cri"
	}
	if cfg.ImageMinimumGCAge == 0 {
		cfg.ImageMinimumGCAge = eviction.DefaultImageMinimumGCAge
	}
	a := &Agent{cfg: cfg, store: newStatusStore(), rejected: map[types.UID]bool{}}
	a.admitter = newAdmitter(cfg.MaxPods, a.currentNode)
	if err := a.newEvictionManager(); err != nil {
		return nil, err
	}
	a.admitter.pressure = a.eviction.Admit
	gc, err := eviction.NewImageGC(eviction.ImageGCConfig{
		HighThresholdPercent: cfg.ImageGCHighThresholdPercent,
		LowThresholdPercent:  cfg.ImageGCLowThresholdPercent,
		MinimumGCAge:         cfg.ImageMinimumGCAge,
		Runtime:              cfg.Runtime,
		Fs:                   eviction.Statfs{},
		SandboxImage:         cfg.Runtime.SandboxImage,
		Event:                a.nodeEvent,
		Clock:                cfg.Clock,
		Logger:               cfg.Logger.With("component", "image-gc"),
	})
	if err != nil {
		return nil, err
	}
	a.imageGC = gc
	if cfg.StaticPodPath != "" {
		s, err := newStaticSource(StaticSourceConfig{
			Dir:      cfg.StaticPodPath,
			NodeName: cfg.NodeName,
			Rescan:   cfg.FileCheckFrequency,
			Clock:    cfg.Clock,
			Logger:   cfg.Logger.With("source", SourceFile),
		})
		if err != nil {
			return nil, err
		}
		a.static = s
	}
	if err := os.MkdirAll(cfg.PodLogsDir, 0o755); err != nil {
		return nil, fmt.Errorf("pod logs directory %s: %w", cfg.PodLogsDir, err)
	}
	if c := cfg.Cluster; c != nil {
		if err := a.newCluster(c); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Agent) newCluster(c *ClusterConfig) error {
	cfg := a.cfg
	log := cfg.Logger
	a.health = newAPIHealth(log.With("component", "api"))
	broadcaster := record.NewBroadcaster(record.WithContext(context.Background()))
	events := c.EventClient
	if events == nil {
		events = c.Client
	}
	broadcaster.StartRecordingToSink(&kubeclient.EventSink{Interface: events.CoreV1().Events("")})
	// "kubelet" as the source component: tools and dashboards filter node events on it.
	a.recorder = broadcaster.NewRecorder(kubeclient.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	machine, err := readMachineInfo(cfg.RootDir)
	if err != nil {
		return err
	}
	node, err := newNodeAgent(nodeAgentConfig{
		Cluster:  c,
		NodeName: cfg.NodeName,
		NodeIPs:  cfg.NodeIPs,
		// The Hostname address is the node name, i.e. --hostname-override when given, as the
		// kubelet reports it.
		Hostname:      cfg.NodeName,
		Runtime:       cfg.Runtime,
		RelistHealthy: a.Healthy,
		MaxPods:       cfg.MaxPods,
		Machine:       machine,
		Clock:         cfg.Clock,
		Logger:        log,
		Recorder:      a.recorder,
		Pressure:      a.eviction.Conditions,
	})
	if err != nil {
		return err
	}
	a.node = node
	a.mirrors = newMirrorPods(c.Client, node.Node, a.health, log.With("component", "mirror-pods"))
	a.api = newAPISource(c.Client, cfg.NodeName, a.mirrors, log.With("source", SourceAPI))
	a.statuses = newStatusManager(c.Client, a.store, a.api, a.mirrors, a.health, log.With("component", "status"))
	a.store.onChange = a.statuses.enqueue
	a.mirrors.onMirror = a.statuses.enqueue
	return nil
}

// currentNode is the Node as last registered, nil in standalone mode.
func (a *Agent) currentNode() *v1.Node {
	if a.node == nil {
		return nil
	}
	return a.node.Node()
}

// PodList is the local view: the pods this agent runs and the manifests it could not use.
func (a *Agent) PodList() PodList { return a.store.podList() }

// Healthy reports whether the agent's loops are alive: the last relist of the runtime succeeded
// within a few periods.
func (a *Agent) Healthy() error {
	a.mu.Lock()
	r := a.relist
	a.mu.Unlock()
	if r == nil {
		return errors.New("not started")
	}
	last := r.lastRelist.Load()
	if last == 0 {
		return errors.New("the runtime has not been listed yet")
	}
	limit := 10 * r.period
	if r.events.isLive() {
		limit = max(limit, 3*eventedRelistPeriod)
	}
	if age := a.cfg.Clock.Since(time.Unix(0, last)); age > limit {
		return fmt.Errorf("the last successful relist of the runtime was %s ago", age.Round(time.Second))
	}
	return nil
}

// Ready reports whether the agent has done its first sync: every source has sent its first snapshot,
// the runtime has been listed and, in cluster mode, the Node is registered. The error says what is
// still pending (for systemd's STATUS= line).
func (a *Agent) Ready() error {
	a.mu.Lock()
	sourcesReady := a.sourcesReady
	a.mu.Unlock()
	if err := a.Healthy(); err != nil {
		return err
	}
	if sourcesReady == nil || !sourcesReady() {
		return errors.New("waiting for the pod sources' first snapshot")
	}
	if a.node != nil && a.node.Node() == nil {
		return errors.New("waiting for the Node to be registered with the API server")
	}
	return nil
}

// Run runs the agent until ctx ends. Pods are left running when it returns: stopping Berth is not
// stopping the node's workloads.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates := make(chan SourceUpdate, 16)
	expected := map[string]bool{}
	var wg sync.WaitGroup
	if a.static != nil {
		expected[SourceFile] = true
		wg.Add(1)
		go func() { defer wg.Done(); a.static.Run(ctx, updates) }()
	}

	workers, err := newPodWorkers(ctx, &a.cfg, a.store)
	if err != nil {
		return err
	}
	defer workers.prober.Stop()
	defer workers.exits.stop()
	relistKick := make(chan struct{}, 1)
	events := newContainerEvents(a.cfg.Runtime, workers.wake, func() {
		select {
		case relistKick <- struct{}{}:
		default:
		}
	}, a.cfg.Clock, a.cfg.Logger.With("component", "container-events"))
	if events != nil && workers.exits != nil {
		workers.exits.standAside = events.isLive
	}
	if a.cfg.Cluster != nil {
		workers.recorder = a.recorder
		workers.onTerminated = a.finishDeletion
		expected[SourceAPI] = true
		a.api.start(ctx)
		wg.Add(4)
		go func() { defer wg.Done(); a.api.Run(ctx, updates) }()
		go func() { defer wg.Done(); a.mirrors.run(ctx) }()
		go func() { defer wg.Done(); a.statuses.run(ctx, statusWriters); <-ctx.Done() }()
		go func() {
			// Static pods run before the Node is registered (a control plane may be among them);
			// mirror pods and admission by node resources follow once it is.
			defer wg.Done()
			if err := a.node.Register(ctx); err != nil {
				return
			}
			a.node.Run(ctx)
		}()
	}
	seen := map[string]bool{}
	var readyMu sync.Mutex
	sourcesReady := func() bool {
		readyMu.Lock()
		defer readyMu.Unlock()
		for s := range expected {
			if !seen[s] {
				return false
			}
		}
		return true
	}
	rl := &relist{
		rt:           a.cfg.Runtime,
		clock:        a.cfg.Clock,
		period:       a.cfg.RelistPeriod,
		log:          a.cfg.Logger.With("component", "relist"),
		workers:      workers,
		sourcesReady: sourcesReady,
		events:       events,
		kick:         relistKick,
	}
	a.mu.Lock()
	a.workers, a.relist, a.sourcesReady = workers, rl, sourcesReady
	a.mu.Unlock()
	wg.Add(2)
	go func() { defer wg.Done(); rl.run(ctx) }()
	if events != nil {
		wg.Add(1)
		go func() { defer wg.Done(); events.run(ctx) }()
	}
	if a.cfg.ShutdownGracePeriod > 0 && a.cfg.Logind != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.runNodeShutdown(ctx, workers) }()
	}
	go func() { defer wg.Done(); a.watchEmptyDirLimits(ctx, workers) }()
	wg.Add(2)
	go func() { defer wg.Done(); a.eviction.Run(ctx) }()
	go func() { defer wg.Done(); a.imageGC.Run(ctx) }()

	desired := map[string]map[types.UID]*v1.Pod{} // by source
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			workers.wait()
			return nil
		case u := <-updates:
			a.store.setManifestErrors(u.Source, u.Errors)
			if u.Source == SourceFile && a.mirrors != nil {
				a.mirrors.setStatic(u.Pods)
			}
			a.apply(workers, desired, u)
			readyMu.Lock()
			first := !seen[u.Source]
			seen[u.Source] = true
			readyMu.Unlock()
			if first {
				a.cfg.Logger.Info("source ready", "source", u.Source, "pods", len(u.Pods), "manifestErrors", len(u.Errors))
				if sourcesReady() {
					// Orphans (pods in the runtime no source has) and leftovers go at once, not
					// at the next relist, which may be eventedRelistPeriod away.
					select {
					case relistKick <- struct{}{}:
					default:
					}
				}
			}
		}
	}
}

// apply diffs a source's new snapshot against its previous one: removals first, so a replaced pod
// frees its name before its successor starts.
func (a *Agent) apply(workers *podWorkers, desired map[string]map[types.UID]*v1.Pod, u SourceUpdate) {
	prev := desired[u.Source]
	// The map of the snapshot before prev is reused: a burst sends snapshot after snapshot, and a
	// fresh map of every pod each time was most of what they allocated.
	next := a.spareDesired
	a.spareDesired = nil
	if next == nil {
		next = make(map[types.UID]*v1.Pod, len(u.Pods))
	}
	for _, p := range u.Pods {
		next[p.UID] = p
	}
	for uid := range prev {
		if _, ok := next[uid]; ok {
			continue
		}
		workers.forgetFinished(uid)
		if a.rejected[uid] {
			delete(a.rejected, uid)
			a.store.remove(uid)
			continue
		}
		a.admitter.forget(uid)
		workers.remove(uid)
	}
	for _, p := range u.Pods {
		if a.rejected[p.UID] {
			continue // Failed is final, as with the kubelet
		}
		if p.DeletionTimestamp != nil {
			// Deleted in the API: stop it within its grace period, then finish the deletion.
			a.admitter.forget(p.UID)
			workers.update(p)
			workers.remove(p.UID)
			continue
		}
		if a.admitter.isAdmitted(p.UID) {
			a.admitter.refresh(p) // a pod that went Failed or Succeeded frees its room
		} else {
			if a.shuttingDown.Load() {
				a.reject(p, &admissionError{reason: nodeShutdownNotAdmittedReason, message: nodeShutdownNotAdmittedMsg})
				continue
			}
			if err := a.admitter.admit(p); err != nil {
				a.reject(p, err)
				continue
			}
		}
		if old := prev[p.UID]; old == nil || podChanged(old, p) {
			workers.update(p)
		}
	}
	desired[u.Source] = next
	if prev != nil {
		clear(prev)
		a.spareDesired = prev
	}
}

// podChanged reports whether a new version of a pod matters to its worker. A status-only change —
// above all Berth's own status patches coming back through the informer — does not, unless the
// phase changed (someone else failed or evicted the pod): a sync per status write would double the
// runtime calls of every pod start.
func podChanged(old, p *v1.Pod) bool {
	if old == p {
		return false
	}
	// Of the status, only a terminal phase set by someone else matters (the pod is never started
	// again); the rest is Berth's own status coming back through the watch.
	return terminal(old) != terminal(p) ||
		!apiequality.Semantic.DeepEqual(old.Spec, p.Spec) ||
		!apiequality.Semantic.DeepEqual(old.Labels, p.Labels) ||
		!apiequality.Semantic.DeepEqual(old.Annotations, p.Annotations) ||
		!apiequality.Semantic.DeepEqual(old.DeletionTimestamp, p.DeletionTimestamp) ||
		!apiequality.Semantic.DeepEqual(old.DeletionGracePeriodSeconds, p.DeletionGracePeriodSeconds)
}

func (a *Agent) reject(p *v1.Pod, err *admissionError) {
	a.cfg.Logger.Warn("pod rejected", "pod", p.Namespace+"/"+p.Name, "uid", string(p.UID), "reason", err.reason, "message", err.message)
	a.rejected[p.UID] = true
	if a.recorder != nil {
		a.recorder.Eventf(&v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID}, v1.EventTypeWarning, err.reason, "%s", err.message)
	}
	st := v1.PodStatus{Phase: v1.PodFailed, Reason: err.reason, Message: err.message, QOSClass: cgroups.QOSClass(p)}
	a.store.set(p, st, err.Error())
}

// finishDeletion deletes an API pod once its containers are gone: grace 0, with its UID as a
// precondition so that a new pod of the same name is never deleted by mistake.
func (a *Agent) finishDeletion(p *v1.Pod) {
	if p.DeletionTimestamp == nil || p.Annotations[annotationConfigSource] == SourceFile {
		return
	}
	uid := p.UID
	err := a.cfg.Cluster.Client.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name,
		metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		a.cfg.Logger.Info("pod deleted from the API server", "pod", p.Namespace+"/"+p.Name, "uid", string(uid))
	default:
		// The informer keeps the pod listed; the next snapshot finds it finished and retries.
		a.health.failed(fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err))
		go func() {
			time.Sleep(time.Second)
			a.finishDeletion(p)
		}()
	}
}

// SocketPath is where the local endpoint listens under a root dir.
func SocketPath(rootDir string) string { return filepath.Join(rootDir, "berth.sock") }
