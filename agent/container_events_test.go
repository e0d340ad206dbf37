package agent

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/cri/fakecri"
	"k8s.io/apimachinery/pkg/types"
)

// waitCond polls cond in real time (no clock steps) for up to 10 s.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEventsLive waits until the event stream is live: at the first event, or liveAfter on the
// clock when the stream opened after the pod's events went out.
func (n *fakeNode) waitEventsLive(rl *relist) {
	n.t.Helper()
	waitCond(n.t, "the event stream live", func() bool {
		if !rl.events.isLive() {
			n.tick(500 * time.Millisecond)
		}
		return rl.events.isLive()
	})
}

func (n *fakeNode) relist() *relist {
	n.agent.mu.Lock()
	defer n.agent.mu.Unlock()
	return n.agent.relist
}

// With the runtime's event stream, an exit wakes the pod's worker without a relist (the fake clock
// does not move), and the relist slows down to a safety net.
func TestContainerEventsWakeWorkers(t *testing.T) {
	n := newFakeNode(t, map[string]string{"crash.yaml": pod("crash", "Always", "")})
	l := n.waitView("running", runningWith("crash", 0))
	rl := n.relist()
	n.waitEventsLive(rl)
	l = n.waitView("running", runningWith("crash", 0))
	if p := rl.currentPeriod(); p != eventedRelistPeriod {
		t.Errorf("relist period with events = %s, want %s", p, eventedRelistPeriod)
	}
	if err := n.srv.SetContainerExited(viewPod(l, "crash").Containers[0].ID, 1, "Error"); err != nil {
		t.Fatal(err)
	}
	n.waitView("restarted on the STOPPED event alone", runningWith("crash", 1))
	if rl.events.events.Load() == 0 {
		t.Error("no event counted")
	}
}

// A stream that breaks makes the relist run at once and every second again; the stream is opened
// again after a backoff and goes live.
func TestContainerEventsBrokenStream(t *testing.T) {
	n := newFakeNode(t, map[string]string{"crash.yaml": pod("crash", "Always", "")})
	l := n.waitView("running", runningWith("crash", 0))
	rl := n.relist()
	n.waitEventsLive(rl)

	n.srv.BreakContainerEvents()
	waitCond(t, "the stream seen broken", func() bool { return !rl.events.isLive() })
	if p := rl.currentPeriod(); p != time.Second {
		t.Errorf("relist period without events = %s, want 1s", p)
	}
	// Meanwhile the relist notices an exit.
	if err := n.srv.SetContainerExited(viewPod(l, "crash").Containers[0].ID, 1, "Error"); err != nil {
		t.Fatal(err)
	}
	n.tick(time.Second)
	l = n.waitView("restarted after a relist", runningWith("crash", 1))

	// The reopen waits a backoff of 1 s on the clock, then liveAfter without an error.
	waitCond(t, "the stream reopened", func() bool {
		n.tick(500 * time.Millisecond)
		return n.srv.EventSubscribers() == 1 && rl.events.isLive()
	})
}

// A runtime without GetContainerEvents (containerd 1.6): Unimplemented, the relist stays at its
// period and notices exits.
func TestContainerEventsAbsent(t *testing.T) {
	n := newFakeNodeRuntime(t, map[string]string{"crash.yaml": pod("crash", "Always", "")},
		func(c *fakecri.Config) { c.NoContainerEvents = true }, nil)
	l := n.waitView("running", runningWith("crash", 0))
	rl := n.relist()
	n.tick(3 * time.Second) // past liveAfter: an Unimplemented stream must not be taken as live
	if rl.events.isLive() || rl.currentPeriod() != time.Second {
		t.Fatalf("events live %v, relist period %s; want not live, 1s", rl.events.isLive(), rl.currentPeriod())
	}
	if err := n.srv.SetContainerExited(viewPod(l, "crash").Containers[0].ID, 1, "Error"); err != nil {
		t.Fatal(err)
	}
	n.holds("no restart before a relist", func(l PodList) bool { return viewPod(l, "crash").Restarts == 0 })
	n.tick(time.Second)
	n.waitView("restarted after a relist", runningWith("crash", 1))
}

// The relist wakes a worker only for a change the worker has not seen itself, and a ready
// sandbox's status is asked once: a started pod costs the relist's lists and nothing more.
func TestRelistWakesOnlyForUnseenChanges(t *testing.T) {
	n := newFakeNodeRuntime(t, map[string]string{"web.yaml": pod("web", "Always", "")},
		func(c *fakecri.Config) { c.NoContainerEvents = true }, nil)
	l := n.waitView("running", runningWith("web", 0))
	uid := types.UID(viewPod(l, "web").UID)
	n.agent.mu.Lock()
	workers := n.agent.workers
	n.agent.mu.Unlock()
	workers.mu.Lock()
	w := workers.workers[uid]
	workers.mu.Unlock()
	// The worker's follow-up sync after the start (nothing left to do) is over once it stops syncing.
	syncs := w.syncs.Load()
	for {
		time.Sleep(100 * time.Millisecond)
		if now := w.syncs.Load(); now == syncs {
			break
		} else {
			syncs = now
		}
	}
	if got := n.srv.Calls()["PodSandboxStatus"]; got != 1 {
		t.Errorf("PodSandboxStatus called %d times to start the pod, want 1 (cached while ready)", got)
	}
	// The first relist that sees the pod: its sandbox and container are what the worker made.
	n.tick(time.Second)
	n.holds("still running", runningWith("web", 0))
	if got := w.syncs.Load() - syncs; got != 0 {
		t.Errorf("the worker synced %d times after a relist that saw only its own doing, want 0", got)
	}
	if got := n.srv.Calls()["PodSandboxStatus"]; got != 1 {
		t.Errorf("PodSandboxStatus called %d times, want 1", got)
	}
	// A change the worker has not seen still wakes it.
	if err := n.srv.SetContainerExited(viewPod(l, "web").Containers[0].ID, 1, "Error"); err != nil {
		t.Fatal(err)
	}
	n.tick(time.Second)
	n.waitView("restarted", runningWith("web", 1))
}
