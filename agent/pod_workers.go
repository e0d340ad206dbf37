package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/probes"
	"github.com/berth-dev/berth/volumes"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// podWorkers owns one podWorker per pod UID. Everything that wants a pod to change (a source update,
// the relist, a timer) goes through it; it never calls the runtime itself.
type podWorkers struct {
	ctx   context.Context
	cfg   *Config
	rt    Runtime
	clock clock.WithTicker
	log   *slog.Logger
	store *statusStore

	crashBackoff  *backoff // crashing containers: 10s doubling to 5m
	pullBackoff   *backoff // failing image pulls: 10s doubling to 5m
	createBackoff *backoff // failing sandbox or container creation: 1s doubling to 1m

	// prober runs the containers' liveness, readiness and startup probes.
	prober *probes.Manager
	// hooks runs the containers' postStart and preStop hooks.
	hooks *hookRunner
	// env fetches the ConfigMaps and Secrets of API pods' environments; nil in standalone mode.
	env *envSources
	// volumes sets up and tears down pods' volumes; nil without a root directory (unit tests),
	// where pods with volumes cannot start.
	volumes *volumes.Manager

	// exits wakes a worker the moment a container of its pod exits (nil: the relist alone does).
	exits *exitWatcher

	// recorder emits the kubelet's pod events (Pulling, Started, Killing, BackOff, ...); nil in
	// standalone mode.
	recorder record.EventRecorder
	// onTerminated is called when a pod is gone from the runtime (cluster mode: finish an API
	// deletion).
	onTerminated func(pod *v1.Pod)

	mu                sync.Mutex
	workers           map[types.UID]*podWorker
	terminatingByName map[string]*podWorker
	// finished are pods terminated while their source still lists them (an API pod being deleted):
	// they must not be started again.
	finished map[types.UID]bool
	wg       sync.WaitGroup
}

func newPodWorkers(ctx context.Context, cfg *Config, store *statusStore) (*podWorkers, error) {
	m := &podWorkers{
		ctx:               ctx,
		cfg:               cfg,
		rt:                cfg.Runtime,
		clock:             cfg.Clock,
		log:               cfg.Logger,
		store:             store,
		crashBackoff:      newBackoff(cfg.Clock, 10*time.Second, 300*time.Second),
		pullBackoff:       newBackoff(cfg.Clock, 10*time.Second, 300*time.Second),
		createBackoff:     newBackoff(cfg.Clock, time.Second, time.Minute),
		workers:           map[types.UID]*podWorker{},
		terminatingByName: map[string]*podWorker{},
		finished:          map[types.UID]bool{},
		hooks:             newHookRunner(cfg.Runtime, cfg.Clock),
	}
	var objects volumes.APIObjects
	if cfg.Cluster != nil {
		m.env = newEnvSources(cfg.Cluster.Client, cfg.Clock)
		objects = newVolumeObjects(cfg.Cluster.Client, cfg.Clock)
	}
	if cfg.RootDir != "" {
		vm, err := volumes.NewManager(volumes.Config{
			RootDir:            cfg.RootDir,
			Objects:            objects,
			NodeMemoryCapacity: cfg.NodeMemoryCapacity,
			Clock:              cfg.Clock,
		})
		if err != nil {
			return nil, err
		}
		m.volumes = vm
	}
	prober, err := probes.NewManager(probes.ManagerConfig{
		Exec:     cfg.Runtime,
		Clock:    cfg.Clock,
		Logger:   cfg.Logger.With("component", "probes"),
		OnChange: m.wake,
		OnEvent:  m.probeEvent,
		Jitter:   true, // after a restart, 100 pods' probes must not fire in lockstep
	})
	if err != nil {
		return nil, err
	}
	m.prober = prober
	m.exits = newExitWatcher(ctx, cfg.Runtime, m.wake, cfg.Clock, cfg.Logger.With("component", "exits"))
	return m, nil
}

// probeEvent reports a failed (or warned) probe attempt: a log line and, in cluster mode, the
// kubelet's Unhealthy event.
func (m *podWorkers) probeEvent(e probes.Event) {
	m.log.Info("probe "+string(e.Outcome), "pod", e.Pod.String(), "container", e.Container, "probe", string(e.Kind), "output", e.Output)
	if m.recorder == nil {
		return
	}
	ref := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: e.Pod.Namespace, Name: e.Pod.Name, UID: e.PodUID,
		FieldPath: "spec.containers{" + e.Container + "}"}
	m.recorder.Eventf(ref, v1.EventTypeWarning, e.Reason(), "%s", e.Message())
}

func nsName(namespace, name string) string { return namespace + "/" + name }

// update makes pod desired: a new UID gets a worker, a known one its new spec.
func (m *podWorkers) update(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished[pod.UID] {
		return
	}
	old := m.workers[pod.UID]
	if old != nil && !old.removed {
		old.setPod(pod)
		return
	}
	if old != nil && pod.DeletionTimestamp != nil {
		// Being deleted and already terminating (its grace period taken when that began): a
		// replacement worker behind it would finish the deletion a second time.
		return
	}
	w := newPodWorker(m, pod.UID, pod)
	if old != nil {
		w.waitFor = old.done // the same pod came back while its old self is still being removed
	} else if t := m.terminatingByName[nsName(pod.Namespace, pod.Name)]; t != nil {
		w.waitFor = t.done
	}
	m.start(w)
}

func (m *podWorkers) start(w *podWorker) {
	m.workers[w.uid] = w
	m.wg.Add(1)
	go w.run()
}

// remove makes a pod undesired: its worker terminates it.
func (m *podWorkers) remove(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workers[uid]
	if w == nil || w.removed {
		return
	}
	w.markRemoved()
	ns, name := w.names()
	m.terminatingByName[nsName(ns, name)] = w
}

// forgetFinished drops the record of a finished pod once no source lists it any more.
func (m *podWorkers) forgetFinished(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.finished, uid)
}

// wake asks the pod's worker to sync now.
func (m *podWorkers) wake(uid types.UID) {
	m.mu.Lock()
	w := m.workers[uid]
	m.mu.Unlock()
	if w != nil {
		w.wake()
	}
}

// seen reports whether uid's worker last looked at the runtime when it was as fingerprint fp.
func (m *podWorkers) seen(uid types.UID, fp string) bool {
	m.mu.Lock()
	w := m.workers[uid]
	m.mu.Unlock()
	return w != nil && w.observedFingerprint() == fp
}

// known reports whether a worker exists for uid.
func (m *podWorkers) known(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.workers[uid] != nil
}

// terminateOrphan starts a terminating worker for a pod found in the runtime that no source wants
// (its manifest went away while Berth was down, for instance).
func (m *podWorkers) terminateOrphan(uid types.UID, sb *runtimeapi.PodSandbox) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers[uid] != nil {
		return
	}
	w := newPodWorker(m, uid, nil)
	w.orphan = orphanFromSandbox(sb)
	w.log = m.log.With("pod", nsName(w.orphan.namespace, w.orphan.name), "uid", string(uid))
	w.removed = true
	w.log.Info("found a pod in the runtime that no source wants: removing it")
	m.terminatingByName[nsName(w.orphan.namespace, w.orphan.name)] = w
	m.start(w)
}

// workerDone is called by a worker when its pod is gone from the runtime.
func (m *podWorkers) workerDone(w *podWorker) {
	m.mu.Lock()
	if m.workers[w.uid] == w {
		delete(m.workers, w.uid)
		m.store.remove(w.uid)
		m.crashBackoff.forget(string(w.uid) + "/")
		m.pullBackoff.forget(string(w.uid) + "/")
		m.createBackoff.forget(string(w.uid) + "/")
	}
	ns, name := w.names()
	if m.terminatingByName[nsName(ns, name)] == w {
		delete(m.terminatingByName, nsName(ns, name))
	}
	if w.pod != nil {
		m.finished[w.uid] = true
	}
	m.mu.Unlock()
	if m.onTerminated != nil && w.pod != nil {
		m.onTerminated(w.pod)
	}
	close(w.done)
}

// wait blocks until every worker goroutine has returned (after the agent's context ends).
func (m *podWorkers) wait() { m.wg.Wait() }
