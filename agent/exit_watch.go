package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// exitWatcher wakes a pod's worker as soon as one of its containers' main process exits, rather
// than at the next relist (every second). It is an accelerator, not a source of truth: the relist
// still notices every exit, and anything the watcher cannot do (a runtime that does not report
// pids, a Berth in another pid namespace, a kernel without pidfd) only leaves the relist's latency.
//
// Runtimes with the CRI's GetContainerEvents stream would not need it; containerd 1.6 has none.
// The pid comes from the verbose ContainerStatus (containerd and CRI-O both report it); a pidfd on
// it becomes readable when the process exits, and Go's poller waits for that without a thread.
//
// One watch per running container:
//
//	watch ──▶ resolving (verbose status) ──▶ waiting (pidfd in the poller) ──exit──▶ settling ──▶ wake
//	               │ no pid                      │ stop / container gone            (runtime says
//	               ▼                             ▼                                   not running)
//	          unwatchable (kept until the container is gone, so it is not retried every relist)
type exitWatcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	pidOf  func(ctx context.Context, id string) (int, error)
	// state is the runtime's view of a container: after the process exits, the worker is woken
	// only once the runtime has noticed too, or its sync would see the container still running.
	state func(ctx context.Context, id string) (runtimeapi.ContainerState, error)
	wake  func(types.UID)
	clock clock.Clock
	log   *slog.Logger

	// standAside, when it reports true, makes watch a no-op: the runtime's container events
	// (container_events.go) report exits already. Set before the workers start.
	standAside func() bool

	mu       sync.Mutex
	watching map[string]*exitWatch // by container ID
	wg       sync.WaitGroup
}

type exitWatch struct {
	uid     types.UID
	added   time.Time
	pidfd   *os.File // nil while resolving, or unwatchable
	stopped bool
}

// settleTimeout bounds the wait for the runtime to notice an exit the pidfd already reported.
const settleTimeout = 2 * time.Second

func newExitWatcher(ctx context.Context, rt Runtime, wake func(types.UID), clk clock.Clock, log *slog.Logger) *exitWatcher {
	pider, ok := rt.(interface {
		ContainerPID(ctx context.Context, id string) (int, error)
	})
	if !ok {
		return nil // e.g. a test double: the relist alone notices exits
	}
	ctx, cancel := context.WithCancel(ctx)
	return &exitWatcher{
		ctx:    ctx,
		cancel: cancel,
		pidOf:  pider.ContainerPID,
		state: func(ctx context.Context, id string) (runtimeapi.ContainerState, error) {
			st, err := rt.ContainerStatus(ctx, id)
			if err != nil {
				return runtimeapi.ContainerState_CONTAINER_UNKNOWN, err
			}
			return st.GetState(), nil
		},
		wake:     wake,
		clock:    clk,
		log:      log,
		watching: map[string]*exitWatch{},
	}
}

// watch starts watching a running container of pod uid, once.
func (w *exitWatcher) watch(uid types.UID, id string) {
	if w == nil || (w.standAside != nil && w.standAside()) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watching[id]; ok || w.ctx.Err() != nil {
		return
	}
	e := &exitWatch{uid: uid, added: w.clock.Now()}
	w.watching[id] = e
	w.wg.Add(1)
	go w.follow(id, e)
}

// keepOnly ends the watches of containers that are no longer running in a list taken at listedAt;
// watches added after the list was taken are kept (their container may be newer than the list).
func (w *exitWatcher) keepOnly(running map[string]bool, listedAt time.Time) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, e := range w.watching {
		if !running[id] && e.added.Before(listedAt) {
			w.stopLocked(id, e)
		}
	}
}

// stop ends every watch and waits for their goroutines.
func (w *exitWatcher) stop() {
	if w == nil {
		return
	}
	w.cancel() // runtime calls in flight return at once
	w.mu.Lock()
	for id, e := range w.watching {
		w.stopLocked(id, e)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *exitWatcher) stopLocked(id string, e *exitWatch) {
	e.stopped = true
	if e.pidfd != nil {
		e.pidfd.Close() // unblocks the poller wait in follow
	}
	delete(w.watching, id)
}

func (w *exitWatcher) follow(id string, e *exitWatch) {
	defer w.wg.Done()
	pid, err := w.pidOf(w.ctx, id)
	if err != nil {
		w.log.Debug("container exits are noticed by the relist only", "container", id, "err", err)
		return // stays in watching as unwatchable until the container is gone
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		w.exited(id, e) // gone already
		return
	}
	if err != nil {
		w.log.Debug("container exits are noticed by the relist only", "container", id, "pid", pid, "err", err)
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	w.mu.Lock()
	if e.stopped {
		w.mu.Unlock()
		f.Close()
		return
	}
	e.pidfd = f
	w.mu.Unlock()
	rc, err := f.SyscallConn()
	if err == nil {
		polled := false
		err = rc.Read(func(uintptr) bool {
			// The first call only registers the wait; readable means the process has exited.
			done := polled
			polled = true
			return done
		})
	}
	w.mu.Lock()
	stopped := e.stopped
	w.mu.Unlock()
	if stopped {
		return
	}
	if err != nil {
		w.log.Debug("container exits are noticed by the relist only", "container", id, "pid", pid, "err", err)
		return
	}
	w.exited(id, e)
}

// exited waits (briefly) for the runtime to report the container as no longer running, then wakes
// the pod's worker.
func (w *exitWatcher) exited(id string, e *exitWatch) {
	ctx, cancel := context.WithTimeout(w.ctx, settleTimeout)
	defer cancel()
	start := w.clock.Now()
	for {
		st, err := w.state(ctx, id)
		if err != nil || st != runtimeapi.ContainerState_CONTAINER_RUNNING || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-w.clock.After(10 * time.Millisecond):
		}
	}
	w.mu.Lock()
	if w.watching[id] == e {
		w.stopLocked(id, e)
	}
	w.mu.Unlock()
	if w.ctx.Err() == nil {
		w.log.Debug("container exited: waking its pod", "uid", string(e.uid), "container", id, "runtimeNoticedAfter", w.clock.Since(start))
		w.wake(e.uid)
	}
}
