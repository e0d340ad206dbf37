package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// exitHarness watches real processes (sleep) standing in for containers: pidOf maps a container ID
// to a pid, state says RUNNING until the test declares the runtime noticed the exit.
type exitHarness struct {
	w       *exitWatcher
	pids    map[string]int
	noticed atomic.Bool // the "runtime" has seen the exit
	woken   chan types.UID
}

func newExitHarness(t *testing.T) *exitHarness {
	t.Helper()
	h := &exitHarness{pids: map[string]int{}, woken: make(chan types.UID, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	h.w = &exitWatcher{
		ctx: ctx, cancel: cancel,
		pidOf: func(_ context.Context, id string) (int, error) {
			if pid, ok := h.pids[id]; ok {
				return pid, nil
			}
			return 0, errors.New("no pid in the verbose status")
		},
		state: func(context.Context, string) (runtimeapi.ContainerState, error) {
			if h.noticed.Load() {
				return runtimeapi.ContainerState_CONTAINER_EXITED, nil
			}
			return runtimeapi.ContainerState_CONTAINER_RUNNING, nil
		},
		wake:     func(uid types.UID) { h.woken <- uid },
		clock:    clock.RealClock{},
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		watching: map[string]*exitWatch{},
	}
	t.Cleanup(h.w.stop)
	return h
}

func (h *exitHarness) process(t *testing.T, id string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	h.pids[id] = cmd.Process.Pid
	return cmd
}

func (h *exitHarness) watching(id string) bool {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	_, ok := h.w.watching[id]
	return ok
}

// waitWatching waits until the watch of id has its pidfd in the poller.
func (h *exitHarness) waitWatching(t *testing.T, id string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		h.w.mu.Lock()
		e := h.w.watching[id]
		ready := e != nil && e.pidfd != nil
		h.w.mu.Unlock()
		if ready {
			return
		}
	}
	t.Fatalf("the watch of %s never reached the poller", id)
}

func TestExitWatcherWakesThePodWhenItsProcessExits(t *testing.T) {
	h := newExitHarness(t)
	cmd := h.process(t, "c1")
	h.w.watch("pod-a", "c1")
	h.w.watch("pod-a", "c1") // once per container
	h.waitWatching(t, "c1")
	select {
	case uid := <-h.woken:
		t.Fatalf("woke %s while the process runs", uid)
	case <-time.After(100 * time.Millisecond):
	}

	cmd.Process.Kill()
	// The runtime has not noticed yet: no wake, or the worker's sync would see the container running.
	select {
	case uid := <-h.woken:
		t.Fatalf("woke %s before the runtime reported the exit", uid)
	case <-time.After(100 * time.Millisecond):
	}
	h.noticed.Store(true)
	select {
	case uid := <-h.woken:
		if uid != "pod-a" {
			t.Fatalf("woke %s, want pod-a", uid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake after the process exited and the runtime noticed")
	}
	if h.watching("c1") {
		t.Error("the watch outlived its container")
	}
	select {
	case uid := <-h.woken:
		t.Fatalf("a second wake for %s", uid)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestExitWatcherKeepOnlyEndsWatchesOfContainersNoLongerRunning(t *testing.T) {
	h := newExitHarness(t)
	h.process(t, "old")
	h.w.watch("pod-a", "old")
	h.waitWatching(t, "old")
	listedAt := time.Now()
	h.process(t, "new")
	h.w.watch("pod-b", "new") // started after the list was taken: not in it, yet running
	h.waitWatching(t, "new")

	h.w.keepOnly(map[string]bool{}, listedAt)
	if h.watching("old") {
		t.Error("the watch of a container missing from the list was kept")
	}
	if !h.watching("new") {
		t.Error("the watch of a container newer than the list was ended")
	}
	h.noticed.Store(true)
	select {
	case uid := <-h.woken:
		t.Fatalf("an ended watch woke %s", uid)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestExitWatcherWithoutAPidLeavesExitsToTheRelist(t *testing.T) {
	h := newExitHarness(t)
	h.w.watch("pod-a", "no-pid")
	time.Sleep(50 * time.Millisecond)
	if !h.watching("no-pid") {
		t.Fatal("an unwatchable container is forgotten, and would be retried at every relist")
	}
	h.w.keepOnly(map[string]bool{}, time.Now())
	if h.watching("no-pid") {
		t.Error("an unwatchable container was kept after it stopped running")
	}
	select {
	case uid := <-h.woken:
		t.Fatalf("woke %s without a pid to watch", uid)
	default:
	}
}

func TestExitWatcherStopEndsEveryWatch(t *testing.T) {
	h := newExitHarness(t)
	for _, id := range []string{"c1", "c2", "c3"} {
		h.process(t, id)
		h.w.watch("pod-a", id)
		h.waitWatching(t, id)
	}
	done := make(chan struct{})
	go func() { h.w.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return with three watches in the poller")
	}
	h.w.watch("pod-a", "c4") // after stop: ignored
	if h.watching("c4") {
		t.Error("a watch was started after stop")
	}
}
