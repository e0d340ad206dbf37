package server

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/cri"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// /stats/summary: the kubelet's Summary API (stats/v1alpha1) in its JSON shape, with what Berth can
// measure: the node's CPU, memory and filesystems (fs: the root dir's, runtime.imageFs from CRI
// ImageFsInfo), and each pod's containers' CPU, memory, writable layer (rootfs, CRI ContainerStats)
// and logs (the container's log directory), with the pod's sums. Networks, volumes and the pod
// cgroups' own figures are not there yet.

type summary struct {
	Node nodeStats  `json:"node"`
	Pods []podStats `json:"pods"`
}

type nodeStats struct {
	NodeName  string        `json:"nodeName"`
	StartTime metav1.Time   `json:"startTime"`
	CPU       *cpuStats     `json:"cpu,omitempty"`
	Memory    *memoryStats  `json:"memory,omitempty"`
	Fs        *fsStats      `json:"fs,omitempty"`
	Runtime   *runtimeStats `json:"runtime,omitempty"`
}

type runtimeStats struct {
	ImageFs     *fsStats `json:"imageFs,omitempty"`
	ContainerFs *fsStats `json:"containerFs,omitempty"`
}

type fsStats struct {
	Time           metav1.Time `json:"time"`
	AvailableBytes *uint64     `json:"availableBytes,omitempty"`
	CapacityBytes  *uint64     `json:"capacityBytes,omitempty"`
	UsedBytes      *uint64     `json:"usedBytes,omitempty"`
	InodesFree     *uint64     `json:"inodesFree,omitempty"`
	Inodes         *uint64     `json:"inodes,omitempty"`
	InodesUsed     *uint64     `json:"inodesUsed,omitempty"`
}

type podReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

type podStats struct {
	PodRef     podReference     `json:"podRef"`
	StartTime  metav1.Time      `json:"startTime"`
	Containers []containerStats `json:"containers"`
	CPU        *cpuStats        `json:"cpu,omitempty"`
	Memory     *memoryStats     `json:"memory,omitempty"`
	// EphemeralStorage is the containers' writable layers and logs (volumes not counted yet).
	EphemeralStorage *fsStats `json:"ephemeral-storage,omitempty"`
}

type containerStats struct {
	Name      string       `json:"name"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
	Rootfs    *fsStats     `json:"rootfs,omitempty"`
	Logs      *fsStats     `json:"logs,omitempty"`
}

type cpuStats struct {
	Time                 metav1.Time `json:"time"`
	UsageNanoCores       *uint64     `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64     `json:"usageCoreNanoSeconds,omitempty"`
}

type memoryStats struct {
	Time            metav1.Time `json:"time"`
	AvailableBytes  *uint64     `json:"availableBytes,omitempty"`
	UsageBytes      *uint64     `json:"usageBytes,omitempty"`
	WorkingSetBytes *uint64     `json:"workingSetBytes,omitempty"`
}

// cpuSampler turns the node's cumulative CPU time into a rate (usageNanoCores) between requests.
type cpuSampler struct {
	mu       sync.Mutex
	lastTime time.Time
	lastNano uint64
}

func (c *cpuSampler) sample(now time.Time, nano uint64) *uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rate *uint64
	if !c.lastTime.IsZero() && now.After(c.lastTime) && nano >= c.lastNano {
		r := uint64(float64(nano-c.lastNano) / now.Sub(c.lastTime).Seconds())
		rate = &r
	}
	c.lastTime, c.lastNano = now, nano
	return rate
}

func u64(v uint64) *uint64 { return &v }

func (s *Server) statsSummary(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	out := summary{Node: nodeStats{NodeName: s.cfg.NodeName, StartTime: metav1.NewTime(s.started)}, Pods: []podStats{}}
	if secs, err := nodeCPUSeconds("/proc"); err == nil {
		nano := uint64(secs * 1e9)
		out.Node.CPU = &cpuStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: u64(nano), UsageNanoCores: s.nodeCPU.sample(now, nano)}
	}
	if ws, err := nodeWorkingSet("/proc"); err == nil {
		out.Node.Memory = &memoryStats{Time: metav1.NewTime(now), WorkingSetBytes: u64(uint64(ws))}
	}
	fsCache := statfsCache{}
	if s.cfg.RootDir != "" {
		if fs := fsCache.stats(s.cfg.RootDir, now); fs != nil {
			fs.UsedBytes = u64(*fs.CapacityBytes - fs.free)
			fs.InodesUsed = u64(*fs.Inodes - *fs.InodesFree)
			out.Node.Fs = &fs.fsStats
		}
	}
	if fss, err := s.cfg.Runtime.ImageFsInfo(r.Context()); err == nil && len(fss) > 0 {
		img := fss[0]
		fs := &fsStats{Time: metav1.NewTime(time.Unix(0, img.Timestamp))}
		if st := fsCache.stats(img.GetFsId().GetMountpoint(), now); st != nil {
			cp := st.fsStats
			fs = &cp
		}
		if img.UsedBytes != nil {
			fs.UsedBytes = u64(img.UsedBytes.Value)
		}
		if img.InodesUsed != nil {
			fs.InodesUsed = u64(img.InodesUsed.Value)
		}
		// One filesystem for images and writable layers, as the kubelet reports it unless the
		// runtime splits them.
		out.Node.Runtime = &runtimeStats{ImageFs: fs, ContainerFs: fs}
	}
	pods, err := s.podSummaries(r.Context(), now, fsCache)
	if err != nil {
		writeError(w, err)
		return
	}
	out.Pods = pods
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&out)
}

// podSummaries gathers the running containers' stats per pod of the node.
func (s *Server) podSummaries(ctx context.Context, now time.Time, fsCache statfsCache) ([]podStats, error) {
	managed := map[string]string{cri.LabelManagedBy: cri.ManagedByValue}
	cs, err := s.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: managed,
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return nil, err
	}
	stats, err := s.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: managed})
	if err != nil {
		return nil, err
	}
	byID := map[string]*runtimeapi.ContainerStats{}
	for _, st := range stats {
		byID[st.GetAttributes().GetId()] = st
	}
	byUID := map[string][]*runtimeapi.Container{}
	for _, ct := range cs {
		uid := ct.Labels[cri.LabelPodUID]
		byUID[uid] = append(byUID[uid], ct)
	}
	var out []podStats
	for _, p := range s.cfg.Pods.Pods() {
		ps := podStats{PodRef: podReference{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID)}, Containers: []containerStats{}}
		if p.Status.StartTime != nil {
			ps.StartTime = *p.Status.StartTime
		}
		var cpuSum, memSum, diskSum, inodeSum uint64
		var cpuTime, memTime time.Time
		var hasCPU, hasMem, hasDisk bool
		for _, ct := range byUID[string(p.UID)] {
			c := containerStats{Name: ct.Labels[cri.LabelContainerName], StartTime: metav1.NewTime(time.Unix(0, ct.CreatedAt))}
			st := byID[ct.Id]
			if cpu := st.GetCpu(); cpu != nil && cpu.UsageCoreNanoSeconds != nil {
				t := time.Unix(0, cpu.Timestamp)
				c.CPU = &cpuStats{Time: metav1.NewTime(t), UsageCoreNanoSeconds: u64(cpu.UsageCoreNanoSeconds.Value)}
				if cpu.UsageNanoCores != nil {
					c.CPU.UsageNanoCores = u64(cpu.UsageNanoCores.Value)
				}
				cpuSum, hasCPU = cpuSum+cpu.UsageCoreNanoSeconds.Value, true
				if t.After(cpuTime) {
					cpuTime = t
				}
			}
			if mem := st.GetMemory(); mem != nil && mem.WorkingSetBytes != nil {
				t := time.Unix(0, mem.Timestamp)
				c.Memory = &memoryStats{Time: metav1.NewTime(t), WorkingSetBytes: u64(mem.WorkingSetBytes.Value)}
				if mem.UsageBytes != nil {
					c.Memory.UsageBytes = u64(mem.UsageBytes.Value)
				}
				if mem.AvailableBytes != nil {
					c.Memory.AvailableBytes = u64(mem.AvailableBytes.Value)
				}
				memSum, hasMem = memSum+mem.WorkingSetBytes.Value, true
				if t.After(memTime) {
					memTime = t
				}
			}
			if wl := st.GetWritableLayer(); wl != nil && wl.UsedBytes != nil {
				c.Rootfs = &fsStats{Time: metav1.NewTime(time.Unix(0, wl.Timestamp))}
				if fs := fsCache.stats(wl.GetFsId().GetMountpoint(), now); fs != nil {
					c.Rootfs.CapacityBytes, c.Rootfs.AvailableBytes, c.Rootfs.Inodes, c.Rootfs.InodesFree = fs.CapacityBytes, fs.AvailableBytes, fs.Inodes, fs.InodesFree
				}
				c.Rootfs.UsedBytes = u64(wl.UsedBytes.Value)
				diskSum, hasDisk = diskSum+wl.UsedBytes.Value, true
				if wl.InodesUsed != nil {
					c.Rootfs.InodesUsed = u64(wl.InodesUsed.Value)
					inodeSum += wl.InodesUsed.Value
				}
			}
			if s.cfg.PodLogsDir != "" {
				dir := filepath.Join(cri.PodLogDir(s.cfg.PodLogsDir, p.Namespace, p.Name, p.UID), c.Name)
				if used, files, err := dirUsage(dir); err == nil {
					c.Logs = &fsStats{Time: metav1.NewTime(now), UsedBytes: u64(used), InodesUsed: u64(files)}
					if fs := fsCache.stats(s.cfg.PodLogsDir, now); fs != nil {
						c.Logs.CapacityBytes, c.Logs.AvailableBytes, c.Logs.Inodes, c.Logs.InodesFree = fs.CapacityBytes, fs.AvailableBytes, fs.Inodes, fs.InodesFree
					}
					diskSum, inodeSum, hasDisk = diskSum+used, inodeSum+files, true
				}
			}
			ps.Containers = append(ps.Containers, c)
		}
		if hasCPU {
			ps.CPU = &cpuStats{Time: metav1.NewTime(cpuTime), UsageCoreNanoSeconds: u64(cpuSum)}
		}
		if hasMem {
			ps.Memory = &memoryStats{Time: metav1.NewTime(memTime), WorkingSetBytes: u64(memSum)}
		}
		if hasDisk {
			ps.EphemeralStorage = &fsStats{Time: metav1.NewTime(now), UsedBytes: u64(diskSum), InodesUsed: u64(inodeSum)}
			if fs := fsCache.stats(s.cfg.PodLogsDir, now); fs != nil {
				ps.EphemeralStorage.CapacityBytes, ps.EphemeralStorage.AvailableBytes = fs.CapacityBytes, fs.AvailableBytes
				ps.EphemeralStorage.Inodes, ps.EphemeralStorage.InodesFree = fs.Inodes, fs.InodesFree
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

// statfsResult is a filesystem's capacity as statfs(2) gives it; free counts the blocks reserved
// for root too (capacity - free is what is used), available does not.
type statfsResult struct {
	fsStats
	free uint64
}

// statfsCache holds the filesystems looked at during one request.
type statfsCache map[string]*statfsResult

func (c statfsCache) stats(path string, now time.Time) *statfsResult {
	if path == "" {
		return nil
	}
	if r, ok := c[path]; ok {
		return r
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		c[path] = nil
		return nil
	}
	bs := uint64(st.Bsize)
	r := &statfsResult{fsStats: fsStats{
		Time:           metav1.NewTime(now),
		CapacityBytes:  u64(st.Blocks * bs),
		AvailableBytes: u64(st.Bavail * bs),
		Inodes:         u64(st.Files),
		InodesFree:     u64(st.Ffree),
	}, free: st.Bfree * bs}
	c[path] = r
	return r
}

// dirUsage is the bytes on disk (allocated blocks, as du counts) and the number of inodes of a
// directory tree.
func dirUsage(dir string) (bytes, inodes uint64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (a rotation)
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		inodes++
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			bytes += uint64(st.Blocks) * 512
		}
		return nil
	})
	return bytes, inodes, err
}
