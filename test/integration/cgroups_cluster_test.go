//go:build integration

package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/cgroups"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestCgroupsClusterAllocatableAndOOM: in cluster mode, the Node's reported allocatable and the
// kubepods limits come from the same capacity and reservations (kubepods memory = allocatable +
// the memory.available hard eviction threshold, as with the kubelet); an API pod lands in its QoS
// class's cgroup with status.qosClass set; a container killed by the OOM killer reports
// lastState.terminated reason OOMKilled, exit code 137, and is restarted.
func TestCgroupsClusterAllocatableAndOOM(t *testing.T) {
	c := newCluster(t)
	c.appendConfigLines("kubeReserved:\n  cpu: 250m\n  memory: 512Mi\nsystemReserved:\n  memory: 256Mi\n")
	c.start()
	n := c.waitNodeReady(10 * time.Second)
	allocCPU, allocMem := n.Status.Allocatable[v1.ResourceCPU], n.Status.Allocatable[v1.ResourceMemory]
	capCPU, capMem := n.Status.Capacity[v1.ResourceCPU], n.Status.Capacity[v1.ResourceMemory]
	if got, want := capMem.Value()-allocMem.Value(), int64(768<<20+100<<20); got != want {
		t.Errorf("memory capacity - allocatable = %d, want kubeReserved + systemReserved + 100Mi eviction = %d", got, want)
	}
	if got, want := capCPU.MilliValue()-allocCPU.MilliValue(), int64(250); got != want {
		t.Errorf("cpu capacity - allocatable = %dm, want %dm", got, want)
	}
	kubepodsMem := allocMem.Value() + 100<<20
	if got, want := c.mustCgFile("memory", "kubepods", "memory.limit_in_bytes"), fmt.Sprint(kubepodsMem/4096*4096); got != want {
		t.Errorf("kubepods memory.limit_in_bytes = %s, want allocatable + 100Mi = %s", got, want)
	}
	if got, want := c.mustCgFile("cpu", "kubepods", "cpu.shares"), fmt.Sprint(cgroups.MilliCPUToShares(allocCPU.MilliValue())); got != want {
		t.Errorf("kubepods cpu.shares = %s, want the shares of allocatable cpu = %s", got, want)
	}

	hog := apiPod("oom-hog", "Always", "sh", "-c", "sleep 1; head -c 1000m /dev/zero | tail")
	hog.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("16Mi")},
		Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")},
	}
	c.create(hog)
	p := c.waitPod("oom-hog", "OOMKilled in lastState", 60*time.Second, func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 1 && cs[0].LastTerminationState.Terminated != nil
	})
	term := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("lastState.terminated: reason %q exit code %d, want OOMKilled 137", term.Reason, term.ExitCode)
	}
	if p.Status.QOSClass != v1.PodQOSBurstable {
		t.Errorf("status.qosClass = %s, want Burstable", p.Status.QOSClass)
	}
	if _, err := c.cgFile("memory", "kubepods/burstable/pod"+string(p.UID), "memory.limit_in_bytes"); err != nil {
		t.Errorf("no burstable pod cgroup for the API pod: %v", err)
	}
}
