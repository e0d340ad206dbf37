package eviction

import (
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// PodUsage is what a pod uses now, summed over its containers; a field the runtime did not
// report is nil.
type PodUsage struct {
	// MemoryWorkingSet is the working set in bytes (CRI ContainerStats memory.workingSetBytes).
	MemoryWorkingSet *int64
	// EphemeralBytes is the local storage the pod uses: its containers' writable layers and logs.
	EphemeralBytes *int64
	// Inodes is the inodes its writable layers use.
	Inodes *int64
	// Processes is the number of processes (and threads) the pod runs.
	Processes *int64
	// Containers are the app containers' own usage, by name, for the eviction message.
	Containers map[string]ContainerUsage
}

// ContainerUsage is one container's usage.
type ContainerUsage struct {
	MemoryWorkingSet *int64
	EphemeralBytes   *int64
}

// RankedPod is a pod with its usage, for ranking.
type RankedPod struct {
	Pod   *v1.Pod
	Usage PodUsage
	// Found is false when the runtime reported nothing for the pod: it ranks after those measured
	// (nothing is known to be reclaimable from it).
	Found bool
}

// Rank orders pods for eviction under pressure on signal, first to evict first, as the kubelet
// does:
//   - memory: pods whose working set exceeds their memory request first, then by priority (lowest
//     first), then by how far usage exceeds the request (most first);
//   - disk (nodefs, imagefs): the same with ephemeral-storage (bytes) or inodes;
//   - pid.available: by priority, then by the number of processes (most first).
//
// Within equal keys the order is stable (the order given).
func Rank(signal Signal, pods []RankedPod) {
	var usage func(RankedPod) *int64
	var request v1.ResourceName
	switch signal.Resource() {
	case v1.ResourceMemory:
		usage, request = func(p RankedPod) *int64 { return p.Usage.MemoryWorkingSet }, v1.ResourceMemory
	case v1.ResourceEphemeralStorage:
		usage, request = func(p RankedPod) *int64 { return p.Usage.EphemeralBytes }, v1.ResourceEphemeralStorage
	case "inodes":
		usage = func(p RankedPod) *int64 { return p.Usage.Inodes } // inodes have no request
	case "pids":
		sort.SliceStable(pods, func(i, j int) bool {
			a, b := pods[i], pods[j]
			if c := cmpFound(a, b); c != 0 {
				return c < 0
			}
			if pa, pb := priority(a.Pod), priority(b.Pod); pa != pb {
				return pa < pb
			}
			return value(a.Usage.Processes) > value(b.Usage.Processes)
		})
		return
	}
	above := func(p RankedPod) int64 { // usage above the request; negative when under it
		u := value(usage(p))
		if request == "" {
			return u
		}
		return u - requestOf(p.Pod, request)
	}
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if c := cmpFound(a, b); c != 0 {
			return c < 0
		}
		ea, eb := above(a) > 0, above(b) > 0
		if ea != eb {
			return ea
		}
		if pa, pb := priority(a.Pod), priority(b.Pod); pa != pb {
			return pa < pb
		}
		return above(a) > above(b)
	})
}

// cmpFound puts measured pods before unmeasured ones.
func cmpFound(a, b RankedPod) int {
	switch {
	case a.Found == b.Found:
		return 0
	case a.Found:
		return -1
	}
	return 1
}

func value(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func priority(p *v1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// requestOf is the pod's effective request (init containers, sidecars, pod-level resources and
// overhead counted as the scheduler counts them), in bytes.
func requestOf(p *v1.Pod, name v1.ResourceName) int64 {
	reqs := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	q, ok := reqs[name]
	if !ok {
		return 0
	}
	return q.Value()
}

// Request is the pod's effective request of a resource, for messages.
func Request(p *v1.Pod, name v1.ResourceName) resource.Quantity {
	return *resource.NewQuantity(requestOf(p, name), resource.BinarySI)
}
