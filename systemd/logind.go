package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// Logind is a client of systemd-logind (org.freedesktop.login1) on the system bus, for graceful
// node shutdown: a delay inhibitor lock on shutdown holds a power-off back (up to logind's
// InhibitDelayMaxSec) while Berth stops the pods, and logind's PrepareForShutdown signal says when
// that starts. The bus is DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket.
type Logind struct {
	conn *dbus.Conn
}

const (
	logindService   = "org.freedesktop.login1"
	logindPath      = dbus.ObjectPath("/org/freedesktop/login1")
	logindInterface = "org.freedesktop.login1.Manager"
	systemdService  = "org.freedesktop.systemd1"
	systemdPath     = dbus.ObjectPath("/org/freedesktop/systemd1")
)

// ConnectLogind connects to the system bus.
func ConnectLogind() (*Logind, error) {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, fmt.Errorf("system bus: %w", err)
	}
	return &Logind{conn: conn}, nil
}

// Close closes the bus connection (an inhibitor lock taken through it stays until its file is
// closed).
func (l *Logind) Close() error { return l.conn.Close() }

func (l *Logind) manager() dbus.BusObject { return l.conn.Object(logindService, logindPath) }

// InhibitDelayMax is logind's InhibitDelayMaxSec: how long a delay lock may hold a shutdown back.
func (l *Logind) InhibitDelayMax() (time.Duration, error) {
	v, err := l.manager().GetProperty(logindInterface + ".InhibitDelayMaxUSec")
	if err != nil {
		return 0, fmt.Errorf("logind InhibitDelayMaxUSec: %w", err)
	}
	usec, ok := v.Value().(uint64)
	if !ok {
		return 0, fmt.Errorf("logind InhibitDelayMaxUSec: unexpected type %s", v.Signature())
	}
	return time.Duration(usec) * time.Microsecond, nil
}

// InhibitShutdown takes a delay inhibitor lock on shutdown; closing the returned file releases it.
func (l *Logind) InhibitShutdown(who, why string) (*os.File, error) {
	var fd dbus.UnixFD
	if err := l.manager().Call(logindInterface+".Inhibit", 0, "shutdown", who, why, "delay").Store(&fd); err != nil {
		return nil, fmt.Errorf("logind Inhibit (shutdown, delay): %w", err)
	}
	return os.NewFile(uintptr(fd), "logind-inhibitor"), nil
}

// PrepareForShutdown delivers logind's PrepareForShutdown signals until ctx ends: true when a
// shutdown starts (the delay locks' holders must act and release), false when it was cancelled.
func (l *Logind) PrepareForShutdown(ctx context.Context) (<-chan bool, error) {
	if err := l.conn.AddMatchSignal(
		dbus.WithMatchObjectPath(logindPath),
		dbus.WithMatchInterface(logindInterface),
		dbus.WithMatchMember("PrepareForShutdown"),
	); err != nil {
		return nil, fmt.Errorf("subscribe to logind PrepareForShutdown: %w", err)
	}
	signals := make(chan *dbus.Signal, 8)
	l.conn.Signal(signals)
	out := make(chan bool, 1)
	go func() {
		defer close(out)
		defer l.conn.RemoveSignal(signals)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-signals:
				if !ok {
					return // the bus connection closed
				}
				if s.Name != logindInterface+".PrepareForShutdown" || len(s.Body) != 1 {
					continue
				}
				active, ok := s.Body[0].(bool)
				if !ok {
					continue
				}
				select {
				case out <- active:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// ReloadLogind has systemd send SIGHUP to systemd-logind, which re-reads logind.conf and its
// drop-ins.
func (l *Logind) ReloadLogind() error {
	call := l.conn.Object(systemdService, systemdPath).Call("org.freedesktop.systemd1.Manager.KillUnit", 0,
		"systemd-logind.service", "main", int32(syscall.SIGHUP))
	if call.Err != nil {
		return fmt.Errorf("reload systemd-logind (KillUnit SIGHUP): %w", call.Err)
	}
	return nil
}

// LogindDropInDir is where logind reads drop-ins of logind.conf.
const LogindDropInDir = "/etc/systemd/logind.conf.d"

// inhibitDropIn is Berth's drop-in, named after the kubelet's 99-kubelet.conf.
const inhibitDropIn = "99-berth.conf"

// WriteInhibitDelayDropIn writes the drop-in that raises InhibitDelayMaxSec to d (whole seconds,
// rounded up) in dir.
func WriteInhibitDelayDropIn(dir string, d time.Duration) error {
	if d <= 0 {
		return errors.New("inhibit delay must be positive")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secs := int64((d + time.Second - 1) / time.Second)
	body := fmt.Sprintf("# Written by Berth (shutdownGracePeriod): logind holds a shutdown back this long for\n# Berth's delay inhibitor lock while it stops the pods.\n[Login]\nInhibitDelayMaxSec=%d\n", secs)
	tmp := filepath.Join(dir, "."+inhibitDropIn+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, inhibitDropIn))
}

// EnsureInhibitDelay makes logind's InhibitDelayMaxSec at least want, as the kubelet does: when it
// is shorter, a drop-in in dropInDir raises it and logind is reloaded; it returns the value in
// force afterwards, and an error when that is still shorter than want.
func (l *Logind) EnsureInhibitDelay(dropInDir string, want time.Duration) (time.Duration, error) {
	cur, err := l.InhibitDelayMax()
	if err != nil {
		return 0, err
	}
	if cur >= want {
		return cur, nil
	}
	if err := WriteInhibitDelayDropIn(dropInDir, want); err != nil {
		return cur, fmt.Errorf("raise logind InhibitDelayMaxSec: %w", err)
	}
	if err := l.ReloadLogind(); err != nil {
		return cur, err
	}
	// logind applies the drop-in on SIGHUP, asynchronously: read it back for a moment.
	deadline := time.Now().Add(3 * time.Second)
	for {
		cur, err = l.InhibitDelayMax()
		if err == nil && cur >= want {
			return cur, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return 0, err
			}
			return cur, fmt.Errorf("logind InhibitDelayMaxSec is %s after the reload, less than shutdownGracePeriod %s", cur, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
