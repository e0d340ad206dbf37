package cgroups

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// ResourceConfig is what Berth writes into one cgroup. A nil field is left as it is (the kernel's
// default, unlimited, for a new cgroup).
type ResourceConfig struct {
	CPUShares *uint64 // cgroup v1 cpu.shares; converted with SharesToWeight for v2 cpu.weight
	CPUQuota  *int64  // µs per CPUPeriod (cpu.cfs_quota_us, cpu.max)
	CPUPeriod *uint64 // µs (cpu.cfs_period_us)
	Memory    *int64  // bytes (memory.limit_in_bytes, memory.max)
	PidsLimit *int64  // pids.max
}

func ptr[T any](v T) *T { return &v }

// String shows the set fields: "cpu.shares=2 memory=67108864".
func (r *ResourceConfig) String() string {
	var parts []string
	if r.CPUShares != nil {
		parts = append(parts, fmt.Sprintf("cpu.shares=%d", *r.CPUShares))
	}
	if r.CPUQuota != nil {
		parts = append(parts, fmt.Sprintf("cpu.quota=%d", *r.CPUQuota))
	}
	if r.CPUPeriod != nil {
		parts = append(parts, fmt.Sprintf("cpu.period=%d", *r.CPUPeriod))
	}
	if r.Memory != nil {
		parts = append(parts, fmt.Sprintf("memory=%d", *r.Memory))
	}
	if r.PidsLimit != nil {
		parts = append(parts, fmt.Sprintf("pids=%d", *r.PidsLimit))
	}
	return strings.Join(parts, " ")
}

// PodResourceConfig is the pod cgroup's configuration, as the kubelet computes it:
//   - cpu.shares from the pod's effective CPU request (app containers and sidecars summed, an init
//     container counted while it runs alone: the larger wins), 2 for a pod without one;
//   - CPU quota from the effective CPU limit, and the memory limit from the effective memory
//     limit, each only when every container (init containers included) sets that limit: one
//     unlimited container leaves the pod unlimited;
//   - BestEffort pods get cpu.shares 2 and nothing else;
//   - pids.max from podPidsLimit when it is positive (-1 and 0: unlimited), whatever the class.
//
// Pod overhead is included; pod-level resources (spec.resources), when set, decide.
func PodResourceConfig(pod *v1.Pod, podPidsLimit int64) *ResourceConfig {
	pod = withDefaultedRequests(pod)
	qos := QOSClass(pod)
	rc := &ResourceConfig{}
	if podPidsLimit > 0 {
		rc.PidsLimit = ptr(podPidsLimit)
	}
	if qos == v1.PodQOSBestEffort {
		rc.CPUShares = ptr(uint64(MinShares))
		return rc
	}
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	rc.CPUShares = ptr(MilliCPUToShares(reqs.Cpu().MilliValue()))
	cpuDeclared, memDeclared := limitsDeclared(pod)
	if cpuDeclared || qos == v1.PodQOSGuaranteed {
		rc.CPUPeriod = ptr(uint64(QuotaPeriod))
		rc.CPUQuota = ptr(MilliCPUToQuota(limits.Cpu().MilliValue(), QuotaPeriod))
	}
	if memDeclared || qos == v1.PodQOSGuaranteed {
		rc.Memory = ptr(limits.Memory().Value())
	}
	return rc
}

// limitsDeclared says whether every container, init containers included, has a CPU (a memory)
// limit — or the pod-level resources set one.
func limitsDeclared(pod *v1.Pod) (cpu, memory bool) {
	if r := pod.Spec.Resources; r != nil {
		_, c := nonZero(r.Limits, v1.ResourceCPU)
		_, m := nonZero(r.Limits, v1.ResourceMemory)
		if c || m {
			return c, m
		}
	}
	cpu, memory = true, true
	all := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		if _, ok := nonZero(c.Resources.Limits, v1.ResourceCPU); !ok {
			cpu = false
		}
		if _, ok := nonZero(c.Resources.Limits, v1.ResourceMemory); !ok {
			memory = false
		}
	}
	return cpu, memory
}

// withDefaultedRequests returns pod with the API server's defaulting of container requests
// applied (a limit without a request requests the limit). Static pods are defaulted this way by
// the manifest reader too; doing it here keeps the computation right for any caller.
func withDefaultedRequests(pod *v1.Pod) *v1.Pod {
	needs := false
	each := func(fn func(c *v1.Container)) {
		for i := range pod.Spec.InitContainers {
			fn(&pod.Spec.InitContainers[i])
		}
		for i := range pod.Spec.Containers {
			fn(&pod.Spec.Containers[i])
		}
	}
	each(func(c *v1.Container) {
		for name := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				needs = true
			}
		}
	})
	if !needs {
		return pod
	}
	pod = pod.DeepCopy()
	each(func(c *v1.Container) {
		for name, q := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = v1.ResourceList{}
				}
				c.Resources.Requests[name] = q.DeepCopy()
			}
		}
	})
	return pod
}

// PodCPURequest is the pod's effective CPU request in millicores (what the burstable class's
// cpu.shares add up).
func PodCPURequest(pod *v1.Pod) int64 {
	pod = withDefaultedRequests(pod)
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	return reqs.Cpu().MilliValue()
}

// NodeResourceConfig is the kubepods cgroup's configuration for an amount of node resources
// (allocatable when enforceNodeAllocatable has "pods", capacity otherwise): cpu.shares from its
// CPU, its memory as the memory limit and its "pid" as pids.max. No CPU quota: pods may use idle
// CPU beyond allocatable.
func NodeResourceConfig(r v1.ResourceList) *ResourceConfig {
	rc := &ResourceConfig{}
	if q, ok := r[v1.ResourceCPU]; ok {
		rc.CPUShares = ptr(MilliCPUToShares(q.MilliValue()))
	}
	if q, ok := r[v1.ResourceMemory]; ok {
		rc.Memory = ptr(q.Value())
	}
	if q, ok := r["pid"]; ok && q.Value() > 0 {
		rc.PidsLimit = ptr(q.Value())
	}
	return rc
}
