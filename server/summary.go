package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/berth-dev/berth/cri"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// /stats/summary: the kubelet's Summary API (stats/v1alpha1) in its JSON shape, with what Berth can
// measure: the node's CPU and memory, and each pod's containers' CPU and memory from the runtime.
// Filesystems, networks, volumes and the pod cgroups' own figures are not there yet.

type summary struct {
	Node nodeStats  `json:"node"`
	Pods []podStats `json:"pods"`
}

type nodeStats struct {
	NodeName  string       `json:"nodeName"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
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
}

type containerStats struct {
	Name      string       `json:"name"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *cpuStats    `json:"cpu,omitempty"`
	Memory    *memoryStats `json:"memory,omitempty"`
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
	pods, err := s.podSummaries(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out.Pods = pods
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&out)
}

// podSummaries gathers the running containers' stats per pod of the node.
func (s *Server) podSummaries(ctx context.Context) ([]podStats, error) {
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
		var cpuSum, memSum uint64
		var cpuTime, memTime time.Time
		var hasCPU, hasMem bool
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
			ps.Containers = append(ps.Containers, c)
		}
		if hasCPU {
			ps.CPU = &cpuStats{Time: metav1.NewTime(cpuTime), UsageCoreNanoSeconds: u64(cpuSum)}
		}
		if hasMem {
			ps.Memory = &memoryStats{Time: metav1.NewTime(memTime), WorkingSetBytes: u64(memSum)}
		}
		out = append(out, ps)
	}
	return out, nil
}
