package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// fs1 is the cgroupfs driver on cgroup v1: the same path in every mounted v1 hierarchy (cpu,
// cpuacct, cpuset, memory, pids, blkio, devices, freezer, hugetlb, name=systemd, ...), made and
// written by containerd's cgroup1 package.
type fs1 struct {
	// The mounted hierarchies, found once: cgroup1.Default reads /proc/self/mountinfo and stats
	// every hierarchy, which was a tenth of Berth's CPU in a burst of pod starts when done on every
	// call. Mounts of cgroup hierarchies do not change under a running node.
	once       sync.Once
	subsystems []cgroup1.Subsystem
	err        error
}

// hierarchy is cgroup1.Default, cached, with the cpuset hierarchy's Create made cheaper
// (parentCopyCpuset).
func (f *fs1) hierarchy() ([]cgroup1.Subsystem, error) {
	f.once.Do(func() {
		f.subsystems, f.err = cgroup1.Default()
		for i, s := range f.subsystems {
			if c, ok := s.(cpusetSubsystem); ok && s.Name() == cgroup1.Cpuset {
				f.subsystems[i] = parentCopyCpuset{c}
			}
		}
	})
	return f.subsystems, f.err
}

// cpusetSubsystem is what cgroup1's cpuset controller does (its type is not exported).
type cpusetSubsystem interface {
	cgroup1.Subsystem
	Path(path string) string
	Create(path string, resources *specs.LinuxResources) error
	Update(path string, resources *specs.LinuxResources) error
}

// parentCopyCpuset creates a pod's cpuset cgroup under a parent that is already set up (Berth made
// the QoS cgroups at start) with one mkdir and the parent's cpus and mems copied: a new cpuset
// cgroup has none and takes no task until it has them. cgroup1's own Create walks every ancestor
// up to the root and reads both files of each and of its parent every time — 16 file reads for a
// BestEffort pod, two thirds of what Berth spent on a pod cgroup in a burst. Anything else (a parent
// missing or empty, an existing cgroup, cpus or mems asked for) goes to cgroup1's Create.
type parentCopyCpuset struct{ cpusetSubsystem }

// Create is one mkdir under a parent with cgroup.clone_children set (Berth sets it on its QoS
// cgroups: cloneCpuset): the kernel copies the parent's cpus and mems into the new cgroup itself.
// Writing cpuset.cpus instead makes the kernel rebuild its scheduling domains, a walk of every
// cpuset cgroup on the machine: one per pod made a burst of n pods cost n² (500 pods: 48 ms of
// writes against 6 ms for 100, on this machine with nothing else running).
func (c parentCopyCpuset) Create(path string, resources *specs.LinuxResources) error {
	if resources != nil && resources.CPU != nil && (resources.CPU.Cpus != "" || resources.CPU.Mems != "") {
		return c.cpusetSubsystem.Create(path, resources)
	}
	dir := c.Path(path)
	parent := filepath.Dir(dir)
	if b, err := os.ReadFile(filepath.Join(parent, cloneChildrenFile)); err == nil && string(bytes.TrimSpace(b)) == "1" {
		if err := os.Mkdir(dir, 0o755); err == nil {
			return nil
		}
		return c.cpusetSubsystem.Create(path, resources)
	}
	var values [2][]byte
	for i, name := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(parent, name))
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return c.cpusetSubsystem.Create(path, resources)
		}
		values[i] = b
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return c.cpusetSubsystem.Create(path, resources) // exists already (or cannot be made: cgroup1 says why)
	}
	for i, name := range []string{"cpuset.cpus", "cpuset.mems"} {
		if err := os.WriteFile(filepath.Join(dir, name), values[i], 0o644); err != nil {
			return fmt.Errorf("cpuset %s: %w", filepath.Join(dir, name), err)
		}
	}
	return nil
}

// cloneChildrenFile is the cgroup v1 flag that makes the kernel give a new cpuset cgroup its
// parent's cpus and mems; a cgroup made under a parent with it set has it set too.
const cloneChildrenFile = "cgroup.clone_children"

// cloneCpuset sets cgroup.clone_children on n's cpuset cgroup (it must have its cpus and mems):
// the pod cgroups made under it, and the runtime's sandbox and container cgroups under those, get
// their cpus and mems from the kernel when they are made, and no one writes them (parentCopyCpuset
// says why that matters). Only the cpuset controller reads the flag.
func (f *fs1) cloneCpuset(n Name) error {
	subsystems, err := f.hierarchy()
	if err != nil {
		return err
	}
	for _, s := range subsystems {
		c, ok := s.(parentCopyCpuset)
		if !ok {
			continue
		}
		dir := c.Path(n.Cgroupfs())
		for _, name := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			if len(bytes.TrimSpace(b)) == 0 {
				return fmt.Errorf("cpuset %s is empty", filepath.Join(dir, name))
			}
		}
		return os.WriteFile(filepath.Join(dir, cloneChildrenFile), []byte("1"), 0o644)
	}
	return nil // no cpuset hierarchy
}

func v1Resources(r *ResourceConfig) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if r.CPUShares != nil || r.CPUQuota != nil || r.CPUPeriod != nil {
		out.CPU = &specs.LinuxCPU{Shares: r.CPUShares, Quota: r.CPUQuota, Period: r.CPUPeriod}
	}
	if r.Memory != nil {
		out.Memory = &specs.LinuxMemory{Limit: r.Memory}
	}
	if r.PidsLimit != nil {
		out.Pids = &specs.LinuxPids{Limit: r.PidsLimit}
	}
	return out
}

func (f *fs1) apply(n Name, r *ResourceConfig) error {
	// New makes the directories that are missing in every hierarchy (the cpuset parents get
	// their cpus and mems) and writes the resources; on an existing cgroup it only writes.
	_, err := cgroup1.New(cgroup1.StaticPath(n.Cgroupfs()), v1Resources(r), cgroup1.WithHierarchy(f.hierarchy))
	return err
}

// remove deletes n's directory in every v1 hierarchy, the cgroups below it first. rmdir is the
// only check needed: the kernel refuses (EBUSY) a cgroup that still has tasks or children, and
// removes its control files with it. cgroup1's Delete walked every hierarchy's tree with
// filepath.Walk first, an lstat of each of the twenty-odd control files of every cgroup in every
// hierarchy, to read cgroup.procs: a sixth of Berth's CPU over a 100-pod burst's lifecycle went
// there (test/bench burst-fake-100, -cpuprofile).
func (f *fs1) remove(n Name) error {
	subsystems, err := f.hierarchy()
	if err != nil {
		return err
	}
	var errs []error
	done := map[string]bool{} // cpu and cpuacct share one hierarchy
	for _, s := range subsystems {
		p, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		dir := p.Path(n.Cgroupfs())
		if done[dir] {
			continue
		}
		done[dir] = true
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return f.removeHybrid(n)
}

// removeCgroupTree removes the cgroup directory dir and the cgroups below it, deepest first. A
// cgroup whose last task has just exited can refuse rmdir for a moment (the kernel detaches tasks
// asynchronously): EBUSY is retried for up to ~150 ms, unless cgroup.procs still lists a task.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := 10 * time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(bytes.TrimSpace(procs)) > 0 {
			return fmt.Errorf("remove cgroup %s: it still has processes (%s)", dir, strings.Join(strings.Fields(string(procs)), " "))
		}
		if i == 4 {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}

// hybridUnifiedMountpoint is where systemd (and the test machines) mount the v2 hierarchy next to
// the v1 ones in hybrid mode.
const hybridUnifiedMountpoint = "/sys/fs/cgroup/unified"

// removeHybrid removes the cgroup's directory in the v2 hierarchy of a hybrid machine: runc puts
// containers there too (no controllers, only process tracking), so the pod's directory appears
// there under the same path, and nothing else removes it.
func (*fs1) removeHybrid(n Name) error {
	if cgroupsv3.Mode() != cgroupsv3.Hybrid {
		return nil
	}
	if _, err := os.Stat(filepath.Join(hybridUnifiedMountpoint, n.Cgroupfs())); err != nil {
		return nil
	}
	m, err := cgroup2.Load(n.Cgroupfs(), cgroup2.WithMountpoint(hybridUnifiedMountpoint))
	if err != nil {
		return err
	}
	return m.Delete()
}

func (f *fs1) exists(n Name) (bool, error) {
	dir, err := f.dir(n)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (f *fs1) children(n Name) ([]string, error) {
	dir, err := f.dir(n)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
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

// dir is the cgroup's directory in the pids hierarchy (memory when there is no pids), the one
// Berth reads to see which cgroups exist.
func (f *fs1) dir(n Name) (string, error) {
	subsystems, err := f.hierarchy()
	if err != nil {
		return "", err
	}
	type pather interface{ Path(string) string }
	var fallback string
	for _, s := range subsystems {
		p, ok := s.(pather)
		if !ok {
			continue
		}
		switch s.Name() {
		case cgroup1.Pids:
			return p.Path(n.Cgroupfs()), nil
		case cgroup1.Memory:
			fallback = p.Path(n.Cgroupfs())
		}
	}
	if fallback == "" {
		return "", errors.New("no pids or memory cgroup hierarchy is mounted")
	}
	return fallback, nil
}

func (*fs1) parent(n Name) string { return n.Cgroupfs() }
func (*fs1) close()               {}
