package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// minStopGrace is the least grace period StopContainer gets, whatever is left of the pod's after
// the preStop hooks: a container always has a moment to exit before SIGKILL (the kubelet's 2 s).
const minStopGrace = 2

// stopTarget is one running container instance to stop.
type stopTarget struct {
	rec     *containerRecord
	spec    *v1.Container // nil when the spec is unknown (a pod found in the runtime only)
	preStop *v1.LifecycleHandler
	// after are the targets that must be stopped before this one gets its stop signal: a sidecar
	// waits for the app containers and for the sidecars declared after it.
	after []*stopTarget
	done  chan struct{}
}

// stopContainers stops the given container instances of a pod within grace seconds, as the kubelet
// does every stop (pod termination, a liveness failure, a spec change, a failed postStart hook, the
// sidecars of a pod whose app containers completed):
//
//  1. The grace period starts now for all of them.
//  2. Each container's preStop hook (if any, and if grace > 0) runs at once, in parallel, and is
//     waited for until the end of the grace period at most. A failed hook is an event and a log
//     line; the stop goes on.
//  3. App containers (and running regular init containers) then get their stop signal; a sidecar
//     gets it only once the app containers and the sidecars declared after it have stopped (or the
//     grace period ran out): sidecars stop after the apps, in reverse order.
//  4. StopContainer gets what is left of the grace period, at least minStopGrace seconds.
//
// pod may be nil for a pod known only from the runtime: hooks then come from the containers'
// annotations, and only app-before-init ordering applies. message is the Killing event's message
// for a container name.
func (w *podWorker) stopContainers(ctx context.Context, pod *v1.Pod, rt *podRuntime, recs []*containerRecord, grace int64, message func(name string) string) error {
	if grace < 0 {
		grace = 0
	}
	targets := stopPlan(pod, recs)
	if len(targets) == 0 {
		return nil
	}
	podIP := w.hookPodIP(pod, rt)
	podName := nsName(w.orphan.namespace, w.orphan.name)
	if pod != nil {
		podName = nsName(pod.Namespace, pod.Name)
	}
	clk := w.m.clock
	start := clk.Now()
	deadline := start.Add(time.Duration(grace) * time.Second)
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		w.event(pod, t.rec.name, v1.EventTypeNormal, "Killing", "%s", message(t.rec.name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(t.done)
			if t.preStop != nil && grace > 0 {
				w.runPreStop(ctx, pod, podName, t, podIP, grace)
			}
			for _, o := range t.after {
				waitUntil(ctx, clk, o.done, deadline)
			}
			left := grace - int64(clk.Since(start)/time.Second)
			if left < minStopGrace {
				left = minStopGrace
			}
			if err := w.m.rt.StopContainer(ctx, t.rec.id, left); err != nil && !cri.IsNotFound(err) {
				errs[i] = fmt.Errorf("stop container %s (%s): %w", t.rec.name, t.rec.id, err)
				return
			}
			w.log.Info("stopped container", "container", t.rec.name, "id", t.rec.id, "gracePeriod", left)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitUntil waits for done, the deadline on clk, or the end of ctx, whichever comes first.
func waitUntil(ctx context.Context, clk clock.Clock, done <-chan struct{}, deadline time.Time) {
	select {
	case <-done:
		return
	default:
	}
	left := deadline.Sub(clk.Now())
	if left <= 0 {
		return
	}
	select {
	case <-done:
	case <-clk.After(left):
	case <-ctx.Done():
	}
}

// runPreStop runs a container's preStop hook and waits for it until the grace period ends.
func (w *podWorker) runPreStop(ctx context.Context, pod *v1.Pod, podName string, t *stopTarget, podIP string, grace int64) {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel() // a hook still running when the grace period ends is abandoned
	spec := t.spec
	if spec == nil {
		spec = &v1.Container{Name: t.rec.name}
	}
	call := hookCall{
		kind:        "PreStop",
		pod:         podName,
		container:   spec,
		containerID: t.rec.id,
		podIP:       podIP,
		timeout:     time.Duration(grace) * time.Second,
	}
	res := make(chan error, 1)
	go func() { res <- w.m.hooks.run(hctx, call, t.preStop) }()
	select {
	case err := <-res:
		if err != nil && ctx.Err() == nil {
			w.log.Warn("preStop hook failed", "container", t.rec.name, "id", t.rec.id, "err", err)
			w.event(pod, t.rec.name, v1.EventTypeWarning, "FailedPreStopHook", "%v", err)
		}
	case <-w.m.clock.After(time.Duration(grace) * time.Second):
		w.log.Warn("preStop hook did not finish within the grace period", "container", t.rec.name, "id", t.rec.id, "gracePeriod", grace)
	case <-ctx.Done():
	}
}

// hookPodIP is the address httpGet hooks go to by default: the pod IP, or the node's for a host
// network pod.
func (w *podWorker) hookPodIP(pod *v1.Pod, rt *podRuntime) string {
	if rt != nil {
		if ss := rt.sandboxStatus; ss != nil && ss.Network != nil && ss.Network.Ip != "" {
			return ss.Network.Ip
		}
	}
	if pod != nil && pod.Spec.HostNetwork {
		return first(w.m.cfg.NodeIPs)
	}
	return ""
}

// stopPlan turns the running instances among recs into stop targets, with their hooks and order.
func stopPlan(pod *v1.Pod, recs []*containerRecord) []*stopTarget {
	var targets, sidecars []*stopTarget
	sidecarIndex := map[*stopTarget]int{}
	for _, r := range recs {
		if r.exited() || r.state == runtimeapi.ContainerState_CONTAINER_CREATED {
			continue // nothing to stop (a created container never ran: removing it is enough)
		}
		t := &stopTarget{rec: r, done: make(chan struct{})}
		idx := -1
		if pod != nil {
			t.spec, idx = specOf(pod, r.typ, r.name)
			if t.spec != nil && t.spec.Lifecycle != nil {
				t.preStop = t.spec.Lifecycle.PreStop
			}
		} else if r.preStop != "" {
			var h v1.LifecycleHandler
			if json.Unmarshal([]byte(r.preStop), &h) == nil {
				t.preStop = &h
			}
		}
		// A sidecar: an init container with restartPolicy Always, or, without a spec, any init
		// container still running (a regular one would have finished).
		if r.typ == cri.ContainerTypeInit && (t.spec == nil || isSidecar(t.spec)) {
			sidecars = append(sidecars, t)
			sidecarIndex[t] = idx
		} else {
			targets = append(targets, t)
		}
	}
	apps := targets
	for _, s := range sidecars {
		s.after = append(s.after, apps...)
		for _, o := range sidecars {
			if o != s && sidecarIndex[o] > sidecarIndex[s] {
				s.after = append(s.after, o)
			}
		}
	}
	return append(targets, sidecars...)
}

// specOf finds a container's spec by type and name, with its index in its list.
func specOf(pod *v1.Pod, typ, name string) (*v1.Container, int) {
	list := pod.Spec.Containers
	if typ == cri.ContainerTypeInit {
		list = pod.Spec.InitContainers
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i], i
		}
	}
	return nil, -1
}

// isSidecar reports whether an init container is a sidecar (restartPolicy Always).
func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// killingMessage is the Killing event's message for a pod being stopped.
func killingMessage(name string) string { return "Stopping container " + name }
