package cgroups

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup2"
)

// fs2 is the cgroupfs driver on cgroup v2 (unified): one directory per cgroup under the
// mountpoint, made and written by containerd's cgroup2 package (which also enables the cpu,
// memory and pids controllers in the parents' cgroup.subtree_control).
type fs2 struct{ mountpoint string }

func v2Resources(r *ResourceConfig) *cgroup2.Resources {
	out := &cgroup2.Resources{}
	if r.CPUShares != nil || r.CPUQuota != nil {
		cpu := &cgroup2.CPU{}
		if r.CPUShares != nil {
			cpu.Weight = ptr(SharesToWeight(*r.CPUShares))
		}
		if r.CPUQuota != nil && *r.CPUQuota > 0 {
			cpu.Max = cgroup2.NewCPUMax(r.CPUQuota, r.CPUPeriod)
		}
		out.CPU = cpu
	}
	if r.Memory != nil {
		out.Memory = &cgroup2.Memory{Max: r.Memory}
	}
	if r.PidsLimit != nil {
		out.Pids = &cgroup2.Pids{Max: *r.PidsLimit}
	}
	return out
}

func (f *fs2) apply(n Name, r *ResourceConfig) error {
	_, err := cgroup2.NewManager(f.mountpoint, n.Cgroupfs(), v2Resources(r))
	return err
}

func (f *fs2) remove(n Name) error {
	if ok, err := f.exists(n); err != nil || !ok {
		return err
	}
	m, err := cgroup2.Load(n.Cgroupfs(), cgroup2.WithMountpoint(f.mountpoint))
	if err != nil {
		return err
	}
	return m.Delete()
}

func (f *fs2) exists(n Name) (bool, error) {
	_, err := os.Stat(filepath.Join(f.mountpoint, n.Cgroupfs()))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (f *fs2) children(n Name) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(f.mountpoint, n.Cgroupfs()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (f *fs2) parent(n Name) string { return n.Cgroupfs() }
func (f *fs2) close()               {}
