package probes

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Exec runs exec probes (a *cri.Client). Without one, exec probes error (and never fail).
	Exec Execer
	// Clock schedules the probes; the real clock if nil. Network timeouts use real time.
	Clock clock.WithTicker
	// Logger gets a line per change of result (Info) and per failed attempt (Debug).
	Logger *slog.Logger
	// OnChange is called when a container's readiness, started or liveness result changes, so the
	// agent wakes the pod's worker. It is called from a probe worker's goroutine, without locks
	// held, and must not block.
	OnChange func(podUID types.UID)
	// OnEvent is called for every attempt that did not simply pass (failed, errored, or passed with
	// a warning): the agent records it as an event (Event.Reason, Event.Message). Same rules as
	// OnChange.
	OnEvent func(Event)
	// Jitter delays the first probe of containers that were already running when the Manager was
	// made (found after a Berth restart) by a random part of one period, so that a hundred pods
	// adopted at once are not probed in lockstep. The agent sets it; tests usually do not.
	Jitter bool
}

// ContainerState is what the agent knows of one instance of a container: the runtime's ID and
// start time. Only running instances are probed.
type ContainerState struct {
	Name      string
	ID        string
	StartedAt time.Time // initialDelaySeconds counts from here; now if zero
	Running   bool
}

// Event is one attempt that did not simply pass, for an event and a log line.
type Event struct {
	PodUID      types.UID
	Pod         types.NamespacedName
	Container   string
	ContainerID string
	Kind        Kind
	Outcome     Outcome // Failed, Errored or Warned
	Output      string  // what the probe said: the command's output, the HTTP status, the error; at most 1 KiB
}

// Reason is the event's reason, as the kubelet's: "ProbeWarning" for a warning, "Unhealthy"
// otherwise. Events of both reasons are of type Warning.
func (e Event) Reason() string {
	if e.Outcome == Warned {
		return "ProbeWarning"
	}
	return "Unhealthy"
}

// Message is the event's message: "Liveness probe failed: HTTP probe failed with statuscode: 500".
func (e Event) Message() string {
	return fmt.Sprintf("%s probe %s: %s", e.Kind.title(), e.Outcome, e.Output)
}

// Kill says why a container instance must be killed: its liveness or startup probe failed
// failureThreshold times in a row.
type Kill struct {
	Kind    Kind   // Liveness or Startup
	Message string // "Container web failed liveness probe, will be restarted", for the Killing event and the log
	Output  string // the last attempt's output, at most 1 KiB
	// GracePeriodSeconds is the probe's terminationGracePeriodSeconds; nil means the pod's.
	GracePeriodSeconds *int64
}

// GracePeriod is the grace to kill with: the probe's if it has one, else podGrace (the pod's
// terminationGracePeriodSeconds).
func (f Kill) GracePeriod(podGrace int64) int64 {
	if f.GracePeriodSeconds != nil {
		return *f.GracePeriodSeconds
	}
	return podGrace
}

// Manager runs the probes of the containers the agent tells it about (Sync) and keeps their
// results (Ready, Started, LivenessFailed). It runs one goroutine per probe of a running container
// instance and nothing else.
type Manager struct {
	cfg    ManagerConfig
	clk    clock.WithTicker
	log    *slog.Logger
	start  time.Time
	prober *prober
	run    runFunc // prober.run; tests replace it before the first Sync
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	live   atomic.Int64 // worker goroutines; tests compare it with the clock's waiters

	mu      sync.Mutex
	stopped bool
	pods    map[types.UID]*podEntry
	byID    map[string]*instance
}

// podEntry is what the Manager keeps of a pod.
type podEntry struct {
	uid         types.UID
	name        types.NamespacedName
	ip          string
	restart     v1.RestartPolicy
	terminating bool
	instances   map[string]*instance // by container name
}

// instance is one running instance of a container (one runtime ID) and its probe results.
type instance struct {
	pod         *podEntry
	name        string
	id          string
	spec        *v1.Container // a copy, for ports by name
	sidecar     bool          // an init container with restartPolicy Always
	startedAt   time.Time
	preexisting bool // running before the Manager started: the first probes get a jitter
	workers     map[Kind]*worker

	// Results, guarded by Manager.mu.
	gone         bool
	started      bool
	hasReadiness bool
	readiness    Result
	kill         *Kill
}

// NewManager makes a Manager. It starts nothing: workers start with Sync.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:    cfg,
		clk:    cfg.Clock,
		log:    cfg.Logger,
		start:  cfg.Clock.Now(),
		prober: newProber(cfg.Exec),
		ctx:    ctx,
		cancel: cancel,
		pods:   map[types.UID]*podEntry{},
		byID:   map[string]*instance{},
	}
	m.run = m.prober.run
	return m, nil
}

// Sync tells the Manager the pod's current containers; the agent calls it after every sync of the
// pod, with the pod's IP and every container instance it knows (at least the newest of each
// container). Workers start for running instances whose container has probes; the workers of an
// instance that is no longer running, missing from containers, or replaced by another ID stop,
// and its results are forgotten.
//
// A pod with a DeletionTimestamp is terminating: its liveness and startup probes stop (a container
// being shut down is not restarted), its readiness probes go on until the containers stop.
func (m *Manager) Sync(pod *v1.Pod, podIP string, containers []ContainerState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	pe := m.pods[pod.UID]
	if pe == nil {
		pe = &podEntry{uid: pod.UID, instances: map[string]*instance{}}
		m.pods[pod.UID] = pe
	}
	pe.name = types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	pe.ip = podIP
	pe.restart = pod.Spec.RestartPolicy
	if pod.DeletionTimestamp != nil && !pe.terminating {
		pe.terminating = true
		for _, inst := range pe.instances {
			m.stopWorker(inst, Liveness)
			m.stopWorker(inst, Startup)
		}
	}

	running := map[string]bool{}
	for _, cs := range containers {
		if !cs.Running || cs.ID == "" {
			continue
		}
		spec, sidecar := findContainer(pod, cs.Name)
		if spec == nil {
			continue
		}
		running[cs.Name] = true
		old := pe.instances[cs.Name]
		if old != nil && old.id == cs.ID {
			continue
		}
		if old != nil {
			m.stopInstance(old)
		}
		if prev := m.byID[cs.ID]; prev != nil { // the same ID under another name: a confused caller
			m.stopInstance(prev)
			delete(prev.pod.instances, prev.name)
		}
		m.startInstance(pe, spec, sidecar, cs)
	}
	for name, inst := range pe.instances {
		if !running[name] {
			m.stopInstance(inst)
			delete(pe.instances, name)
		}
	}
	if len(pe.instances) == 0 {
		delete(m.pods, pod.UID)
	}
}

// findContainer finds the spec of the container named name: an app container, or a sidecar (an
// init container with restartPolicy Always). Other init containers are never probed.
func findContainer(pod *v1.Pod, name string) (c *v1.Container, sidecar bool) {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], false
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name == name && c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			return c, true
		}
	}
	return nil, false
}

// startInstance records a new running instance and starts its workers. m.mu is held.
func (m *Manager) startInstance(pe *podEntry, spec *v1.Container, sidecar bool, cs ContainerState) {
	now := m.clk.Now()
	startedAt := cs.StartedAt
	if startedAt.IsZero() {
		startedAt = now
	}
	inst := &instance{
		pod:         pe,
		name:        cs.Name,
		id:          cs.ID,
		spec:        spec.DeepCopy(),
		sidecar:     sidecar,
		startedAt:   startedAt,
		preexisting: startedAt.Before(m.start),
		workers:     map[Kind]*worker{},
	}
	pe.instances[cs.Name] = inst
	m.byID[cs.ID] = inst
	if inst.spec.ReadinessProbe != nil {
		inst.hasReadiness = true
		inst.readiness = initialResult(Readiness)
	}
	if inst.spec.StartupProbe == nil {
		inst.started = true
		m.startGated(inst)
	} else if !pe.terminating {
		m.startWorker(inst, Startup, withDefaults(inst.spec.StartupProbe))
	}
}

// startGated starts the liveness and readiness workers of an instance that has started (at once
// when it has no startup probe, else when that passes). A terminating pod gets no liveness
// worker. m.mu is held.
func (m *Manager) startGated(inst *instance) {
	for _, k := range []Kind{Liveness, Readiness} {
		if p := k.specOf(inst.spec); p != nil && !(k == Liveness && inst.pod.terminating) {
			m.startWorker(inst, k, withDefaults(p))
		}
	}
}

// stopInstance stops the instance's workers and forgets its results. m.mu is held. Workers end
// on their own; Stop waits for them.
func (m *Manager) stopInstance(inst *instance) {
	inst.gone = true
	for k := range inst.workers {
		m.stopWorker(inst, k)
	}
	if m.byID[inst.id] == inst {
		delete(m.byID, inst.id)
	}
}

// RemovePod stops the workers of every container of the pod and forgets their results. The agent
// calls it when the pod is gone (or when it starts terminating it, if it wants readiness to stop
// at once).
func (m *Manager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pe := m.pods[uid]
	if pe == nil {
		return
	}
	for _, inst := range pe.instances {
		m.stopInstance(inst)
	}
	delete(m.pods, uid)
}

// Stop stops every worker and waits until their goroutines have returned. Sync does nothing after
// it.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	for uid, pe := range m.pods {
		for _, inst := range pe.instances {
			m.stopInstance(inst)
		}
		delete(m.pods, uid)
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.prober.http.close()
}

// Ready reports whether the running container instance is ready: it has started and its readiness
// probe has passed (or it has none). False for an instance the Manager was not told about by Sync.
func (m *Manager) Ready(containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.byID[containerID]
	if inst == nil || !inst.started {
		return false
	}
	return !inst.hasReadiness || inst.readiness == Success
}

// Started reports whether the running container instance has started: its startup probe has
// passed (or it has none). False for an instance the Manager was not told about by Sync.
func (m *Manager) Started(containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.byID[containerID]
	return inst != nil && inst.started
}

// LivenessFailed reports whether the container instance's liveness or startup probe has failed
// failureThreshold times in a row, and so must be killed (with k.GracePeriod) and handled by the
// restart policy. It stays true until Sync no longer lists the instance as running.
func (m *Manager) LivenessFailed(containerID string) (k Kill, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.byID[containerID]
	if inst == nil || inst.kill == nil {
		return Kill{}, false
	}
	return *inst.kill, true
}

// target is what the next attempt of inst's probes needs, read under the lock (the pod IP can be
// updated by Sync).
func (m *Manager) target(inst *instance) target {
	m.mu.Lock()
	defer m.mu.Unlock()
	return target{podIP: inst.pod.ip, containerID: inst.id, container: inst.spec}
}

// report passes a non-passing attempt to OnEvent and the debug log.
func (m *Manager) report(inst *instance, k Kind, a attempt) {
	m.mu.Lock()
	name := inst.pod.name
	m.mu.Unlock()
	e := Event{
		PodUID:      inst.pod.uid,
		Pod:         name,
		Container:   inst.name,
		ContainerID: inst.id,
		Kind:        k,
		Outcome:     a.outcome,
		Output:      a.output,
	}
	m.log.Debug("probe "+string(a.outcome), "pod", e.Pod.String(), "uid", string(e.PodUID), "container", e.Container, "id", e.ContainerID, "probe", string(k), "output", a.output)
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(e)
	}
}

// publish records a result that passed its threshold and says whether the worker goes on.
func (m *Manager) publish(inst *instance, k Kind, r Result, run int, p *v1.Probe, output string) (goOn bool) {
	m.mu.Lock()
	if inst.gone {
		m.mu.Unlock()
		return false
	}
	log := m.log.With("pod", inst.pod.name.String(), "uid", string(inst.pod.uid), "container", inst.name, "id", inst.id)
	changed := false
	goOn = true
	switch {
	case k == Readiness:
		if inst.readiness != r {
			inst.readiness = r
			changed = true
			if r == Success {
				log.Info("readiness probe passed: container is ready", "successes", run)
			} else {
				log.Info("readiness probe failed: container is not ready", "failures", run, "output", output)
			}
		}
	case k == Startup && r == Success:
		inst.started = true
		m.startGated(inst)
		changed, goOn = true, false
		log.Info("startup probe passed: container has started")
	case r == Failure: // liveness or startup
		kill := &Kill{Kind: k, Output: output, GracePeriodSeconds: p.TerminationGracePeriodSeconds}
		kill.Message = fmt.Sprintf("Container %s failed %s probe, %s", inst.name, k, m.restartNote(inst))
		inst.kill = kill
		changed, goOn = true, false
		log.Info(fmt.Sprintf("%s probe failed %d times in a row: the container must be killed", k, run), "output", output)
	}
	uid := inst.pod.uid
	m.mu.Unlock()
	if changed && m.cfg.OnChange != nil {
		m.cfg.OnChange(uid)
	}
	return goOn
}

// restartNote ends a Kill's message with what the restart policy will do after the kill.
func (m *Manager) restartNote(inst *instance) string {
	if inst.sidecar || inst.pod.restart != v1.RestartPolicyNever {
		return "will be restarted"
	}
	return "will not be restarted (restartPolicy Never)"
}
