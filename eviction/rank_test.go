package eviction

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// testPod is a pod with one container requesting memory and ephemeral-storage (""= none) and a
// priority.
func testPod(name, memRequest, diskRequest string, prio int32) *v1.Pod {
	req := v1.ResourceList{}
	if memRequest != "" {
		req[v1.ResourceMemory] = resource.MustParse(memRequest)
	}
	if diskRequest != "" {
		req[v1.ResourceEphemeralStorage] = resource.MustParse(diskRequest)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{
			Priority:   &prio,
			Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: req}}},
		},
	}
}

func mi(n int64) *int64  { v := n << 20; return &v }
func n64(n int64) *int64 { return &n }

func names(pods []RankedPod) string {
	var s []string
	for _, p := range pods {
		s = append(s, p.Pod.Name)
	}
	return strings.Join(s, " ")
}

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		name   string
		signal Signal
		pods   []RankedPod
		want   string
	}{
		{
			name:   "memory: over request first, then priority, then usage above request",
			signal: SignalMemoryAvailable,
			pods: []RankedPod{
				{Pod: testPod("guaranteed-under", "512Mi", "", 0), Usage: PodUsage{MemoryWorkingSet: mi(100)}, Found: true},
				{Pod: testPod("besteffort-small", "", "", 0), Usage: PodUsage{MemoryWorkingSet: mi(10)}, Found: true},
				{Pod: testPod("burstable-over-big", "100Mi", "", 0), Usage: PodUsage{MemoryWorkingSet: mi(400)}, Found: true},
				{Pod: testPod("besteffort-high-prio", "", "", 1000), Usage: PodUsage{MemoryWorkingSet: mi(900)}, Found: true},
				{Pod: testPod("burstable-under-low-prio", "1Gi", "", -5), Usage: PodUsage{MemoryWorkingSet: mi(10)}, Found: true},
				{Pod: testPod("unmeasured", "", "", -100), Found: false},
			},
			// Over request: burstable-over-big (300Mi above, prio 0), besteffort-small (10Mi above,
			// prio 0), besteffort-high-prio (prio 1000 ranks after prio 0 whatever its usage).
			// Under request: by priority (-5 before 0). Unmeasured last.
			want: "burstable-over-big besteffort-small besteffort-high-prio burstable-under-low-prio guaranteed-under unmeasured",
		},
		{
			name:   "ephemeral storage: same rules with the disk request",
			signal: SignalNodeFsAvailable,
			pods: []RankedPod{
				{Pod: testPod("under", "", "1Gi", 0), Usage: PodUsage{EphemeralBytes: mi(100)}, Found: true},
				{Pod: testPod("over-small", "", "10Mi", 0), Usage: PodUsage{EphemeralBytes: mi(20)}, Found: true},
				{Pod: testPod("over-big", "", "", 0), Usage: PodUsage{EphemeralBytes: mi(500)}, Found: true},
			},
			want: "over-big over-small under",
		},
		{
			name:   "inodes: no request, by priority then inodes",
			signal: SignalNodeFsInodesFree,
			pods: []RankedPod{
				{Pod: testPod("few", "", "", 0), Usage: PodUsage{Inodes: n64(10)}, Found: true},
				{Pod: testPod("many", "", "", 0), Usage: PodUsage{Inodes: n64(5000)}, Found: true},
				{Pod: testPod("many-high-prio", "", "", 10), Usage: PodUsage{Inodes: n64(9000)}, Found: true},
			},
			want: "many few many-high-prio",
		},
		{
			name:   "pids: priority, then processes",
			signal: SignalPIDAvailable,
			pods: []RankedPod{
				{Pod: testPod("few", "", "", 0), Usage: PodUsage{Processes: n64(3)}, Found: true},
				{Pod: testPod("forkbomb-high-prio", "", "", 100), Usage: PodUsage{Processes: n64(3000)}, Found: true},
				{Pod: testPod("many", "", "", 0), Usage: PodUsage{Processes: n64(300)}, Found: true},
			},
			want: "many few forkbomb-high-prio",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Rank(tc.signal, tc.pods)
			if got := names(tc.pods); got != tc.want {
				t.Errorf("ranked %q\nwant   %q", got, tc.want)
			}
		})
	}
}

// The request counts init containers as the scheduler does: the largest init container when it is
// larger than the sum of the app containers.
func TestRankUsesEffectiveRequest(t *testing.T) {
	withInit := testPod("init-request", "10Mi", "", 0)
	withInit.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")}}}}
	pods := []RankedPod{
		{Pod: withInit, Usage: PodUsage{MemoryWorkingSet: mi(500)}, Found: true}, // under its 1Gi effective request
		{Pod: testPod("plain", "10Mi", "", 0), Usage: PodUsage{MemoryWorkingSet: mi(20)}, Found: true},
	}
	Rank(SignalMemoryAvailable, pods)
	if got := names(pods); got != "plain init-request" {
		t.Errorf("ranked %q", got)
	}
}
