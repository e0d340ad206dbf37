package probes

import (
	"context"
	"math/rand/v2"
	"time"

	v1 "k8s.io/api/core/v1"
)

// worker runs one probe (one Kind) of one container instance, in its own goroutine, from the
// instance's start until the instance stops, the probe reaches a final result (startup passed,
// liveness or startup failed), or the Manager stops. See the package documentation for its states.
type worker struct {
	m      *Manager
	inst   *instance
	kind   Kind
	spec   *v1.Probe // defaulted
	ctx    context.Context
	cancel context.CancelFunc

	// The run of identical results, owned by the worker's goroutine.
	last Result // Unknown before the first counted attempt
	run  int
}

// startWorker starts the worker of kind k for inst. m.mu is held.
func (m *Manager) startWorker(inst *instance, k Kind, p *v1.Probe) {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &worker{m: m, inst: inst, kind: k, spec: p, ctx: ctx, cancel: cancel}
	inst.workers[k] = w
	m.wg.Add(1)
	m.live.Add(1)
	go w.loop()
}

// stopWorker stops the worker of kind k of inst, if it runs. m.mu is held.
func (m *Manager) stopWorker(inst *instance, k Kind) {
	if w := inst.workers[k]; w != nil {
		w.cancel()
		delete(inst.workers, k)
	}
}

func (w *worker) loop() {
	defer w.m.wg.Done()
	defer w.m.live.Add(-1) // after the timer is stopped: live >= the clock's waiters, always
	defer w.cancel()
	period := seconds(w.spec.PeriodSeconds)
	next := w.firstAttemptAt(period)
	for {
		// Waiting: for the initial delay (and jitter), then for the next period.
		if !w.sleepUntil(next) {
			return
		}
		// Probing.
		a := w.m.run(w.ctx, w.spec, w.m.target(w.inst))
		if w.ctx.Err() != nil {
			return // stopped during the attempt: its outcome is moot
		}
		if !w.record(a) {
			return // a final result: startup passed, liveness or startup failed, instance gone
		}
		// Attempts stay on the grid of the first one; slots missed by a slow attempt are skipped.
		now := w.m.clk.Now()
		for next = next.Add(period); !next.After(now); next = next.Add(period) {
		}
	}
}

// firstAttemptAt is when the first attempt is due: initialDelaySeconds after the container
// started (or now, if that has passed), and, for containers found running when the Manager
// started, no earlier than a random part of one period from now.
func (w *worker) firstAttemptAt(period time.Duration) time.Time {
	now := w.m.clk.Now()
	at := w.inst.startedAt.Add(seconds(w.spec.InitialDelaySeconds))
	if at.Before(now) {
		at = now
	}
	// A worker started by the startup probe's passing needs no jitter of its own: that moment
	// is spread already.
	gated := w.kind != Startup && w.inst.spec.StartupProbe != nil
	if w.m.cfg.Jitter && w.inst.preexisting && !gated && period > 0 {
		if j := now.Add(rand.N(period)); j.After(at) {
			at = j
		}
	}
	return at
}

// sleepUntil waits on the Manager's clock until t; false if the worker was stopped first.
func (w *worker) sleepUntil(t time.Time) bool {
	d := t.Sub(w.m.clk.Now())
	if d <= 0 {
		return w.ctx.Err() == nil
	}
	timer := w.m.clk.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return true
	case <-w.ctx.Done():
		return false
	}
}

// record reports an attempt that did not simply pass, counts it in the run of identical results,
// and publishes the result once the run reaches its threshold. It says whether the worker goes on.
func (w *worker) record(a attempt) bool {
	if a.outcome != Passed {
		w.m.report(w.inst, w.kind, a)
	}
	var r Result
	switch a.outcome {
	case Passed, Warned:
		r = Success
	case Failed:
		r = Failure
	default: // Errored: thrown away
		return true
	}
	if r == w.last {
		w.run++
	} else {
		w.last, w.run = r, 1
	}
	if r == Success && w.run < int(w.spec.SuccessThreshold) || r == Failure && w.run < int(w.spec.FailureThreshold) {
		return true
	}
	return w.m.publish(w.inst, w.kind, r, w.run, w.spec, a.output)
}
