package cgroups

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// qosResources are the resources that decide a pod's QoS class.
var qosResources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}

// QOSClass classifies a pod as the kubelet does, over its init and app containers (or over the
// pod-level resources, when the pod sets them):
//   - BestEffort: no container requests or limits any cpu or memory;
//   - Guaranteed: every container sets cpu and memory limits, and every request that is set equals
//     its limit (an unset request defaults to the limit);
//   - Burstable: anything else.
func QOSClass(pod *v1.Pod) v1.PodQOSClass {
	var reqs []v1.ResourceRequirements
	if r := pod.Spec.Resources; r != nil && (hasAny(r.Requests) || hasAny(r.Limits)) {
		reqs = []v1.ResourceRequirements{*r}
	} else {
		for _, c := range pod.Spec.InitContainers {
			reqs = append(reqs, c.Resources)
		}
		for _, c := range pod.Spec.Containers {
			reqs = append(reqs, c.Resources)
		}
	}
	anySet := false
	guaranteed := true
	for _, r := range reqs {
		for _, name := range qosResources {
			req, hasReq := nonZero(r.Requests, name)
			lim, hasLim := nonZero(r.Limits, name)
			if hasReq || hasLim {
				anySet = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !anySet:
		return v1.PodQOSBestEffort
	case guaranteed:
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}

func nonZero(list v1.ResourceList, name v1.ResourceName) (resource.Quantity, bool) {
	q, ok := list[name]
	if !ok || q.IsZero() {
		return resource.Quantity{}, false
	}
	return q, true
}

func hasAny(list v1.ResourceList) bool {
	for _, name := range qosResources {
		if _, ok := nonZero(list, name); ok {
			return true
		}
	}
	return false
}
