package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
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

	Clock  clock.WithTicker
	Logger *slog.Logger
}

// Agent runs the pods its sources want on the local runtime.
type Agent struct {
	cfg    Config
	store  *statusStore
	static *staticSource

	mu      sync.Mutex
	workers *podWorkers
	relist  *relist

	// admitted are the pods given a worker; rejected those refused (maxPods), by UID. Both are
	// touched only by Run's loop.
	admitted map[types.UID]bool
	rejected map[types.UID]bool
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
	a := &Agent{cfg: cfg, store: newStatusStore(), admitted: map[types.UID]bool{}, rejected: map[types.UID]bool{}}
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
	return a, nil
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
	if age := a.cfg.Clock.Since(time.Unix(0, last)); age > 10*r.period {
		return fmt.Errorf("the last successful relist of the runtime was %s ago", age.Round(time.Second))
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

	workers := newPodWorkers(ctx, &a.cfg, a.store)
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
	}
	a.mu.Lock()
	a.workers, a.relist = workers, rl
	a.mu.Unlock()
	wg.Add(1)
	go func() { defer wg.Done(); rl.run(ctx) }()

	desired := map[string]map[types.UID]*v1.Pod{} // by source
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			workers.wait()
			return nil
		case u := <-updates:
			a.store.setManifestErrors(u.Source, u.Errors)
			a.apply(workers, desired, u)
			readyMu.Lock()
			first := !seen[u.Source]
			seen[u.Source] = true
			readyMu.Unlock()
			if first {
				a.cfg.Logger.Info("source ready", "source", u.Source, "pods", len(u.Pods), "manifestErrors", len(u.Errors))
			}
		}
	}
}

// apply diffs a source's new snapshot against its previous one: removals first, so a replaced pod
// frees its name before its successor starts.
func (a *Agent) apply(workers *podWorkers, desired map[string]map[types.UID]*v1.Pod, u SourceUpdate) {
	prev := desired[u.Source]
	next := make(map[types.UID]*v1.Pod, len(u.Pods))
	for _, p := range u.Pods {
		next[p.UID] = p
	}
	for uid := range prev {
		if _, ok := next[uid]; !ok {
			if a.rejected[uid] {
				delete(a.rejected, uid)
				a.store.remove(uid)
				continue
			}
			delete(a.admitted, uid)
			workers.remove(uid)
		}
	}
	for _, p := range u.Pods {
		if a.rejected[p.UID] {
			continue // Failed is final, as with the kubelet
		}
		if !a.admitted[p.UID] {
			if err := a.admit(p); err != nil {
				a.reject(p, err)
				continue
			}
			a.admitted[p.UID] = true
		}
		if old := prev[p.UID]; old == nil || old != p {
			workers.update(p)
		}
	}
	desired[u.Source] = next
}

// admissionError is why a pod cannot run on this node, with the kubelet's reason.
type admissionError struct{ reason, message string }

func (e *admissionError) Error() string { return e.reason + ": " + e.message }

// admit decides whether a new pod may run here.
func (a *Agent) admit(p *v1.Pod) *admissionError {
	if used := len(a.admitted); used >= a.cfg.MaxPods {
		return &admissionError{"OutOfpods", fmt.Sprintf("Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", used, a.cfg.MaxPods)}
	}
	return nil
}

func (a *Agent) reject(p *v1.Pod, err *admissionError) {
	a.cfg.Logger.Warn("pod rejected", "pod", p.Namespace+"/"+p.Name, "uid", string(p.UID), "reason", err.reason, "message", err.message)
	a.rejected[p.UID] = true
	a.store.set(p, v1.PodStatus{Phase: v1.PodFailed, Reason: err.reason, Message: err.message}, err.Error())
}

// SocketPath is where the local endpoint listens under a root dir.
func SocketPath(rootDir string) string { return filepath.Join(rootDir, "berth.sock") }
