package eviction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/cgroups"
	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// The kubelet's reasons, messages and timings.
const (
	// Reason is a pod's status.reason when it was evicted, and when it was refused under pressure.
	Reason = "Evicted"
	// DefaultPressureTransitionPeriod is how long a pressure condition stays after its threshold
	// was last met (evictionPressureTransitionPeriod).
	DefaultPressureTransitionPeriod = 5 * time.Minute
	// DefaultMonitoringPeriod is how often signals are measured (the kubelet's housekeeping).
	DefaultMonitoringPeriod = 10 * time.Second
	// HardEvictionGracePeriod is the grace period of a pod evicted for a hard threshold (the
	// kubelet's immediate eviction: one second).
	HardEvictionGracePeriod = 1
	// podCleanupTimeout is how long the next eviction waits for the last evicted pod to be gone:
	// what it frees must be measured before another pod is chosen.
	podCleanupTimeout = 30 * time.Second

	// SystemCriticalPriority is the priority from which a pod is critical (system-cluster-critical).
	SystemCriticalPriority = 2_000_000_000

	annotationConfigSource = "kubernetes.io/config.source"
	annotationConfigMirror = "kubernetes.io/config.mirror"
	taintMemoryPressure    = "node.kubernetes.io/memory-pressure"
)

// Eviction is what the manager asks of the pod killer: stop the pod within GracePeriodSeconds and
// report it Failed with Reason and Message.
type Eviction struct {
	Signal             Signal
	Reason             string
	Message            string
	GracePeriodSeconds int64
}

// Config is what a Manager needs.
type Config struct {
	// Thresholds are the hard eviction thresholds (ParseThresholds).
	Thresholds []Threshold
	// PressureTransitionPeriod (5m) and MonitoringPeriod (10s); zero means the default.
	PressureTransitionPeriod time.Duration
	MonitoringPeriod         time.Duration

	// Signals measures the node (SignalReaders in production).
	Signals interface {
		Observe(ctx context.Context) (Observations, error)
	}
	// ActivePods are the pods that run (admitted, not terminal, not terminating).
	ActivePods func() []*v1.Pod
	// PodUsage measures the pods' usage, by UID; a pod missing from it is ranked last.
	PodUsage func(ctx context.Context) (map[types.UID]PodUsage, error)
	// Evict stops a pod for an eviction and reports whether it did (false: it could not, or the
	// pod is already gone); the next pod in rank is tried then.
	Evict func(pod *v1.Pod, e Eviction) bool
	// Reclaim frees node-level resources for a disk signal before any pod is evicted (image
	// garbage collection); nil for none.
	Reclaim func(ctx context.Context, s Signal) error
	// OnChange is called when the set of pressure conditions changed (the node status is written
	// at once).
	OnChange func()
	// Event records a node event (EvictionThresholdMet); nil in standalone mode.
	Event func(eventType, reason, message string)

	Clock  clock.WithTicker
	Logger *slog.Logger
}

// Manager watches the eviction signals, keeps the node's pressure conditions, refuses pods under
// pressure and evicts pods until no threshold is met. Its states, per condition:
//
//	           threshold met                          not met for PressureTransitionPeriod
//	no pressure ─────────────▶ pressure (evict one pod ──────────────────────────────────▶ no pressure
//	                            per period, ranked)
//
// while a threshold is met, each monitoring period evicts at most one pod, and none while the last
// evicted pod is still being stopped (up to 30 s): what it frees is measured first.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// lastMet is when each condition's threshold was last observed met.
	lastMet map[v1.NodeConditionType]time.Time
	// conditions are the pressure conditions in force (lastMet within the transition period).
	conditions []v1.NodeConditionType
	// lastObservations are the signals as last measured, for logs and tests.
	lastObservations Observations
	// evicting is the last pod evicted and when, until it is gone.
	evicting      *v1.Pod
	evictingSince time.Time
}

// NewManager checks cfg.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Signals == nil || cfg.ActivePods == nil || cfg.Evict == nil {
		return nil, errors.New("eviction: Signals, ActivePods and Evict are required")
	}
	if cfg.PressureTransitionPeriod <= 0 {
		cfg.PressureTransitionPeriod = DefaultPressureTransitionPeriod
	}
	if cfg.MonitoringPeriod <= 0 {
		cfg.MonitoringPeriod = DefaultMonitoringPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger, lastMet: map[v1.NodeConditionType]time.Time{}}, nil
}

// Run measures every MonitoringPeriod until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := m.cfg.Clock.NewTicker(m.cfg.MonitoringPeriod)
	defer t.Stop()
	for {
		m.Synchronize(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// Conditions are the pressure conditions in force (MemoryPressure, DiskPressure, PIDPressure).
func (m *Manager) Conditions() []v1.NodeConditionType {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.conditions)
}

// HasCondition reports whether a pressure condition is in force.
func (m *Manager) HasCondition(c v1.NodeConditionType) bool {
	return slices.Contains(m.Conditions(), c)
}

// Observations are the signals as last measured.
func (m *Manager) Observations() Observations {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastObservations
}

// Synchronize is one monitoring period: measure, update the conditions, reclaim and evict at most
// one pod. It returns the pod evicted, if any.
func (m *Manager) Synchronize(ctx context.Context) *v1.Pod {
	obs, err := m.cfg.Signals.Observe(ctx)
	if err != nil {
		m.log.Warn("eviction signals: some could not be measured", "err", err)
	}
	now := m.cfg.Clock.Now()
	met := m.thresholdsMet(obs)
	m.updateConditions(now, obs, met)
	if len(met) == 0 {
		return nil
	}
	if m.waitingForCleanup(now) {
		return nil
	}
	t := met[0] // in Signals order: memory, then pids, then disk
	if t.Signal.Resource() != v1.ResourceMemory && t.Signal != SignalPIDAvailable && m.cfg.Reclaim != nil {
		// Disk: images the node no longer uses go before any pod does.
		if err := m.cfg.Reclaim(ctx, t.Signal); err != nil {
			m.log.Warn("reclaiming node-level resources failed", "signal", t.Signal, "err", err)
		}
		if obs2, err := m.cfg.Signals.Observe(ctx); err == nil {
			if o, ok := obs2[t.Signal]; ok && !t.Met(o) {
				m.log.Info("node-level reclaim relieved the pressure; no pod evicted", "signal", t.Signal)
				return nil
			}
			obs = obs2
		}
	}
	o := obs[t.Signal]
	resourceName := t.Signal.Resource()
	m.log.Warn("eviction threshold met", "signal", t.Signal, "threshold", t.String(), "available", o.Available.String())
	if m.cfg.Event != nil {
		m.cfg.Event(v1.EventTypeWarning, "EvictionThresholdMet", "Attempting to reclaim "+string(resourceName))
	}
	var usage map[types.UID]PodUsage
	if m.cfg.PodUsage != nil {
		if usage, err = m.cfg.PodUsage(ctx); err != nil {
			m.log.Warn("pod usage for eviction ranking", "err", err)
		}
	}
	var ranked []RankedPod
	for _, p := range m.cfg.ActivePods() {
		if IsCritical(p) {
			continue // the kubelet never evicts critical pods (static, mirror, system priority)
		}
		u, found := usage[p.UID]
		ranked = append(ranked, RankedPod{Pod: p, Usage: u, Found: found})
	}
	if len(ranked) == 0 {
		m.log.Warn("eviction threshold met but no pod can be evicted (critical pods never are)", "signal", t.Signal)
		return nil
	}
	Rank(t.Signal, ranked)
	for _, rp := range ranked {
		e := Eviction{
			Signal:             t.Signal,
			Reason:             Reason,
			Message:            evictionMessage(t, o, rp),
			GracePeriodSeconds: HardEvictionGracePeriod,
		}
		if m.cfg.Evict(rp.Pod, e) {
			m.log.Warn("pod evicted", "pod", rp.Pod.Namespace+"/"+rp.Pod.Name, "uid", string(rp.Pod.UID), "message", e.Message,
				"memoryWorkingSet", value(rp.Usage.MemoryWorkingSet), "ephemeralBytes", value(rp.Usage.EphemeralBytes),
				"processes", value(rp.Usage.Processes), "measured", rp.Found)
			m.mu.Lock()
			m.evicting, m.evictingSince = rp.Pod, now
			m.mu.Unlock()
			return rp.Pod
		}
	}
	return nil
}

// waitingForCleanup reports whether the last evicted pod is still active (and not for too long).
func (m *Manager) waitingForCleanup(now time.Time) bool {
	m.mu.Lock()
	p, since := m.evicting, m.evictingSince
	m.mu.Unlock()
	if p == nil {
		return false
	}
	if now.Sub(since) < podCleanupTimeout {
		for _, q := range m.cfg.ActivePods() {
			if q.UID == p.UID {
				return true
			}
		}
	}
	m.mu.Lock()
	m.evicting = nil
	m.mu.Unlock()
	return false
}

func (m *Manager) thresholdsMet(obs Observations) []Threshold {
	var met []Threshold
	for _, t := range m.cfg.Thresholds {
		if o, ok := obs[t.Signal]; ok && t.Met(o) {
			met = append(met, t)
		}
	}
	return met
}

// updateConditions notes the conditions whose threshold is met now and keeps each for the
// transition period after it was last met, so that a node hovering at a threshold does not flap.
func (m *Manager) updateConditions(now time.Time, obs Observations, met []Threshold) {
	m.mu.Lock()
	m.lastObservations = obs
	for _, t := range met {
		m.lastMet[t.Signal.Condition()] = now
	}
	var conds []v1.NodeConditionType
	for _, c := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		if at, ok := m.lastMet[c]; ok && now.Sub(at) < m.cfg.PressureTransitionPeriod {
			conds = append(conds, c)
		}
	}
	changed := !slices.Equal(conds, m.conditions)
	old := m.conditions
	m.conditions = conds
	m.mu.Unlock()
	if changed {
		m.log.Info("node pressure conditions changed", "from", fmt.Sprint(old), "to", fmt.Sprint(conds))
		if m.cfg.OnChange != nil {
			m.cfg.OnChange()
		}
	}
}

// evictionMessage is the kubelet's: the resource, the threshold and what was available, then each
// container using more than it requested.
func evictionMessage(t Threshold, o Observation, rp RankedPod) string {
	name := t.Signal.Resource()
	var b strings.Builder
	fmt.Fprintf(&b, "The node was low on resource: %s. ", name)
	v := t.Value(o.Capacity)
	fmt.Fprintf(&b, "Threshold quantity: %s, available: %s. ", v.String(), o.Available.String())
	if name != v1.ResourceMemory && name != v1.ResourceEphemeralStorage {
		return b.String()
	}
	for _, c := range rp.Pod.Spec.Containers {
		cu, ok := rp.Usage.Containers[c.Name]
		if !ok {
			continue
		}
		used := cu.MemoryWorkingSet
		if name == v1.ResourceEphemeralStorage {
			used = cu.EphemeralBytes
		}
		if used == nil {
			continue
		}
		req := c.Resources.Requests[name]
		if *used > req.Value() {
			fmt.Fprintf(&b, "Container %s was using %s, request is %s, has larger consumption of %s. ",
				c.Name, resource.NewQuantity(*used, resource.BinarySI).String(), req.String(), name)
		}
	}
	return b.String()
}

// IsCritical reports whether the kubelet would refuse to evict a pod: a static pod, a mirror pod,
// or a pod of system-critical priority.
func IsCritical(p *v1.Pod) bool {
	if src, ok := p.Annotations[annotationConfigSource]; ok && src != "api" {
		return true
	}
	if _, ok := p.Annotations[annotationConfigMirror]; ok {
		return true
	}
	return p.Spec.Priority != nil && *p.Spec.Priority >= SystemCriticalPriority
}

// AdmitError is why a new pod is refused under pressure.
type AdmitError struct{ Reason, Message string }

func (e *AdmitError) Error() string { return e.Reason + ": " + e.Message }

// Admit refuses new pods under pressure, as the kubelet does: under memory pressure alone,
// BestEffort pods (unless they tolerate the memory-pressure taint); under any other pressure,
// every pod. Critical pods are always admitted.
func (m *Manager) Admit(p *v1.Pod) *AdmitError {
	conds := m.Conditions()
	if len(conds) == 0 || IsCritical(p) {
		return nil
	}
	if len(conds) == 1 && conds[0] == v1.NodeMemoryPressure {
		if cgroups.QOSClass(p) != v1.PodQOSBestEffort {
			return nil
		}
		taint := v1.Taint{Key: taintMemoryPressure, Effect: v1.TaintEffectNoSchedule}
		for _, t := range p.Spec.Tolerations {
			if t.ToleratesTaint(logr.Discard(), &taint, false) {
				return nil
			}
		}
	}
	return &AdmitError{Reason: Reason, Message: fmt.Sprintf("The node had condition: %v. ", conds)}
}
