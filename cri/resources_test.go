package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestMilliCPUToShares(t *testing.T) {
	tests := []struct {
		milli int64
		want  uint64
	}{
		{0, 2},
		{-5, 2},
		{1, 2},
		{2, 2},
		{3, 3},
		{100, 102},
		{250, 256},
		{1000, 1024},
		{1500, 1536},
		{256000, 262144},
		{1000000, 262144},
	}
	for _, tt := range tests {
		if got := MilliCPUToShares(tt.milli); got != tt.want {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", tt.milli, got, tt.want)
		}
	}
}

func TestMilliCPUToQuota(t *testing.T) {
	tests := []struct {
		milli, period, want int64
	}{
		{0, 100000, 0},
		{1, 100000, 1000},
		{5, 100000, 1000},
		{10, 100000, 1000},
		{11, 100000, 1100},
		{250, 100000, 25000},
		{1000, 100000, 100000},
		{2500, 100000, 250000},
		{500, 50000, 25000},
		{500, 0, 0},
	}
	for _, tt := range tests {
		if got := MilliCPUToQuota(tt.milli, tt.period); got != tt.want {
			t.Errorf("MilliCPUToQuota(%d, %d) = %d, want %d", tt.milli, tt.period, got, tt.want)
		}
	}
}

func rl(pairs ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i+1 < len(pairs); i += 2 {
		l[v1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return l
}

func podWith(containers ...v1.Container) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{Containers: containers}}
}

func TestPodQOSClass(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		want v1.PodQOSClass
	}{
		{"no resources", podWith(v1.Container{Name: "a"}), v1.PodQOSBestEffort},
		{"only other resources", podWith(v1.Container{Name: "a", Resources: v1.ResourceRequirements{Limits: rl("ephemeral-storage", "1Gi")}}), v1.PodQOSBestEffort},
		{"limits equal requests", podWith(v1.Container{Name: "a", Resources: v1.ResourceRequirements{
			Requests: rl("cpu", "1", "memory", "1Gi"), Limits: rl("cpu", "1000m", "memory", "1Gi")}}), v1.PodQOSGuaranteed},
		{"limits only", podWith(v1.Container{Name: "a", Resources: v1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}}), v1.PodQOSGuaranteed},
		{"request below limit", podWith(v1.Container{Name: "a", Resources: v1.ResourceRequirements{
			Requests: rl("cpu", "500m", "memory", "1Gi"), Limits: rl("cpu", "1", "memory", "1Gi")}}), v1.PodQOSBurstable},
		{"memory limit only", podWith(v1.Container{Name: "a", Resources: v1.ResourceRequirements{Limits: rl("memory", "1Gi")}}), v1.PodQOSBurstable},
		{"one container without", podWith(
			v1.Container{Name: "a", Resources: v1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}},
			v1.Container{Name: "b"}), v1.PodQOSBurstable},
		{"status wins", &v1.Pod{Status: v1.PodStatus{QOSClass: v1.PodQOSGuaranteed}}, v1.PodQOSGuaranteed},
		{"pod-level resources", &v1.Pod{Spec: v1.PodSpec{
			Resources:  &v1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")},
			Containers: []v1.Container{{Name: "a"}}}}, v1.PodQOSGuaranteed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podQOSClass(tt.pod); got != tt.want {
				t.Errorf("podQOSClass = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const gi = int64(1 << 30)
	burstable := func(memRequest string) (*v1.Pod, *v1.Container) {
		c := v1.Container{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("memory", memRequest)}}
		p := podWith(c)
		return p, &p.Spec.Containers[0]
	}
	tests := []struct {
		name     string
		memReq   string // "" = best effort, "G" = guaranteed
		capacity int64
		critical bool
		want     int64
	}{
		{name: "best effort", capacity: 8 * gi, want: 1000},
		{name: "guaranteed", memReq: "G", capacity: 8 * gi, want: -997},
		{name: "node critical", critical: true, capacity: 8 * gi, want: -997},
		{name: "burstable 1/8 of node", memReq: "1Gi", capacity: 8 * gi, want: 875},
		{name: "burstable half of node", memReq: "4Gi", capacity: 8 * gi, want: 500},
		{name: "burstable tiny request", memReq: "1Ki", capacity: 8 * gi, want: 999},
		{name: "burstable whole node", memReq: "8Gi", capacity: 8 * gi, want: 2},
		{name: "burstable beyond node", memReq: "16Gi", capacity: 8 * gi, want: 2},
		{name: "burstable 99.9%", memReq: "8180Mi", capacity: 8 * gi, want: 2},
		{name: "burstable unknown capacity", memReq: "1Gi", want: 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p *v1.Pod
			var c *v1.Container
			switch tt.memReq {
			case "":
				p = podWith(v1.Container{Name: "a"})
				c = &p.Spec.Containers[0]
			case "G":
				p = podWith(v1.Container{Name: "a", Resources: v1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}})
				c = &p.Spec.Containers[0]
			default:
				p, c = burstable(tt.memReq)
			}
			if tt.critical {
				p.Spec.PriorityClassName = "system-node-critical"
			}
			if got := oomScoreAdj(p, c, tt.capacity); got != tt.want {
				t.Errorf("oomScoreAdj = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestContainerResources(t *testing.T) {
	tests := []struct {
		name                  string
		res                   v1.ResourceRequirements
		shares, period, quota int64
		memory                int64
	}{
		{name: "nothing set: minimum shares, no quota, no memory limit", shares: 2},
		{name: "cpu request only", res: v1.ResourceRequirements{Requests: rl("cpu", "250m")}, shares: 256},
		{name: "tiny cpu request: minimum shares", res: v1.ResourceRequirements{Requests: rl("cpu", "1m")}, shares: 2},
		{name: "cpu limit only: shares from limit", res: v1.ResourceRequirements{Limits: rl("cpu", "500m")}, shares: 512, period: 100000, quota: 50000},
		{name: "request and limit", res: v1.ResourceRequirements{Requests: rl("cpu", "100m"), Limits: rl("cpu", "2")}, shares: 102, period: 100000, quota: 200000},
		{name: "tiny limit: minimum quota", res: v1.ResourceRequirements{Limits: rl("cpu", "5m")}, shares: 5, period: 100000, quota: 1000},
		{name: "memory limit", res: v1.ResourceRequirements{Limits: rl("memory", "128Mi")}, shares: 2, memory: 128 << 20},
		{name: "memory request only: no limit", res: v1.ResourceRequirements{Requests: rl("memory", "128Mi")}, shares: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := podWith(v1.Container{Name: "a", Resources: tt.res})
			r := containerResources(p, &p.Spec.Containers[0], 8<<30)
			if r.CpuShares != tt.shares || r.CpuPeriod != tt.period || r.CpuQuota != tt.quota || r.MemoryLimitInBytes != tt.memory {
				t.Errorf("got shares=%d period=%d quota=%d memory=%d, want shares=%d period=%d quota=%d memory=%d",
					r.CpuShares, r.CpuPeriod, r.CpuQuota, r.MemoryLimitInBytes, tt.shares, tt.period, tt.quota, tt.memory)
			}
		})
	}
}
