package systemd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// notifySocket is the service manager's end: a unixgram socket the test owns, named by
// NOTIFY_SOCKET for the code under test.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdnotify") // short: a socket path is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	return &notifySocket{t: t, conn: conn}
}

// next returns the next datagram, failing the test if none comes within d.
func (s *notifySocket) next(d time.Duration) string {
	s.t.Helper()
	msg, ok := s.recv(d)
	if !ok {
		s.t.Fatalf("no notify message within %s", d)
	}
	return msg
}

// recv returns the next datagram, or false if none comes within d.
func (s *notifySocket) recv(d time.Duration) (string, bool) {
	s.t.Helper()
	buf := make([]byte, 4096)
	s.conn.SetReadDeadline(time.Now().Add(d))
	n, err := s.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", false
		}
		s.t.Fatal(err)
	}
	return string(buf[:n]), true
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestNotifyMessages(t *testing.T) {
	sock := listenNotify(t)
	n := New(Config{})
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}
	if n.WatchdogInterval() != 0 {
		t.Errorf("WatchdogInterval() = %s without WATCHDOG_USEC, want 0", n.WatchdogInterval())
	}

	n.Status("waiting for the container runtime at unix:///run/containerd/containerd.sock")
	if got, want := sock.next(time.Second), "STATUS=waiting for the container runtime at unix:///run/containerd/containerd.sock"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	n.Status("two\nlines ")
	if got, want := sock.next(time.Second), "STATUS=two lines"; got != want {
		t.Errorf("a status is one line: got %q, want %q", got, want)
	}
	n.Ready()
	if got := sock.next(time.Second); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
	n.Reloading()
	got := sock.next(time.Second)
	reloading, monotonic, _ := strings.Cut(got, "\n")
	if reloading != "RELOADING=1" || !strings.HasPrefix(monotonic, "MONOTONIC_USEC=") {
		t.Errorf("got %q, want RELOADING=1 and MONOTONIC_USEC=…", got)
	} else if _, err := strconv.ParseUint(strings.TrimPrefix(monotonic, "MONOTONIC_USEC="), 10, 64); err != nil {
		t.Errorf("MONOTONIC_USEC in %q: %v", got, err)
	}
	n.Stopping()
	if got := sock.next(time.Second); got != "STOPPING=1" {
		t.Errorf("got %q, want STOPPING=1", got)
	}
	// Without a watchdog, RunWatchdog returns at once and sends nothing.
	n.RunWatchdog(context.Background(), func() error { return nil })
	if msg, ok := sock.recv(100 * time.Millisecond); ok {
		t.Errorf("RunWatchdog without WATCHDOG_USEC sent %q", msg)
	}
}

// TestNotSystemd: without NOTIFY_SOCKET everything is a no-op.
func TestNotSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "200000")
	var logs logBuffer
	n := New(Config{Logger: logs.logger()})
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("Enabled() = %v, WatchdogInterval() = %s without NOTIFY_SOCKET", n.Enabled(), n.WatchdogInterval())
	}
	n.Status("x")
	n.Ready()
	n.Reloading()
	n.Stopping()
	done := make(chan struct{})
	go func() {
		n.RunWatchdog(context.Background(), func() error { return nil })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not return without NOTIFY_SOCKET")
	}
	if logs.count("level=WARN")+logs.count("level=ERROR") != 0 {
		t.Errorf("logged warnings without systemd:\n%s", logs.buf.String())
	}
}

// TestWatchdogPIDOfAnother: WATCHDOG_PID naming another process means the watchdog is not ours.
func TestWatchdogPIDOfAnother(t *testing.T) {
	listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d := New(Config{}).WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval() = %s with another process's WATCHDOG_PID, want 0", d)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d := New(Config{}).WatchdogInterval(); d != 200*time.Millisecond {
		t.Errorf("WatchdogInterval() = %s with our WATCHDOG_PID, want 200ms", d)
	}
}

// TestWatchdogFollowsHealth, on a fake clock: a ping at once and at every WatchdogSec/2 while
// health passes; none while it fails (one log line, STATUS says why); pings and the last STATUS
// again when it passes.
func TestWatchdogFollowsHealth(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	clk := testingclock.NewFakeClock(time.Now())
	var logs logBuffer
	n := New(Config{Clock: clk, Logger: logs.logger()})
	if n.WatchdogInterval() != 200*time.Millisecond {
		t.Fatalf("WatchdogInterval() = %s, want 200ms", n.WatchdogInterval())
	}
	n.Status("running")
	sock.next(time.Second)

	var unhealthy atomic.Pointer[error]
	checks := make(chan struct{}, 16)
	health := func() error {
		defer func() { checks <- struct{}{} }()
		if err := unhealthy.Load(); err != nil {
			return *err
		}
		return nil
	}
	setHealth := func(err error) {
		if err == nil {
			unhealthy.Store(nil)
		} else {
			unhealthy.Store(&err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.RunWatchdog(ctx, health); close(done) }()
	defer func() { cancel(); <-done }()

	// tick advances the fake clock by one ping period and waits for the health check it causes.
	tick := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatal("the watchdog set no ticker")
			}
			time.Sleep(time.Millisecond)
		}
		clk.Step(100 * time.Millisecond)
		select {
		case <-checks:
		case <-time.After(5 * time.Second):
			t.Fatal("no health check after a ping period")
		}
	}
	expect := func(want string) {
		t.Helper()
		if got := sock.next(5 * time.Second); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expectNothing := func() {
		t.Helper()
		if msg, ok := sock.recv(200 * time.Millisecond); ok {
			t.Fatalf("got %q while unhealthy, want nothing", msg)
		}
	}

	<-checks
	expect("WATCHDOG=1") // at once
	tick()
	expect("WATCHDOG=1")
	tick()
	expect("WATCHDOG=1")

	setHealth(errors.New("the last successful relist of the runtime was 12s ago"))
	tick()
	expect("STATUS=unhealthy, watchdog pings stopped: the last successful relist of the runtime was 12s ago")
	for range 3 {
		tick()
		expectNothing()
	}
	if c := logs.count("watchdog pings to systemd stop"); c != 1 {
		t.Errorf("logged the stop %d times, want once:\n%s", c, logs.buf.String())
	}

	setHealth(nil)
	tick()
	expect("WATCHDOG=1\nSTATUS=running")
	tick()
	expect("WATCHDOG=1")
	if c := logs.count("watchdog pings to systemd resume"); c != 1 {
		t.Errorf("logged the resumption %d times, want once:\n%s", c, logs.buf.String())
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not return when its context ended")
	}
}

// TestWatchdogRealClock: with WATCHDOG_USEC=200ms and the real clock, pings come every ~100ms
// while health passes and stop while it fails.
func TestWatchdogRealClock(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	n := New(Config{})
	var healthy atomic.Bool
	healthy.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.RunWatchdog(ctx, func() error {
			if healthy.Load() {
				return nil
			}
			return errors.New("runtime does not answer")
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()

	// Healthy for a second: about 10 pings (one at once, then every 100ms).
	var pings []time.Time
	end := time.Now().Add(time.Second)
	for time.Now().Before(end) {
		msg, ok := sock.recv(time.Until(end))
		if !ok {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", msg)
		}
		pings = append(pings, time.Now())
	}
	// Loose bounds: the machine may be busy; the fake-clock test pins the schedule exactly.
	if len(pings) < 5 || len(pings) > 13 {
		t.Fatalf("%d pings in 1s at a 100ms period, want about 10", len(pings))
	}
	if mean := pings[len(pings)-1].Sub(pings[0]) / time.Duration(len(pings)-1); mean < 70*time.Millisecond || mean > 200*time.Millisecond {
		t.Errorf("pings %s apart on average, want ~100ms", mean)
	}

	healthy.Store(false)
	// At most one ping already on its way, then the unhealthy STATUS, then nothing.
	for {
		msg := sock.next(time.Second)
		if strings.HasPrefix(msg, "STATUS=unhealthy") {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("got %q, want the unhealthy STATUS", msg)
		}
	}
	if msg, ok := sock.recv(500 * time.Millisecond); ok {
		t.Fatalf("got %q while unhealthy, want no pings", msg)
	}

	healthy.Store(true)
	if got := sock.next(time.Second); !strings.HasPrefix(got, "WATCHDOG=1") {
		t.Fatalf("got %q after health passes again, want WATCHDOG=1", got)
	}
	if got := sock.next(time.Second); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", got)
	}
}

// TestNotifyFailureLoggedOnce: a socket nobody listens on is logged once, not at every message.
func TestNotifyFailureLoggedOnce(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	t.Setenv("WATCHDOG_USEC", "")
	var logs logBuffer
	n := New(Config{Logger: logs.logger()})
	n.Status("a")
	n.Status("b")
	n.Ready()
	if c := logs.count("cannot notify systemd"); c != 1 {
		t.Errorf("logged %d failures, want 1:\n%s", c, logs.buf.String())
	}
}
