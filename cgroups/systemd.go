package cgroups

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// SystemdConnector opens a connection to systemd's D-Bus API.
type SystemdConnector func(ctx context.Context) (*sddbus.Conn, error)

// systemdCallTimeout bounds one D-Bus call and the job it starts.
const systemdCallTimeout = 30 * time.Second

// systemdBackend is the systemd driver: every cgroup is a slice unit, made as a transient unit
// through systemd's D-Bus API, its limits set as unit properties (systemd writes the cgroup
// files). On cgroup v1 the properties are CPUShares and MemoryLimit, on v2 CPUWeight (converted
// with SharesToWeight) and MemoryMax; CPUQuotaPerSecUSec and TasksMax on both.
//
// Delegate=yes is not set: systemd refuses it on slices (it is for scopes and services); the
// runtime's own scopes under the pod slice are delegated by the runtime.
type systemdBackend struct {
	connect SystemdConnector
	unified bool

	mu   sync.Mutex
	conn *sddbus.Conn
}

func newSystemdBackend(connect SystemdConnector, unified bool) (*systemdBackend, error) {
	if connect == nil {
		connect = sddbus.NewSystemConnectionContext
	}
	return &systemdBackend{connect: connect, unified: unified}, nil
}

func (s *systemdBackend) get(ctx context.Context) (*sddbus.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn.Connected() {
		return s.conn, nil
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd over D-Bus (cgroupDriver systemd needs systemd): %w", err)
	}
	s.conn = c
	return c, nil
}

func (s *systemdBackend) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// properties are the unit properties for r.
func (s *systemdBackend) properties(r *ResourceConfig) []sddbus.Property {
	props := []sddbus.Property{
		{Name: "CPUAccounting", Value: godbus.MakeVariant(true)},
		{Name: "MemoryAccounting", Value: godbus.MakeVariant(true)},
		{Name: "TasksAccounting", Value: godbus.MakeVariant(true)},
	}
	if r.CPUShares != nil {
		if s.unified {
			props = append(props, sddbus.Property{Name: "CPUWeight", Value: godbus.MakeVariant(SharesToWeight(*r.CPUShares))})
		} else {
			props = append(props, sddbus.Property{Name: "CPUShares", Value: godbus.MakeVariant(*r.CPUShares)})
		}
	}
	if r.CPUQuota != nil && *r.CPUQuota > 0 {
		period := uint64(QuotaPeriod)
		if r.CPUPeriod != nil && *r.CPUPeriod > 0 {
			period = *r.CPUPeriod
		}
		// systemd keeps the quota per second of CPU time and writes it for its own period
		// (100 ms); it works in steps of 10 ms per second, so round up as runc does, never below
		// what the pod may use.
		perSec := uint64(*r.CPUQuota) * 1000000 / period
		if rem := perSec % 10000; rem != 0 {
			perSec += 10000 - rem
		}
		props = append(props, sddbus.Property{Name: "CPUQuotaPerSecUSec", Value: godbus.MakeVariant(perSec)})
	}
	if r.Memory != nil && *r.Memory > 0 {
		name := "MemoryLimit"
		if s.unified {
			name = "MemoryMax"
		}
		props = append(props, sddbus.Property{Name: name, Value: godbus.MakeVariant(uint64(*r.Memory))})
	}
	if r.PidsLimit != nil {
		limit := uint64(1<<64 - 1) // infinity
		if *r.PidsLimit > 0 {
			limit = uint64(*r.PidsLimit)
		}
		props = append(props, sddbus.Property{Name: "TasksMax", Value: godbus.MakeVariant(limit)})
	}
	return props
}

func (s *systemdBackend) apply(n Name, r *ResourceConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), systemdCallTimeout)
	defer cancel()
	conn, err := s.get(ctx)
	if err != nil {
		return err
	}
	unit := n.SystemdSlice()
	props := s.properties(r)
	ok, err := s.existsConn(ctx, conn, unit)
	if err != nil {
		return err
	}
	if ok {
		if err := conn.SetUnitPropertiesContext(ctx, unit, true, props...); err != nil {
			return fmt.Errorf("systemd: setting the properties of %s: %w", unit, err)
		}
		return nil
	}
	start := append([]sddbus.Property{
		sddbus.PropDescription("Berth pod hierarchy: " + unit),
		{Name: "DefaultDependencies", Value: godbus.MakeVariant(false)},
	}, props...)
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "replace", start, done); err != nil {
		var derr godbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.systemd1.UnitExists" {
			return conn.SetUnitPropertiesContext(ctx, unit, true, props...)
		}
		return fmt.Errorf("systemd: starting transient unit %s: %w", unit, err)
	}
	return waitJob(ctx, unit, "start", done)
}

func waitJob(ctx context.Context, unit, what string, done <-chan string) error {
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("systemd: %s of %s: job %s", what, unit, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd: %s of %s: no answer in %s", what, unit, systemdCallTimeout)
	}
}

func (s *systemdBackend) remove(n Name) error {
	ctx, cancel := context.WithTimeout(context.Background(), systemdCallTimeout)
	defer cancel()
	conn, err := s.get(ctx)
	if err != nil {
		return err
	}
	unit := n.SystemdSlice()
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unit, "replace", done); err != nil {
		var derr godbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.systemd1.NoSuchUnit" {
			return nil
		}
		return fmt.Errorf("systemd: stopping %s: %w", unit, err)
	}
	err = waitJob(ctx, unit, "stop", done)
	_ = conn.ResetFailedUnitContext(ctx, unit) // a transient unit that failed would linger
	return err
}

func (s *systemdBackend) exists(n Name) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), systemdCallTimeout)
	defer cancel()
	conn, err := s.get(ctx)
	if err != nil {
		return false, err
	}
	return s.existsConn(ctx, conn, n.SystemdSlice())
}

func (s *systemdBackend) existsConn(ctx context.Context, conn *sddbus.Conn, unit string) (bool, error) {
	units, err := conn.ListUnitsByNamesContext(ctx, []string{unit})
	if err != nil {
		return false, fmt.Errorf("systemd: looking up %s: %w", unit, err)
	}
	for _, u := range units {
		if u.Name == unit && u.LoadState == "loaded" && (u.ActiveState == "active" || u.ActiveState == "activating") {
			return true, nil
		}
	}
	return false, nil
}

func (s *systemdBackend) children(n Name) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), systemdCallTimeout)
	defer cancel()
	conn, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(n.SystemdSlice(), ".slice") + "-"
	if len(n) == 0 {
		prefix = ""
	}
	units, err := conn.ListUnitsByPatternsContext(ctx, []string{"active", "activating"}, []string{prefix + "*.slice"})
	if err != nil {
		return nil, fmt.Errorf("systemd: listing slices %s*.slice: %w", prefix, err)
	}
	var out []string
	for _, u := range units {
		rest := strings.TrimSuffix(strings.TrimPrefix(u.Name, prefix), ".slice")
		if rest == "" || strings.Contains(rest, "-") {
			continue // not a direct child
		}
		out = append(out, rest)
	}
	return out, nil
}

func (s *systemdBackend) parent(n Name) string { return n.SystemdSlice() }

// SystemdBusAt connects to the D-Bus bus at address ("unix:path=/run/dbus/system_bus_socket"),
// for a systemd that is not the one on the default system bus (tests run one in namespaces of its
// own: test/env/systemd-ns.sh).
func SystemdBusAt(address string) SystemdConnector {
	return func(ctx context.Context) (*sddbus.Conn, error) {
		return sddbus.NewConnection(func() (*godbus.Conn, error) {
			conn, err := godbus.Dial(address, godbus.WithContext(ctx))
			if err != nil {
				return nil, err
			}
			if err := conn.Auth(nil); err != nil {
				conn.Close()
				return nil, err
			}
			if err := conn.Hello(); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		})
	}
}
