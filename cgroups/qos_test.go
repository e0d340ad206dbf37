package cgroups

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func res(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func ctr(req, lim v1.ResourceList) v1.Container {
	return v1.Container{Name: "c", Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}
}

func TestQOSClass(t *testing.T) {
	tests := []struct {
		name string
		init []v1.Container
		apps []v1.Container
		want v1.PodQOSClass
		pod  *v1.ResourceRequirements
	}{
		{"nothing set", nil, []v1.Container{ctr(nil, nil)}, v1.PodQOSBestEffort, nil},
		{"zero quantities count as unset", nil, []v1.Container{ctr(res("cpu", "0"), nil)}, v1.PodQOSBestEffort, nil},
		{"limits only (requests default to limits)", nil, []v1.Container{ctr(nil, res("cpu", "1", "memory", "1Gi"))}, v1.PodQOSGuaranteed, nil},
		{"requests equal limits", nil, []v1.Container{ctr(res("cpu", "500m", "memory", "64Mi"), res("cpu", "0.5", "memory", "64Mi"))}, v1.PodQOSGuaranteed, nil},
		{"request below limit", nil, []v1.Container{ctr(res("cpu", "100m", "memory", "64Mi"), res("cpu", "1", "memory", "64Mi"))}, v1.PodQOSBurstable, nil},
		{"memory limit only", nil, []v1.Container{ctr(nil, res("memory", "64Mi"))}, v1.PodQOSBurstable, nil},
		{"cpu request only", nil, []v1.Container{ctr(res("cpu", "100m"), nil)}, v1.PodQOSBurstable, nil},
		{"one guaranteed, one best effort", nil, []v1.Container{ctr(nil, res("cpu", "1", "memory", "1Gi")), ctr(nil, nil)}, v1.PodQOSBurstable, nil},
		{"init container without limits spoils guaranteed", []v1.Container{ctr(nil, nil)}, []v1.Container{ctr(nil, res("cpu", "1", "memory", "1Gi"))}, v1.PodQOSBurstable, nil},
		{"init container with requests makes burstable", []v1.Container{ctr(res("memory", "1Mi"), nil)}, []v1.Container{ctr(nil, nil)}, v1.PodQOSBurstable, nil},
		{"other resources do not count", nil, []v1.Container{ctr(res("ephemeral-storage", "1Gi"), nil)}, v1.PodQOSBestEffort, nil},
		{"pod-level limits decide", nil, []v1.Container{ctr(nil, nil)}, v1.PodQOSGuaranteed, &v1.ResourceRequirements{Limits: res("cpu", "1", "memory", "1Gi")}},
		{"pod-level requests only", nil, []v1.Container{ctr(nil, res("cpu", "1", "memory", "1Gi"))}, v1.PodQOSBurstable, &v1.ResourceRequirements{Requests: res("cpu", "1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{InitContainers: tt.init, Containers: tt.apps, Resources: tt.pod}}
			if got := QOSClass(pod); got != tt.want {
				t.Errorf("QOSClass = %s, want %s", got, tt.want)
			}
		})
	}
}
