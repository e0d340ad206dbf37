package agent

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestCrashLoopBackoffDelays replays a container that crashes right after every start and checks
// the kubelet's sequence: restart at once, then 10s, 20s, 40s, ... capped at 5m.
func TestCrashLoopBackoffDelays(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	b := newBackoff(clk, 10*time.Second, 300*time.Second)
	want := []time.Duration{0, 10, 20, 40, 80, 160, 300, 300, 300}
	for i, w := range want {
		w *= time.Second
		finished := clk.Now() // the container dies now
		if got := b.wait("pod/c", finished); got != w {
			t.Fatalf("crash %d: wait %v, want %v", i, got, w)
		}
		clk.Step(w) // wait out the backoff, then restart
		if got := b.wait("pod/c", finished); got != 0 {
			t.Fatalf("crash %d: still %v to wait after the delay passed", i, got)
		}
		b.next("pod/c", finished)
	}
}

func TestBackoffResetsAfterCleanRun(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	b := newBackoff(clk, 10*time.Second, 300*time.Second)
	for range 4 { // grow the delay to 40s
		b.next("k", clk.Now())
		clk.Step(time.Second)
	}
	if got := b.wait("k", clk.Now()); got != 80*time.Second-0 {
		t.Fatalf("wait = %v, want 80s", got)
	}
	// The container now runs cleanly for just over 10 minutes, then dies: it restarts at once and
	// the next delay is back to 10s.
	clk.Step(10*time.Minute + time.Second)
	died := clk.Now()
	if got := b.wait("k", died); got != 0 {
		t.Fatalf("after a 10m clean run wait = %v, want 0", got)
	}
	b.next("k", died)
	if got := b.wait("k", clk.Now()); got != 10*time.Second {
		t.Fatalf("after reset wait = %v, want 10s", got)
	}
}

func TestBackoffRunning9MinutesKeepsDelay(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	b := newBackoff(clk, 10*time.Second, 300*time.Second)
	b.next("k", clk.Now())
	b.next("k", clk.Now()) // 20s
	clk.Step(9 * time.Minute)
	if got := b.wait("k", clk.Now()); got != 20*time.Second {
		t.Fatalf("wait = %v, want 20s (9 minutes is not a clean run)", got)
	}
}

func TestBackoffForget(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	b := newBackoff(clk, 10*time.Second, 300*time.Second)
	b.next("uid1/a", clk.Now())
	b.next("uid1/b", clk.Now())
	b.next("uid2/a", clk.Now())
	b.forget("uid1/")
	if len(b.entries) != 1 || b.entries["uid2/a"] == nil {
		t.Fatalf("entries after forget: %v", b.entries)
	}
}
