package agent

import (
	"context"
	"os"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Graceful node shutdown, as the kubelet's (docs/systemd.md). With shutdownGracePeriod set, Berth
// holds a delay inhibitor lock of systemd-logind on shutdown. When logind announces a shutdown
// (PrepareForShutdown true):
//
//	lock held ──PrepareForShutdown(true)──▶ shutting down: Node NotReady ("node is shutting down"),
//	    ▲                                    new pods rejected (NodeShutdown);
//	    │                                    regular pods stopped within grace − criticalGrace,
//	    │                                    then critical pods within criticalGrace,
//	    │                                    each Failed/Terminated with a DisruptionTarget condition
//	    │                                          │
//	    │                                          ▼
//	    └──────PrepareForShutdown(false)──── lock released: the power-off goes on
//	           (cancelled: Ready again,
//	            the lock taken anew)

// ShutdownInhibitor is what graceful node shutdown needs of systemd-logind (systemd.Logind).
type ShutdownInhibitor interface {
	// InhibitShutdown takes a delay lock on shutdown; closing the file releases it.
	InhibitShutdown(who, why string) (*os.File, error)
	// PrepareForShutdown delivers logind's PrepareForShutdown signals until ctx ends.
	PrepareForShutdown(ctx context.Context) (<-chan bool, error)
}

// The kubelet's words for a pod stopped by a node shutdown, and for one refused meanwhile.
const (
	nodeShutdownReason            = "Terminated"
	nodeShutdownMessage           = "Pod was terminated in response to imminent node shutdown."
	nodeShutdownNotAdmittedReason = "NodeShutdown"
	nodeShutdownNotAdmittedMsg    = "Pod was rejected as the node is shutting down."
	nodeShutdownNotReadyMessage   = "node is shutting down"
	podReasonTerminationByKubelet = "TerminationByKubelet"
	// systemCriticalPriority is the priority from which a pod is critical (system-cluster-critical
	// and system-node-critical are at or above it).
	systemCriticalPriority = 2000000000
)

// podKill is a final stop the agent ordered for a pod (a node shutdown, an eviction): its containers get grace
// seconds at most, and its status becomes Failed with reason and message for good.
type podKill struct {
	grace           int64
	reason, message string
	at              time.Time
}

// kill returns the worker's podKill, nil when none was ordered.
func (w *podWorker) kill() *podKill {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killed
}

// setKill orders a final stop of the worker's pod and wakes it; false when the pod is removed,
// already killed or finished.
func (w *podWorker) setKill(k *podKill) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.removed || w.killed != nil || w.pod == nil || terminal(w.pod) {
		return false
	}
	if r := w.m.store.get(w.uid); r != nil && podIsTerminal(&r.status) {
		return false
	}
	w.killed = k
	if w.cancelRun != nil {
		w.cancelRun() // a long image pull must not hold the shutdown back
	}
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
	return true
}

// killedStatus makes st a killed pod's: Failed (unless it had Succeeded), the reason and message,
// and the DisruptionTarget condition the kubelet adds (reason TerminationByKubelet).
func killedStatus(st *v1.PodStatus, k *podKill) {
	if st.Phase != v1.PodSucceeded {
		st.Phase = v1.PodFailed
	}
	st.Reason, st.Message = k.reason, k.message
	for _, c := range st.Conditions {
		if c.Type == v1.DisruptionTarget {
			return
		}
	}
	st.Conditions = append(st.Conditions, v1.PodCondition{
		Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: podReasonTerminationByKubelet, Message: k.message,
		LastTransitionTime: metav1.NewTime(k.at),
	})
}

// criticalPod reports whether a pod is stopped in the critical group: priority at or above
// system-cluster-critical's, or, for a pod whose priority was never resolved (a static pod), one of
// the two system priority class names.
func criticalPod(p *v1.Pod) bool {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority >= systemCriticalPriority
	}
	return p.Spec.PriorityClassName == "system-node-critical" || p.Spec.PriorityClassName == "system-cluster-critical"
}

// runNodeShutdown holds the inhibitor lock and handles logind's shutdown signals until ctx ends.
func (a *Agent) runNodeShutdown(ctx context.Context, workers *podWorkers) {
	log := a.cfg.Logger.With("component", "node-shutdown")
	l := a.cfg.Logind
	events, err := l.PrepareForShutdown(ctx)
	if err != nil {
		log.Error("graceful node shutdown is off: cannot watch logind", "err", err)
		return
	}
	take := func() *os.File {
		f, err := l.InhibitShutdown("berth", "Berth needs time to stop the pods gracefully (shutdownGracePeriod)")
		if err != nil {
			log.Error("graceful node shutdown: taking the inhibitor lock failed", "err", err)
			return nil
		}
		return f
	}
	lock := take()
	if lock != nil {
		log.Info("graceful node shutdown: delay inhibitor lock taken", "shutdownGracePeriod", a.cfg.ShutdownGracePeriod,
			"shutdownGracePeriodCriticalPods", a.cfg.ShutdownGracePeriodCriticalPods)
	}
	defer func() {
		if lock != nil {
			lock.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case active, ok := <-events:
			if !ok {
				switch {
				case ctx.Err() != nil:
				case a.shuttingDown.Load():
					log.Info("graceful node shutdown: the system bus went away, as it does at a shutdown")
				default:
					log.Error("graceful node shutdown is off from now on: the connection to logind closed")
				}
				return
			}
			if active {
				a.shutdownNode(ctx, workers, log)
				if lock != nil {
					lock.Close()
					lock = nil
				}
				log.Info("graceful node shutdown: done, inhibitor lock released")
				continue
			}
			// A shutdown cancelled: the node can run pods again.
			log.Info("graceful node shutdown: shutdown cancelled")
			a.shuttingDown.Store(false)
			if a.node != nil {
				a.node.SetNotReady("")
			}
			if lock == nil {
				lock = take()
			}
		}
	}
}

// shutdownNode stops the pods for a node shutdown: regular pods within grace − criticalGrace, then
// critical pods within criticalGrace, each with at most its own terminationGracePeriodSeconds.
func (a *Agent) shutdownNode(ctx context.Context, workers *podWorkers, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) {
	a.shuttingDown.Store(true)
	if a.node != nil {
		a.node.SetNotReady(nodeShutdownNotReadyMessage)
	}
	grace, critical := a.cfg.ShutdownGracePeriod, a.cfg.ShutdownGracePeriodCriticalPods
	log.Info("graceful node shutdown: the node is shutting down", "regularPodsGrace", grace-critical, "criticalPodsGrace", critical)
	type target struct {
		w     *podWorker
		grace int64 // the pod's own terminationGracePeriodSeconds
	}
	var regular, crit []target
	workers.mu.Lock()
	for _, w := range workers.workers {
		w.mu.Lock()
		p := w.pod
		w.mu.Unlock()
		if p == nil {
			continue // an orphan: already terminating
		}
		t := target{w: w, grace: 30}
		if p.Spec.TerminationGracePeriodSeconds != nil {
			t.grace = *p.Spec.TerminationGracePeriodSeconds
		}
		if criticalPod(p) {
			crit = append(crit, t)
		} else {
			regular = append(regular, t)
		}
	}
	workers.mu.Unlock()
	for _, g := range []struct {
		name    string
		targets []target
		grace   time.Duration
	}{{"regular", regular, grace - critical}, {"critical", crit, critical}} {
		if len(g.targets) == 0 {
			continue
		}
		sort.Slice(g.targets, func(i, j int) bool { return g.targets[i].w.uid < g.targets[j].w.uid })
		secs := int64(g.grace / time.Second)
		var killed []types.UID
		for _, t := range g.targets {
			w := t.w
			podGrace := min(t.grace, secs)
			if w.setKill(&podKill{grace: podGrace, reason: nodeShutdownReason, message: nodeShutdownMessage, at: a.cfg.Clock.Now()}) {
				ns, name := w.names()
				log.Info("graceful node shutdown: stopping pod", "group", g.name, "pod", ns+"/"+name, "gracePeriod", podGrace)
				killed = append(killed, w.uid)
			}
		}
		if !a.waitStopped(ctx, killed, g.grace) {
			log.Warn("graceful node shutdown: pods still running at the end of their group's grace period", "group", g.name)
		}
	}
}

// waitStopped waits until none of the pods has a running container, at most d; it reports whether
// they all stopped.
func (a *Agent) waitStopped(ctx context.Context, uids []types.UID, d time.Duration) bool {
	deadline := a.cfg.Clock.Now().Add(d)
	for {
		stopped := true
		for _, uid := range uids {
			r := a.store.get(uid)
			if r == nil {
				continue
			}
			for _, cs := range append(append([]v1.ContainerStatus{}, r.status.InitContainerStatuses...), r.status.ContainerStatuses...) {
				if cs.State.Running != nil {
					stopped = false
				}
			}
		}
		if stopped {
			return true
		}
		if !a.cfg.Clock.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-a.cfg.Clock.After(100 * time.Millisecond):
		}
	}
}
