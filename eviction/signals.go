package eviction

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Observation is one measured signal: what is available of what the node has.
type Observation struct {
	Available resource.Quantity
	Capacity  resource.Quantity
}

// Observations are the signals measured at one moment.
type Observations map[Signal]Observation

// MemoryReader reads the node's memory: its capacity and its working set (usage minus inactive
// file pages, the memory the kernel cannot reclaim cheaply).
type MemoryReader interface {
	ReadMemory() (capacity, workingSet int64, err error)
}

// FsStats is a filesystem's space and inodes.
type FsStats struct {
	CapacityBytes, AvailableBytes int64
	Inodes, InodesFree            int64
}

// FsReader reads the filesystem holding a path (statfs).
type FsReader interface {
	ReadFs(path string) (FsStats, error)
}

// ImageFsLocator says where the runtime keeps its images (CRI ImageFsInfo's mountpoint).
type ImageFsLocator interface {
	ImageFsPath(ctx context.Context) (string, error)
}

// PIDReader reads the node's process id limit and the number of processes running.
type PIDReader interface {
	ReadPIDs() (max, running int64, err error)
}

// Signals measures the node's eviction signals, each from its reader:
//   - memory.available: capacity - working set, from the root memory cgroup (cgroup v1:
//     memory.usage_in_bytes - total_inactive_file; v2: MemTotal - MemFree - inactive_file), as
//     the kubelet computes it;
//   - nodefs.*: statfs of the root directory (Berth's --root-dir, where pods' data lives);
//   - imagefs.*: statfs of the runtime's image filesystem (CRI ImageFsInfo);
//   - pid.available: kernel.pid_max - the number of processes.
type SignalReaders struct {
	Memory  MemoryReader
	Fs      FsReader
	ImageFs ImageFsLocator // nil: imagefs is nodefs
	PIDs    PIDReader
	RootDir string
}

// Observe measures every signal it can. A signal whose reader fails is left out (its threshold
// cannot be met) and the errors are returned together, so one broken reader never hides pressure
// on the others.
func (r SignalReaders) Observe(ctx context.Context) (Observations, error) {
	obs := Observations{}
	var errs []error
	if r.Memory != nil {
		capacity, ws, err := r.Memory.ReadMemory()
		if err != nil {
			errs = append(errs, fmt.Errorf("memory.available: %w", err))
		} else {
			obs[SignalMemoryAvailable] = Observation{
				Available: *resource.NewQuantity(max(capacity-ws, 0), resource.BinarySI),
				Capacity:  *resource.NewQuantity(capacity, resource.BinarySI),
			}
		}
	}
	if r.Fs != nil {
		fs, err := r.Fs.ReadFs(r.RootDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("nodefs (%s): %w", r.RootDir, err))
		} else {
			addFs(obs, fs, SignalNodeFsAvailable, SignalNodeFsInodesFree)
		}
		imagePath := ""
		if r.ImageFs != nil {
			if imagePath, err = r.ImageFs.ImageFsPath(ctx); err != nil {
				errs = append(errs, fmt.Errorf("imagefs: %w", err))
			}
		}
		switch {
		case imagePath != "":
			if ifs, err := r.Fs.ReadFs(imagePath); err != nil {
				errs = append(errs, fmt.Errorf("imagefs (%s): %w", imagePath, err))
			} else {
				addFs(obs, ifs, SignalImageFsAvailable, SignalImageFsInodesFree)
			}
		case r.ImageFs == nil && err == nil:
			addFs(obs, fs, SignalImageFsAvailable, SignalImageFsInodesFree)
		}
	}
	if r.PIDs != nil {
		maxPIDs, running, err := r.PIDs.ReadPIDs()
		if err != nil {
			errs = append(errs, fmt.Errorf("pid.available: %w", err))
		} else {
			obs[SignalPIDAvailable] = Observation{
				Available: *resource.NewQuantity(max(maxPIDs-running, 0), resource.DecimalSI),
				Capacity:  *resource.NewQuantity(maxPIDs, resource.DecimalSI),
			}
		}
	}
	return obs, errors.Join(errs...)
}

func addFs(obs Observations, fs FsStats, bytes, inodes Signal) {
	obs[bytes] = Observation{
		Available: *resource.NewQuantity(fs.AvailableBytes, resource.BinarySI),
		Capacity:  *resource.NewQuantity(fs.CapacityBytes, resource.BinarySI),
	}
	if fs.Inodes > 0 { // some filesystems (btrfs) report no inode counts
		obs[inodes] = Observation{
			Available: *resource.NewQuantity(fs.InodesFree, resource.DecimalSI),
			Capacity:  *resource.NewQuantity(fs.Inodes, resource.DecimalSI),
		}
	}
}

// HostMemory reads memory from /proc/meminfo and the root memory cgroup under Root ("/" on a
// real node; a directory laid out like it in tests).
type HostMemory struct{ Root string }

func (h HostMemory) path(p string) string { return filepath.Join(h.Root, p) }

func (h HostMemory) ReadMemory() (capacity, workingSet int64, err error) {
	meminfo, err := readKeyValues(h.path("/proc/meminfo"), ":")
	if err != nil {
		return 0, 0, err
	}
	total, ok := meminfo["MemTotal"]
	if !ok {
		return 0, 0, errors.New("/proc/meminfo has no MemTotal")
	}
	capacity = total * 1024
	// cgroup v1: the root memory cgroup accounts the whole machine.
	if usage, err := os.ReadFile(h.path("/sys/fs/cgroup/memory/memory.usage_in_bytes")); err == nil {
		u, err := strconv.ParseInt(strings.TrimSpace(string(usage)), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("memory.usage_in_bytes: %w", err)
		}
		stat, err := readKeyValues(h.path("/sys/fs/cgroup/memory/memory.stat"), " ")
		if err != nil {
			return 0, 0, err
		}
		return capacity, max(u-stat["total_inactive_file"], 0), nil
	}
	// cgroup v2: the root cgroup has no memory.current; usage is what is not free, as cAdvisor
	// reads it for the root.
	free, ok := meminfo["MemFree"]
	if !ok {
		return 0, 0, errors.New("/proc/meminfo has no MemFree")
	}
	usage := capacity - free*1024
	if stat, err := readKeyValues(h.path("/sys/fs/cgroup/memory.stat"), " "); err == nil {
		usage -= stat["inactive_file"]
	}
	return capacity, max(usage, 0), nil
}

// readKeyValues reads "key<sep> value [unit]" lines.
func readKeyValues(path, sep string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), sep)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[strings.TrimSpace(k)] = v
		}
	}
	return out, sc.Err()
}

// Statfs reads filesystems with statfs(2): available is what unprivileged users may still use
// (f_bavail), as df and the kubelet report it.
type Statfs struct{}

func (Statfs) ReadFs(path string) (FsStats, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return FsStats{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := int64(st.Bsize)
	return FsStats{
		CapacityBytes:  int64(st.Blocks) * bs,
		AvailableBytes: int64(st.Bavail) * bs,
		Inodes:         int64(st.Files),
		InodesFree:     int64(st.Ffree),
	}, nil
}

// HostPIDs reads the process id limit, min(kernel.pid_max, kernel.threads-max), and the number
// of tasks the kernel runs (sysinfo(2)'s procs, threads included: each takes a process id), as the
// kubelet reads them.
type HostPIDs struct{}

func (HostPIDs) ReadPIDs() (maxPIDs, running int64, err error) {
	maxPIDs, err = readInt("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, 0, err
	}
	if threads, err := readInt("/proc/sys/kernel/threads-max"); err == nil && threads < maxPIDs {
		maxPIDs = threads
	}
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		return 0, 0, fmt.Errorf("sysinfo: %w", err)
	}
	return maxPIDs, int64(info.Procs), nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
