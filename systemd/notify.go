// Package systemd tells systemd how Berth is doing, over the sd_notify protocol (a datagram per
// message to the unix socket named by NOTIFY_SOCKET): READY=1 once the node agent is up, STATUS=
// lines saying what it does or waits for, STOPPING=1 on shutdown, RELOADING=1 around a reload, and
// WATCHDOG=1 pings, every WatchdogSec/2, only while Berth's own health checks pass, so that a wedged
// Berth is restarted by systemd.
//
// Without NOTIFY_SOCKET (not started by systemd, or by a unit whose Type= is not notify) every
// method is a no-op, so callers never test for systemd themselves. The package is a leaf: the
// agent's health comes in as a func, and it imports nothing of Berth.
package systemd

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/utils/clock"
)

// Config is what a Notifier runs with; both fields have defaults.
type Config struct {
	// Clock paces the watchdog pings; the real clock if nil.
	Clock clock.WithTicker
	// Logger gets one line when pings stop or resume, and when notifying fails; slog.Default if nil.
	Logger *slog.Logger
}

// Notifier sends sd_notify messages to the service manager. It is safe for concurrent use.
type Notifier struct {
	clock    clock.WithTicker
	log      *slog.Logger
	socket   string        // NOTIFY_SOCKET when New ran; "" when not under systemd
	watchdog time.Duration // WATCHDOG_USEC when New ran (WatchdogSec=); 0 when there is no watchdog

	mu      sync.Mutex
	status  string // the last Status, shown again when the watchdog's own status clears
	failing bool   // the last send failed; logged once until one succeeds
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment. It leaves them set.
func New(cfg Config) *Notifier {
	n := &Notifier{clock: cfg.Clock, log: cfg.Logger}
	if n.clock == nil {
		n.clock = clock.RealClock{}
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.log = n.log.With("component", "systemd")
	n.socket = os.Getenv("NOTIFY_SOCKET")
	if n.socket == "" {
		return n
	}
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog: WATCHDOG_USEC is not usable, sending no watchdog pings", "err", err)
	}
	n.watchdog = d
	n.log.Debug("running under systemd", "notifySocket", n.socket, "watchdog", d)
	return n
}

// Enabled reports whether there is a service manager to notify (NOTIFY_SOCKET was set).
func (n *Notifier) Enabled() bool { return n.socket != "" }

// WatchdogInterval is the service's WatchdogSec (from WATCHDOG_USEC), 0 when it has none. Pings
// are sent every half of it.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// Ready sends READY=1: startup is finished (systemctl start returns, units ordered after
// berth.service start). Also sent after a reload.
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Stopping sends STOPPING=1: Berth is shutting down (pods keep running).
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Reloading sends RELOADING=1 with the monotonic time systemd asks for; Ready ends the reload.
func (n *Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"))
}

// Status sends STATUS=msg, the line `systemctl status berth` shows: what Berth is doing or
// waiting for. Newlines are folded into spaces (a STATUS is one line).
func (n *Notifier) Status(msg string) {
	msg = oneLine(msg)
	n.mu.Lock()
	n.status = msg
	n.mu.Unlock()
	n.send("STATUS=" + msg)
}

// RunWatchdog pings the watchdog (WATCHDOG=1) at once and then every WatchdogSec/2 until ctx ends,
// but only while health returns nil. When health fails it logs once, sets STATUS to the failure
// and sends nothing, so systemd restarts Berth if the failure outlasts WatchdogSec; when health
// passes again it logs once, restores the last Status and pings again. A health func that hangs
// stops the pings too, which is the point. Without a watchdog (no WatchdogSec, or not under
// systemd) it returns at once.
func (n *Notifier) RunWatchdog(ctx context.Context, health func() error) {
	if n.socket == "" || n.watchdog <= 0 {
		return
	}
	period := n.watchdog / 2
	t := n.clock.NewTicker(period)
	defer t.Stop()
	pinging := true
	check := func() {
		err := health()
		switch {
		case err == nil && !pinging:
			pinging = true
			n.log.Info("health checks pass again: watchdog pings to systemd resume")
			n.mu.Lock()
			status := n.status
			n.mu.Unlock()
			n.send(daemon.SdNotifyWatchdog + "\nSTATUS=" + status)
		case err == nil:
			n.send(daemon.SdNotifyWatchdog)
		case pinging:
			pinging = false
			n.log.Error("health check failed: watchdog pings to systemd stop; systemd restarts Berth if this lasts WatchdogSec",
				"err", err, "watchdogSec", n.watchdog)
			n.send("STATUS=" + oneLine("unhealthy, watchdog pings stopped: "+err.Error()))
		}
	}
	check()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			check()
		}
	}
}

// send writes one datagram; failures are logged once until a send succeeds again.
func (n *Notifier) send(state string) {
	if n.socket == "" {
		return
	}
	_, err := daemon.SdNotify(false, state)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if !n.failing {
			n.log.Warn("cannot notify systemd", "socket", n.socket, "message", firstLine(state), "err", err)
		}
		n.failing = true
		return
	}
	if n.failing {
		n.log.Info("notifying systemd works again", "socket", n.socket)
	}
	n.failing = false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
