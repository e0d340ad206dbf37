package cgroups

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// qosResources are the resources that decide a pod's QoS class.
var qosResources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}

// QOSClass classifies a pod as the kubelet does, over its init and app containers:
//   - BestEffort: no container requests or limits any cpu or memory;
//   - Guaranteed: every container sets cpu and memory limits, and every request that is set equals
//     its limit (an unset request defaults to the limit);
//   - Burstable: anything else.
func QOSClass(pod *v1.Pod) v1.PodQOSClass {
	containers := make([]v1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	containers = append(containers, pod.Spec.InitContainers...)
	containers = append(containers, pod.Spec.Containers...)

	anySet := false
	guaranteed := true
	for _, c := range containers {
		for _, name := range qosResources {
			req, hasReq := nonZero(c.Resources.Requests, name)
			lim, hasLim := nonZero(c.Resources.Limits, name)
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
