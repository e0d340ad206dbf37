//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// setEvictionConfig puts lines in the eviction part of the config file (before the node server's).
func (c *env) setEvictionConfig(lines string) {
	c.t.Helper()
	s := string(mustRead(c.t, c.config))
	server := ""
	if i := strings.Index(s, "# node server\n"); i >= 0 {
		s, server = s[:i], s[i:]
	}
	if i := strings.Index(s, "# eviction\n"); i >= 0 {
		s = s[:i]
	}
	if err := os.WriteFile(c.config, []byte(s+"# eviction\n"+lines+server), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// memoryAvailable is memory.available as the kubelet (and Berth) computes it: MemTotal minus the
// working set of the root memory cgroup (usage minus inactive file pages).
func memoryAvailable(t *testing.T) int64 {
	t.Helper()
	var total int64
	for _, l := range strings.Split(string(mustRead(t, "/proc/meminfo")), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			total, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	usage, err := strconv.ParseInt(strings.TrimSpace(string(mustRead(t, "/sys/fs/cgroup/memory/memory.usage_in_bytes"))), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var inactive int64
	for _, l := range strings.Split(string(mustRead(t, "/sys/fs/cgroup/memory/memory.stat")), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "total_inactive_file" {
			inactive, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if total == 0 || usage == 0 {
		t.Fatal("cannot read MemTotal or the root memory cgroup's usage")
	}
	return total*1024 - (usage - inactive)
}

// workingSet is the runtime's working set of a pod's containers.
func (e *env) workingSet(uid string) int64 {
	stats, err := e.rt.ListContainerStats(context.Background(), &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	for _, s := range stats {
		if m := s.GetMemory(); m != nil && m.WorkingSetBytes != nil {
			n += int64(m.WorkingSetBytes.Value)
		}
	}
	return n
}

func nodeConditionOf(n *v1.Node, t v1.NodeConditionType) *v1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func podCondition(p *v1.Pod, t v1.PodConditionType) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// TestClusterEviction: memory.available is set to what is available now minus margin; then a
// Guaranteed, a Burstable and a BestEffort pod start, the BestEffort one taking hogSize (twice the
// margin) of memory. That crosses the threshold: the BestEffort pod is evicted (Failed, reason
// Evicted, the kubelet's message), which relieves the pressure, so the others keep running. The
// node reports MemoryPressure meanwhile, a new BestEffort pod is refused (a Burstable one is not),
// and the condition clears once the transition period has passed since the threshold was last met.
func TestClusterEviction(t *testing.T) {
	const (
		hogSize    = 3 << 30 // what the BestEffort pod holds
		margin     = 3 << 29 // 1.5Gi: the threshold sits this far below what is available without the hog
		transition = 30 * time.Second
	)
	c := newCluster(t)
	available := memoryAvailable(t)
	threshold := (available - margin) / 1024
	t.Logf("memory.available %d Mi; threshold %d Mi", available>>20, threshold>>10)
	c.setEvictionConfig(fmt.Sprintf("evictionHard:\n  memory.available: %dKi\nevictionPressureTransitionPeriod: %s\n", threshold, transition))
	c.start()
	c.waitNodeReady(15 * time.Second)
	if n, err := c.admin.CoreV1().Nodes().Get(context.Background(), clusterNode, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if cond := nodeConditionOf(n, v1.NodeMemoryPressure); cond == nil || cond.Status != v1.ConditionFalse {
		t.Fatalf("MemoryPressure before the hog: %+v", cond)
	}

	sleeper := func(name string, req, lim v1.ResourceList) *v1.Pod {
		p := apiPod(name, "Always", "sleep", "3600")
		p.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: req, Limits: lim}
		return p
	}
	guaranteed := sleeper("guaranteed", v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m"), v1.ResourceMemory: resource.MustParse("32Mi")},
		v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m"), v1.ResourceMemory: resource.MustParse("32Mi")})
	burstable := sleeper("burstable", v1.ResourceList{v1.ResourceMemory: resource.MustParse("16Mi")}, nil)
	// dd reads /dev/zero into one hogSize buffer, then blocks writing to a pipe nobody reads:
	// the buffer stays resident.
	hog := apiPod("besteffort", "Always", "sh", "-c", fmt.Sprintf("dd if=/dev/zero bs=%d count=1 | sleep 3600", hogSize))
	hog.Spec.Containers[0].Name = "hog"
	for _, p := range []*v1.Pod{guaranteed, burstable} {
		c.create(p)
	}
	for _, name := range []string{"guaranteed", "burstable"} {
		c.waitPod(name, "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	}
	hogUID := string(c.create(hog).UID)

	// Pressure: the node condition turns True with the kubelet's reason.
	waitFor(t, "MemoryPressure True", 120*time.Second, func() bool {
		n, err := c.admin.CoreV1().Nodes().Get(context.Background(), clusterNode, metav1.GetOptions{})
		if err != nil {
			return false
		}
		cond := nodeConditionOf(n, v1.NodeMemoryPressure)
		return cond != nil && cond.Status == v1.ConditionTrue && cond.Reason == "KubeletHasInsufficientMemory" &&
			cond.Message == "kubelet has insufficient memory available"
	})
	evicted := c.waitPod("besteffort", "evicted", 60*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	evictedAt := time.Now()
	st := evicted.Status
	wantMsg := "The node was low on resource: memory. Threshold quantity: "
	if st.Reason != "Evicted" || !strings.HasPrefix(st.Message, wantMsg) || !strings.Contains(st.Message, "Container hog was using ") ||
		!strings.Contains(st.Message, "request is 0, has larger consumption of memory.") {
		t.Errorf("evicted pod: reason %q message %q, want Evicted and %q... with the hog's usage", st.Reason, st.Message, wantMsg)
	}
	// The message's numbers: the configured threshold, and what was available below it.
	var thr, avail string
	if _, err := fmt.Sscanf(strings.TrimPrefix(st.Message, "The node was low on resource: memory. "), "Threshold quantity: %s available: %s", &thr, &avail); err != nil {
		t.Errorf("message %q: %v", st.Message, err)
	} else {
		q, err1 := resource.ParseQuantity(strings.TrimSuffix(thr, ","))
		a, err2 := resource.ParseQuantity(strings.TrimSuffix(avail, "."))
		if err1 != nil || err2 != nil || q.Value() != threshold*1024 || a.Cmp(q) >= 0 {
			t.Errorf("message %q: threshold %q (want %dKi), available %q (want below it)", st.Message, thr, threshold, avail)
		}
	}
	if dt := podCondition(evicted, v1.DisruptionTarget); dt == nil || dt.Status != v1.ConditionTrue || dt.Reason != "TerminationByKubelet" {
		t.Errorf("evicted pod: DisruptionTarget condition %+v, want True/TerminationByKubelet", dt)
	}

	// Still under MemoryPressure (the transition period): a new BestEffort pod is refused, a
	// Burstable one is not.
	c.create(apiPod("late-besteffort", "Always", "sleep", "3600"))
	c.create(sleeper("late-burstable", v1.ResourceList{v1.ResourceMemory: resource.MustParse("16Mi")}, nil))
	refused := c.waitPod("late-besteffort", "refused", 15*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if refused.Status.Reason != "Evicted" || refused.Status.Message != "The node had condition: [MemoryPressure]. " {
		t.Errorf("late BestEffort pod: reason %q message %q, want Evicted / %q", refused.Status.Reason, refused.Status.Message, "The node had condition: [MemoryPressure]. ")
	}
	c.waitPod("late-burstable", "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	// The eviction relieved the pressure: the condition clears after the transition period, and
	// only then.
	var clearedAt time.Time
	waitFor(t, "MemoryPressure False", transition+40*time.Second, func() bool {
		n, err := c.admin.CoreV1().Nodes().Get(context.Background(), clusterNode, metav1.GetOptions{})
		if err != nil {
			return false
		}
		cond := nodeConditionOf(n, v1.NodeMemoryPressure)
		if cond != nil && cond.Status == v1.ConditionFalse && cond.Reason == "KubeletHasSufficientMemory" {
			clearedAt = time.Now()
			return true
		}
		return false
	})
	if d := clearedAt.Sub(evictedAt); d < transition-12*time.Second {
		t.Errorf("MemoryPressure cleared %s after the eviction, before the %s transition period", d.Round(time.Second), transition)
	}
	for _, name := range []string{"guaranteed", "burstable", "late-burstable"} {
		p := c.get(name)
		if p == nil || p.Status.Phase != v1.PodRunning || p.Status.ContainerStatuses[0].RestartCount != 0 || p.Status.Reason != "" {
			t.Errorf("%s was disturbed by the eviction: %+v", name, p.Status)
		}
	}
	if got := c.containers(hogUID); len(got) > 0 {
		for _, ct := range got {
			if ct.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("the evicted pod's container %s still runs", ct.Metadata.Name)
			}
		}
	}

	// Events: Evicted on the pod, the pressure transitions on the node.
	waitFor(t, "the Evicted event", 10*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.uid=" + hogUID})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Reason == "Evicted" && ev.Type == v1.EventTypeWarning && strings.HasPrefix(ev.Message, wantMsg) {
				return true
			}
		}
		return false
	})
	nodeEvents := map[string]bool{"NodeHasInsufficientMemory": false, "NodeHasSufficientMemory": false, "EvictionThresholdMet": false}
	waitFor(t, "the node's pressure events", 10*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + clusterNode})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if _, ok := nodeEvents[ev.Reason]; ok {
				nodeEvents[ev.Reason] = true
			}
		}
		for _, seen := range nodeEvents {
			if !seen {
				return false
			}
		}
		return true
	})
}

// TestStaticPodsNeverEvicted: standalone, with memory.available at 100% (always met): Berth sees the
// pressure, finds only a static pod — critical, as for the kubelet — and evicts nothing.
func TestStaticPodsNeverEvicted(t *testing.T) {
	e := newEnv(t)
	e.setEvictionConfig("evictionHard:\n  memory.available: 100%\n")
	e.writeManifest("steady.yaml", shPod("steady", "Always", "sleep 3600"))
	e.start()
	e.waitPods("steady running", 30*time.Second, podRunning("steady"))
	// A monitoring period that starts after the pod runs: it must skip it.
	seen := len(mustRead(t, e.logPath))
	waitFor(t, "the eviction manager to find no pod it may evict", 30*time.Second, func() bool {
		return strings.Contains(string(mustRead(t, e.logPath)[seen:]), "eviction threshold met but no pod can be evicted")
	})
	p := findPod(e.pods(), "steady")
	if p.Phase != "Running" || p.Restarts != 0 {
		t.Errorf("static pod under memory pressure: %+v", p)
	}
	if strings.Contains(string(mustRead(t, e.logPath)), "evicting pod") {
		t.Error("Berth tried to evict a static pod")
	}
}

// TestClusterDiskPressure: nodefs.available at 100% (always met): DiskPressure with the kubelet's
// reason, an EvictionThresholdMet event for ephemeral-storage; every new API pod is refused, a
// Burstable one too (disk pressure is not memory pressure), while a static pod still runs.
func TestClusterDiskPressure(t *testing.T) {
	c := newCluster(t)
	// imageMinimumGCAge: the reclaim before any eviction must not remove the test images.
	c.setEvictionConfig("evictionHard:\n  nodefs.available: 100%\nimageMinimumGCAge: 1h\n")
	c.writeManifest("static.yaml", shPod("static", "Always", "sleep 3600"))
	c.start()
	waitFor(t, "DiskPressure True", 30*time.Second, func() bool {
		n, err := c.admin.CoreV1().Nodes().Get(context.Background(), clusterNode, metav1.GetOptions{})
		if err != nil {
			return false
		}
		d, m := nodeConditionOf(n, v1.NodeDiskPressure), nodeConditionOf(n, v1.NodeMemoryPressure)
		return d != nil && d.Status == v1.ConditionTrue && d.Reason == "KubeletHasDiskPressure" && d.Message == "kubelet has disk pressure" &&
			m != nil && m.Status == v1.ConditionFalse
	})
	p := apiPod("burstable", "Always", "sleep", "3600")
	p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse("16Mi")}
	c.create(p)
	refused := c.waitPod("burstable", "refused", 20*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if refused.Status.Reason != "Evicted" || refused.Status.Message != "The node had condition: [DiskPressure]. " {
		t.Errorf("pod under disk pressure: reason %q message %q", refused.Status.Reason, refused.Status.Message)
	}
	c.waitPods("the static pod running", 30*time.Second, podRunning("static"))
	seen := len(mustRead(t, c.logPath))
	waitFor(t, "a monitoring period after the static pod runs", 30*time.Second, func() bool {
		return strings.Contains(string(mustRead(t, c.logPath)[seen:]), "eviction threshold met but no pod can be evicted")
	})
	if s := findPod(c.pods(), "static"); s.Phase != "Running" || s.Restarts != 0 || strings.Contains(string(mustRead(t, c.logPath)), "evicting pod") {
		t.Errorf("static pod under disk pressure: %+v", s)
	}
	waitFor(t, "EvictionThresholdMet for ephemeral-storage", 30*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + clusterNode})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Reason == "EvictionThresholdMet" && ev.Message == "Attempting to reclaim ephemeral-storage" {
				return true
			}
		}
		return false
	})
}

// importImage builds a one-file image with test/env/mkimage and imports it into the test's
// containerd with ctr.
func (e *env) importImage(name string) {
	e.t.Helper()
	dir := e.t.TempDir()
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, []byte("image "+name+" made at "+time.Now().String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
	tarball := filepath.Join(dir, "image.tar")
	if out, err := exec.Command("go", "run", "../env/mkimage", "-name", name, "-file", file+"=/data", "-o", tarball).CombinedOutput(); err != nil {
		e.t.Fatalf("mkimage: %v\n%s", err, out)
	}
	sock := strings.TrimPrefix(e.endpoint, "unix://")
	if out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "import", tarball).CombinedOutput(); err != nil {
		e.t.Fatalf("ctr import: %v\n%s", err, out)
	}
}

func (e *env) imagePresent(ref string) bool {
	e.t.Helper()
	img, err := e.rt.ImageStatus(context.Background(), ref)
	if err != nil {
		e.t.Fatal(err)
	}
	return img != nil
}

// TestClusterDiskPressureReclaimsImages: under disk pressure, unused images go before any pod —
// against containerd: an image no container uses is removed once older than imageMinimumGCAge,
// while the image a running static pod uses and the runtime's sandbox image stay.
func TestClusterDiskPressureReclaimsImages(t *testing.T) {
	const victim = "localhost/berth-gc-victim:1"
	c := newCluster(t)
	c.importImage(victim)
	t.Cleanup(func() { _ = c.rt.RemoveImage(context.Background(), victim) })
	// The static pod runs before the pressure starts, so its image is in use from the first look.
	c.writeManifest("static.yaml", shPod("static", "Always", "sleep 3600"))
	c.start()
	c.waitPods("the static pod running", 30*time.Second, podRunning("static"))
	c.stop()
	c.setEvictionConfig("evictionHard:\n  nodefs.available: 100%\nimageMinimumGCAge: 5s\n")
	c.start()
	if !c.imagePresent(victim) {
		t.Fatal("the unused image is gone before it was old enough")
	}
	waitFor(t, "the unused image removed", 40*time.Second, func() bool { return !c.imagePresent(victim) })
	for _, ref := range []string{"localhost/busybox:latest", "localhost/pause:3.9"} {
		if !c.imagePresent(ref) {
			t.Errorf("%s was removed: it is in use (the static pod, the sandbox image)", ref)
		}
	}
	if s := findPod(c.pods(), "static"); s == nil || s.Phase != "Running" || s.Restarts != 0 {
		t.Errorf("static pod: %+v", s)
	}
}

// TestClusterPIDPressure: pid.available at 100% (always met, measured from pid_max and the kernel's
// task count): PIDPressure with the kubelet's reason, and a new Burstable pod refused.
func TestClusterPIDPressure(t *testing.T) {
	c := newCluster(t)
	c.setEvictionConfig("evictionHard:\n  pid.available: 100%\n")
	c.start()
	waitFor(t, "PIDPressure True", 30*time.Second, func() bool {
		n, err := c.admin.CoreV1().Nodes().Get(context.Background(), clusterNode, metav1.GetOptions{})
		if err != nil {
			return false
		}
		p, d := nodeConditionOf(n, v1.NodePIDPressure), nodeConditionOf(n, v1.NodeDiskPressure)
		return p != nil && p.Status == v1.ConditionTrue && p.Reason == "KubeletHasInsufficientPID" && p.Message == "kubelet has insufficient PID available" &&
			d != nil && d.Status == v1.ConditionFalse
	})
	p := apiPod("burstable", "Always", "sleep", "3600")
	p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse("16Mi")}
	c.create(p)
	refused := c.waitPod("burstable", "refused", 20*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if refused.Status.Reason != "Evicted" || refused.Status.Message != "The node had condition: [PIDPressure]. " {
		t.Errorf("pod under PID pressure: reason %q message %q", refused.Status.Reason, refused.Status.Message)
	}
}
