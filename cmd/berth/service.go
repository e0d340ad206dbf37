package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/systemd"
)

// readyPoll is how often startup checks whether the agent's first sync is done.
const readyPoll = 100 * time.Millisecond

// service ties the daemon to systemd (package systemd; all of it is a no-op when not started by
// a Type=notify unit): STATUS lines while Berth starts, READY=1 after its first sync, watchdog
// pings while the agent is healthy, STOPPING=1 when SIGTERM or SIGINT ends ctx, and SIGHUP
// reloads. docs/systemd.md describes the whole.
type service struct {
	n        *systemd.Notifier
	log      *slog.Logger
	ready    atomic.Bool
	stopOnce sync.Once
}

// newService starts telling systemd; STOPPING=1 goes out as soon as ctx ends (SIGTERM, SIGINT).
func newService(ctx context.Context, log *slog.Logger) *service {
	s := &service{n: systemd.New(systemd.Config{Logger: log}), log: log}
	context.AfterFunc(ctx, s.stopping)
	return s
}

func (s *service) stopping() {
	s.stopOnce.Do(func() {
		s.n.Status("stopping; pods keep running")
		s.n.Stopping()
	})
}

// close sends STOPPING=1 unless it has been sent, and returns once it has: the process may exit.
func (s *service) close() { s.stopping() }

func (s *service) status(format string, args ...any) { s.n.Status(fmt.Sprintf(format, args...)) }

// run waits for the agent's first sync (ready returns nil once the sources have reported, the
// runtime has been listed and, in cluster mode, the Node is registered), says so to systemd
// (READY=1 and the running status) and then feeds the watchdog for as long as healthy passes,
// until ctx ends.
func (s *service) run(ctx context.Context, ready, healthy func() error, running string) {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	last := ""
	for {
		err := ready()
		if err == nil {
			break
		}
		if msg := err.Error(); msg != last {
			last = msg
			s.status("starting: %s", msg)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	s.n.Status(running)
	s.n.Ready()
	s.ready.Store(true)
	s.log.Info("first sync done: ready", "systemd", s.n.Enabled(), "watchdog", s.n.WatchdogInterval())
	s.n.RunWatchdog(ctx, healthy)
}

// reloader applies SIGHUP: it re-reads the same flags and config file. The log level is the one
// thing that changes in a running Berth (--log-level when given, else the file's
// logging.verbosity); any other changed field is logged as needing a restart and left as it was.
type reloader struct {
	args    []string
	running Configuration
	level   *slog.LevelVar
}

// handleReloads runs r.reload for each signal on hup until ctx ends.
func (s *service) handleReloads(ctx context.Context, hup <-chan os.Signal, r *reloader) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.reload(r)
		}
	}
}

func (s *service) reload(r *reloader) {
	if s.ready.Load() {
		s.n.Reloading()
		defer s.n.Ready()
	}
	d, err := parseDaemonArgs(r.args)
	if err != nil {
		s.log.Error("reload (SIGHUP): the configuration has an error; nothing changed", "err", err)
		return
	}
	level, err := d.logLevel()
	if err != nil {
		s.log.Error("reload (SIGHUP): nothing changed", "err", err)
		return
	}
	if old := r.level.Level(); old != level {
		r.level.Set(level)
		s.log.Info("reload (SIGHUP): log level changed", "from", old, "to", level)
	}
	if changed := changedFields(r.running, d.config); len(changed) > 0 {
		s.log.Warn("reload (SIGHUP): these changes require a restart of Berth (systemctl restart berth); the running values stay",
			"fields", changed)
		return
	}
	s.log.Info("reload (SIGHUP): done")
}

// changedFields names the config fields, other than logging, whose values differ.
func changedFields(old, cur Configuration) []string {
	old.Logging, cur.Logging = nil, nil
	fields := func(c Configuration) map[string]json.RawMessage {
		data, _ := json.Marshal(c)
		m := map[string]json.RawMessage{}
		_ = json.Unmarshal(data, &m)
		return m
	}
	a, b := fields(old), fields(cur)
	var out []string
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// logLevel is --log-level when given, else the config file's logging.verbosity (4 and above is
// debug, as V(4) is the Kubernetes convention for debug output; below it, info), else info.
func (d *daemonArgs) logLevel() (slog.Level, error) {
	if !d.set["log-level"] && d.config.Logging != nil && d.config.Logging.Verbosity != nil {
		if *d.config.Logging.Verbosity >= 4 {
			return slog.LevelDebug, nil
		}
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(d.flags.logLevel)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", d.flags.logLevel)
	}
	return l, nil
}
