package cri

import (
	"github.com/berth-dev/berth/cgroups"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CPU constants of the kubelet's documented resource policy (cgroups owns them).
const (
	MinShares    = cgroups.MinShares
	MaxShares    = cgroups.MaxShares
	SharesPerCPU = cgroups.SharesPerCPU
	QuotaPeriod  = cgroups.QuotaPeriod
	MinQuota     = cgroups.MinQuota
)

// OOM score adjustments by QoS class.
const (
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
	burstableMinOOMScore  = 2
	burstableMaxOOMScore  = 999
)

// MilliCPUToShares is cgroups.MilliCPUToShares: 1024 shares per CPU, within [2, 262144].
func MilliCPUToShares(milli int64) uint64 { return cgroups.MilliCPUToShares(milli) }

// MilliCPUToQuota is cgroups.MilliCPUToQuota: the CFS quota of a CPU limit, 0 for none.
func MilliCPUToQuota(milli, period int64) int64 { return cgroups.MilliCPUToQuota(milli, period) }

// containerResources is the Linux resources of a container: CPU shares from the request (or the
// limit when there is no request), CFS quota from the limit, the memory limit and the OOM score
// adjustment of its QoS class.
func containerResources(pod *v1.Pod, c *v1.Container, nodeMemoryCapacity int64) *runtimeapi.LinuxContainerResources {
	cpuRequest := c.Resources.Requests.Cpu().MilliValue()
	cpuLimit := c.Resources.Limits.Cpu().MilliValue()
	sharesFrom := cpuRequest
	if sharesFrom == 0 {
		sharesFrom = cpuLimit
	}
	r := &runtimeapi.LinuxContainerResources{
		CpuShares:          int64(MilliCPUToShares(sharesFrom)),
		MemoryLimitInBytes: c.Resources.Limits.Memory().Value(),
		OomScoreAdj:        oomScoreAdj(pod, c, nodeMemoryCapacity),
	}
	if cpuLimit > 0 {
		r.CpuPeriod = QuotaPeriod
		r.CpuQuota = MilliCPUToQuota(cpuLimit, QuotaPeriod)
	}
	return r
}

// oomScoreAdj follows the kubelet's documented policy: node-critical and Guaranteed pods get -997,
// BestEffort pods 1000, and Burstable containers 1000 - 1000*memoryRequest/nodeMemoryCapacity
// clamped to [2, 999], so that a container that requested more of the node is killed later. With
// an unknown capacity (0) a Burstable container gets 999: less likely to be killed than
// BestEffort, more than anything that requested memory on a known node.
func oomScoreAdj(pod *v1.Pod, c *v1.Container, nodeMemoryCapacity int64) int64 {
	if pod.Spec.PriorityClassName == "system-node-critical" {
		return guaranteedOOMScoreAdj
	}
	switch podQOSClass(pod) {
	case v1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case v1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if nodeMemoryCapacity <= 0 {
		return burstableMaxOOMScore
	}
	request := c.Resources.Requests.Memory().Value()
	if request >= nodeMemoryCapacity {
		return burstableMinOOMScore
	}
	adj := besteffortOOMScoreAdj - (1000*request)/nodeMemoryCapacity
	return min(max(adj, burstableMinOOMScore), burstableMaxOOMScore)
}

// podQOSClass is the pod's QoS class: status.qosClass when the API server set it, otherwise the
// class cgroups.QOSClass computes.
func podQOSClass(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return cgroups.QOSClass(pod)
}

func hasCPUOrMemory(l v1.ResourceList) bool {
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		if q, ok := l[name]; ok && !q.IsZero() {
			return true
		}
	}
	return false
}
