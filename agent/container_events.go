package agent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/cri"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// eventSource is a runtime with the CRI's container event stream (cri.Client). A Runtime without
// the method (a test double) leaves the relist alone in charge.
type eventSource interface {
	ContainerEvents(ctx context.Context) (recv func() (*runtimeapi.ContainerEventResponse, error), err error)
}

// containerEvents follows the runtime's container event stream (CRI GetContainerEvents), where the
// runtime has one, and wakes a pod's worker the moment one of its containers or its sandbox stops
// or is removed. While the stream is live, the relist is only a safety net and runs every
// eventedRelistPeriod instead of every second, and the exit watcher stands aside (the event says
// the same, earlier and for free); this is what keeps the steady state cheap with many pods.
//
//	open ──an event, or liveAfter without error──▶ live ──stream error──▶ broken ──backoff──▶ open
//	  │ codes.Unimplemented (containerd 1.6)                               (relist at once, and
//	  ▼                                                                     every second meanwhile)
//	absent ──absentRetry──▶ open   (a runtime upgraded under a running Berth gains the call)
//
// CREATED and STARTED events are ignored: only Berth creates and starts the containers it labels,
// and the worker that did knows. STOPPED and DELETED wake the pod's worker, found by the pod UID
// in the event's sandbox status; an event without one makes the relist run at once.
type containerEvents struct {
	src       eventSource
	wake      func(types.UID)
	relistNow func()
	clock     clock.Clock
	log       *slog.Logger

	live   atomic.Bool
	events atomic.Int64 // received, for tests and logs
}

// Timings of the stream's lifecycle.
const (
	// liveAfter: a stream open this long without an error is live even without an event (gRPC
	// reports Unimplemented only at the first receive, and an idle node sends no events).
	liveAfter = 2 * time.Second
	// absentRetry is how often a runtime without the call is asked again.
	absentRetry = 5 * time.Minute
	// brokenBackoffMax caps the wait before reopening a stream that broke.
	brokenBackoffMax = 30 * time.Second
)

func newContainerEvents(rt Runtime, wake func(types.UID), relistNow func(), clk clock.Clock, log *slog.Logger) *containerEvents {
	src, ok := rt.(eventSource)
	if !ok {
		return nil
	}
	return &containerEvents{src: src, wake: wake, relistNow: relistNow, clock: clk, log: log}
}

// isLive reports whether the stream is open and trusted (false on nil: no stream).
func (e *containerEvents) isLive() bool { return e != nil && e.live.Load() }

// run follows the stream until ctx ends.
func (e *containerEvents) run(ctx context.Context) {
	backoff := time.Second
	absentLogged := false
	for ctx.Err() == nil {
		err := e.follow(ctx)
		wasLive := e.live.Swap(false)
		if ctx.Err() != nil {
			return
		}
		if wasLive {
			// Events may have been lost in between: look at everything now.
			e.log.Warn("the runtime's container event stream broke; relisting every second until it is back", "err", err)
			e.relistNow()
			backoff = time.Second
		}
		wait := backoff
		if cri.IsUnimplemented(err) {
			if !absentLogged {
				e.log.Info("the runtime has no container event stream (CRI GetContainerEvents): container exits are noticed by the relist and the exit watcher", "err", err)
				absentLogged = true
			}
			wait = absentRetry
		} else if !wasLive {
			e.log.Debug("container event stream not available", "err", err, "retryIn", backoff)
			backoff = min(2*backoff, brokenBackoffMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.clock.After(wait):
		}
	}
}

// follow opens the stream and handles its events until it fails; the error says why.
func (e *containerEvents) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv, err := e.src.ContainerEvents(ctx)
	if err != nil {
		return err
	}
	type received struct {
		ev  *runtimeapi.ContainerEventResponse
		err error
	}
	next := make(chan received)
	go func() {
		for {
			ev, err := recv()
			select {
			case next <- received{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	confirm := e.clock.After(liveAfter)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-confirm:
			e.goLive()
		case r := <-next:
			if r.err != nil {
				return r.err
			}
			e.goLive()
			e.events.Add(1)
			e.handle(r.ev)
		}
	}
}

func (e *containerEvents) goLive() {
	if !e.live.Swap(true) {
		e.log.Info("following the runtime's container events; the relist becomes a safety net", "relistPeriod", eventedRelistPeriod)
	}
}

func (e *containerEvents) handle(ev *runtimeapi.ContainerEventResponse) {
	switch ev.GetContainerEventType() {
	case runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
	default:
		return
	}
	sb := ev.GetPodSandboxStatus()
	uid := types.UID(sb.GetLabels()[cri.LabelPodUID])
	if uid == "" {
		uid = types.UID(sb.GetMetadata().GetUid())
	}
	if uid == "" {
		e.relistNow()
		return
	}
	e.wake(uid)
}
