package cgroups

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Driver is how cgroups are made: by writing cgroupfs (cgroupfs) or by asking systemd (systemd).
// The runtime must use the same driver.
type Driver string

const (
	DriverCgroupfs Driver = "cgroupfs"
	DriverSystemd  Driver = "systemd"
)

// ParseDriver reads cgroupDriver / --cgroup-driver.
func ParseDriver(s string) (Driver, error) {
	switch Driver(s) {
	case DriverCgroupfs, DriverSystemd:
		return Driver(s), nil
	}
	return "", fmt.Errorf("cgroup driver %q: want cgroupfs or systemd", s)
}

// Names of the node-level cgroups, as the kubelet names them.
const (
	kubepodsName   = "kubepods"
	burstableName  = "burstable"
	besteffortName = "besteffort"
	podPrefix      = "pod"
)

// Config is what a Manager runs with.
type Config struct {
	Driver Driver
	// Root is cgroupRoot parsed by ParseRoot: {} for "/".
	Root Name
	// PodPidsLimit is pids.max of every pod cgroup (podPidsLimit); -1 or 0: unlimited.
	PodPidsLimit int64
	// Kubepods is the configuration of the kubepods cgroup (NodeResourceConfig of allocatable or
	// capacity).
	Kubepods *ResourceConfig

	// Unified selects cgroup v2 (the library's Mode() when nil).
	Unified *bool
	// UnifiedMountpoint is where the v2 hierarchy is ("/sys/fs/cgroup"); tests point it at a tree
	// they prepared.
	UnifiedMountpoint string
	// Systemd connects to systemd for the systemd driver (the system bus when nil).
	Systemd SystemdConnector

	Logger *slog.Logger
}

// backend makes cgroups with one driver on one cgroup version.
type backend interface {
	// apply creates the cgroup when missing (parents included) and writes r.
	apply(n Name, r *ResourceConfig) error
	// remove deletes the cgroup (it must hold no process); a missing one is no error.
	remove(n Name) error
	exists(n Name) (bool, error)
	// children lists the names of the cgroup's child cgroups.
	children(n Name) ([]string, error)
	// parent is what a runtime is given as CgroupParent for n.
	parent(n Name) string
	close()
}

// Manager owns the pod hierarchy below the root:
//
//	<root>/kubepods                    node allocatable (or capacity): cpu.shares, memory, pids
//	<root>/kubepods/pod<uid>           Guaranteed pods
//	<root>/kubepods/burstable          cpu.shares = the sum of its pods' CPU requests
//	<root>/kubepods/burstable/pod<uid> Burstable pods
//	<root>/kubepods/besteffort         cpu.shares = 2
//	<root>/kubepods/besteffort/pod<uid>
//
// A pod cgroup is made before its sandbox, with the pod's limits (PodResourceConfig), and given
// to the runtime as the sandbox's CgroupParent; the runtime makes the sandbox's and containers'
// cgroups under it. It is removed once the pod is gone; pod cgroups of pods Berth no longer has
// are removed by CleanupOrphans.
type Manager struct {
	cfg Config
	b   backend
	log *slog.Logger

	mu sync.Mutex
	// pods is what the manager knows of the pod cgroups it made: the class and the CPU request.
	pods map[types.UID]podEntry
	// burstableShares is the last cpu.shares written to the burstable class (0: not yet).
	burstableShares uint64
}

type podEntry struct {
	class    v1.PodQOSClass
	cpuMilli int64
	applied  string // ResourceConfig.String() last written
}

// New prepares a Manager for the configured driver and the machine's cgroup version. Nothing is
// written until Start.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Driver == "" {
		cfg.Driver = DriverCgroupfs
	}
	if cfg.UnifiedMountpoint == "" {
		cfg.UnifiedMountpoint = "/sys/fs/cgroup"
	}
	unified := cgroupsv3.Mode() == cgroupsv3.Unified
	if cfg.Unified != nil {
		unified = *cfg.Unified
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, pods: map[types.UID]podEntry{}}
	var err error
	switch {
	case cfg.Driver == DriverSystemd:
		m.b, err = newSystemdBackend(cfg.Systemd, unified)
	case unified:
		m.b = &fs2{mountpoint: cfg.UnifiedMountpoint}
	default:
		m.b = &fs1{}
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Close releases the systemd connection, if any.
func (m *Manager) Close() { m.b.close() }

func (m *Manager) kubepods() Name   { return m.cfg.Root.Child(kubepodsName) }
func (m *Manager) burstable() Name  { return m.kubepods().Child(burstableName) }
func (m *Manager) besteffort() Name { return m.kubepods().Child(besteffortName) }

// KubepodsParent is the kubepods cgroup as the runtime names it.
func (m *Manager) KubepodsParent() string { return m.b.parent(m.kubepods()) }

// Start makes (or updates) kubepods with its limits and the burstable and besteffort classes.
func (m *Manager) Start() error {
	kp := m.cfg.Kubepods
	if kp == nil {
		kp = &ResourceConfig{}
	}
	if err := m.b.apply(m.kubepods(), kp); err != nil {
		return fmt.Errorf("cgroup %s: %w", m.b.parent(m.kubepods()), err)
	}
	if err := m.b.apply(m.besteffort(), &ResourceConfig{CPUShares: ptr(uint64(MinShares))}); err != nil {
		return fmt.Errorf("cgroup %s: %w", m.b.parent(m.besteffort()), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.updateBurstableLocked(true); err != nil {
		return err
	}
	if f, ok := m.b.(*fs1); ok {
		for _, n := range []Name{m.kubepods(), m.burstable(), m.besteffort()} {
			if err := f.cloneCpuset(n); err != nil {
				return fmt.Errorf("cgroup %s: cpuset: %w", f.parent(n), err)
			}
		}
	}
	return nil
}

// podName is the pod's cgroup, under its class.
func (m *Manager) podName(uid types.UID, class v1.PodQOSClass) Name {
	leaf := podPrefix + string(uid)
	switch class {
	case v1.PodQOSGuaranteed:
		return m.kubepods().Child(leaf)
	case v1.PodQOSBurstable:
		return m.burstable().Child(leaf)
	}
	return m.besteffort().Child(leaf)
}

// PodParent is the pod's cgroup as the runtime names it: the sandbox's CgroupParent.
func (m *Manager) PodParent(pod *v1.Pod) string {
	return m.b.parent(m.podName(pod.UID, QOSClass(pod)))
}

// EnsurePod makes the pod's cgroup (or brings its limits up to date) and, for a burstable pod,
// updates the class's cpu.shares. It is called on every sync of the pod: a pod whose cgroup was
// made with the same limits by this manager costs nothing; after a restart the first call
// rewrites the limits and counts the pod's request in the burstable class again.
func (m *Manager) EnsurePod(pod *v1.Pod) error {
	class := QOSClass(pod)
	n := m.podName(pod.UID, class)
	rc := PodResourceConfig(pod, m.cfg.PodPidsLimit)
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.pods[pod.UID]; ok && e.class == class && e.applied == rc.String() {
		if exists, err := m.b.exists(n); err == nil && exists {
			return nil
		}
	}
	if err := m.b.apply(n, rc); err != nil {
		return fmt.Errorf("pod cgroup %s: %w", m.b.parent(n), err)
	}
	m.pods[pod.UID] = podEntry{class: class, cpuMilli: PodCPURequest(pod), applied: rc.String()}
	return m.updateBurstableLocked(false)
}

// RemovePod removes the pod's cgroup, wherever it is, and updates the burstable class's shares.
// The pod's processes must be gone: the runtime removes the sandbox's and containers' cgroups,
// not the pod's.
func (m *Manager) RemovePod(uid types.UID) error {
	var errs []error
	for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		n := m.podName(uid, class)
		ok, err := m.b.exists(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if err := m.b.remove(n); err != nil {
			errs = append(errs, fmt.Errorf("pod cgroup %s: %w", m.b.parent(n), err))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(errs) == 0 {
		delete(m.pods, uid)
	}
	if err := m.updateBurstableLocked(false); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// PodUIDs lists the UIDs of the pod cgroups under kubepods (all three classes): only directories
// named pod<uid> under Berth's own kubepods are ever considered.
func (m *Manager) PodUIDs() (map[types.UID]bool, error) {
	out := map[types.UID]bool{}
	for _, parent := range []Name{m.kubepods(), m.burstable(), m.besteffort()} {
		kids, err := m.b.children(parent)
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			if uid, ok := strings.CutPrefix(k, podPrefix); ok && uid != "" {
				if m.cfg.Driver == DriverSystemd {
					uid = strings.ReplaceAll(uid, "_", "-")
				}
				out[types.UID(uid)] = true
			}
		}
	}
	return out, nil
}

// CleanupOrphans removes the pod cgroups of pods for which active is false. A cgroup that still
// holds processes is left (and reported): the pod is still being torn down.
func (m *Manager) CleanupOrphans(active func(types.UID) bool) error {
	uids, err := m.PodUIDs()
	if err != nil {
		return err
	}
	var errs []error
	for uid := range uids {
		if active(uid) {
			continue
		}
		m.log.Info("removing the cgroup of a pod that is gone", "podUID", uid)
		if err := m.RemovePod(uid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// updateBurstableLocked writes the burstable class's cpu.shares, the sum of its pods' CPU
// requests, when it changed (or always, with force).
func (m *Manager) updateBurstableLocked(force bool) error {
	var milli int64
	for _, p := range m.pods {
		if p.class == v1.PodQOSBurstable {
			milli += p.cpuMilli
		}
	}
	shares := MilliCPUToShares(milli)
	if !force && shares == m.burstableShares {
		return nil
	}
	if err := m.b.apply(m.burstable(), &ResourceConfig{CPUShares: ptr(shares)}); err != nil {
		return fmt.Errorf("cgroup %s: %w", m.b.parent(m.burstable()), err)
	}
	m.burstableShares = shares
	return nil
}
