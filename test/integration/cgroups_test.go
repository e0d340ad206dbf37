//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/cgroups"
	"k8s.io/apimachinery/pkg/api/resource"
)

// appendConfigLines adds lines to the test's config file (before start).
func (e *env) appendConfigLines(lines string) {
	e.t.Helper()
	b := mustRead(e.t, e.config)
	if err := os.WriteFile(e.config, append(b, []byte(lines)...), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// cgFile reads one cgroup v1 file of the test's hierarchy: controller, path below cgroupRoot.
func (e *env) cgFile(controller, rel, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, e.cgroupRoot, rel, file))
	return string(bytes.TrimSpace(b)), err
}

func (e *env) mustCgFile(controller, rel, file string) string {
	e.t.Helper()
	v, err := e.cgFile(controller, rel, file)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func cgExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// unlimitedMemory is what memory.limit_in_bytes reads when no limit is set (page-rounded
// LONG_MAX on 4 KiB pages).
const unlimitedMemory = "9223372036854771712"

func resourcesPod(name, containers string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
%s`, name, containers)
}

func sleepContainer(name, resources string) string {
	s := fmt.Sprintf(`  - name: %s
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
`, name)
	if resources != "" {
		s += "    resources:\n" + resources
	}
	return s
}

// TestCgroupsQOSHierarchy: a Guaranteed, a Burstable and a BestEffort pod land in
// <root>/kubepods/pod<uid>, <root>/kubepods/burstable/pod<uid> and <root>/kubepods/besteffort/pod<uid>
// in every v1 controller, with the kubelet's pod-level cpu.shares, CFS quota, memory limit and
// pids limit, their containers below with the container-level values; kubepods has node
// allocatable (capacity - kubeReserved - systemReserved), burstable the sum of its pods' requests,
// besteffort 2; a restarted Berth adopts the pods and their cgroups; pod cgroups are gone after
// deletion and burstable's shares follow.
func TestCgroupsQOSHierarchy(t *testing.T) {
	e := newEnv(t)
	e.appendConfigLines("podPidsLimit: 100\nkubeReserved:\n  memory: 1Gi\n  cpu: 200m\nsystemReserved:\n  cpu: 300m\n  pid: \"1000\"\n")
	e.start()

	// kubepods: node allocatable.
	capacity, err := agent.MachineCapacity(e.rootDir)
	if err != nil {
		t.Fatal(err)
	}
	cpu := capacity.Cpu().MilliValue() - 500
	mem := capacity.Memory().Value() - 1<<30
	pidMax := capacity.Name("pid", resource.DecimalSI).Value() - 1000
	if got, want := e.mustCgFile("cpu", "kubepods", "cpu.shares"), fmt.Sprint(cgroups.MilliCPUToShares(cpu)); got != want {
		t.Errorf("kubepods cpu.shares = %s, want %s (allocatable %dm)", got, want, cpu)
	}
	// The kernel rounds the limit down to whole pages.
	if got, want := e.mustCgFile("memory", "kubepods", "memory.limit_in_bytes"), fmt.Sprint(mem/4096*4096); got != want {
		t.Errorf("kubepods memory.limit_in_bytes = %s, want %s", got, want)
	}
	if got, want := e.mustCgFile("pids", "kubepods", "pids.max"), fmt.Sprint(pidMax); got != want {
		t.Errorf("kubepods pids.max = %s, want %s", got, want)
	}
	if got := e.mustCgFile("cpu", "kubepods/besteffort", "cpu.shares"); got != "2" {
		t.Errorf("besteffort cpu.shares = %s, want 2", got)
	}
	if got := e.mustCgFile("cpu", "kubepods/burstable", "cpu.shares"); got != "2" {
		t.Errorf("burstable cpu.shares with no pods = %s, want 2", got)
	}

	e.writeManifest("guaranteed.yaml", resourcesPod("guaranteed", sleepContainer("main",
		"      limits: {cpu: 250m, memory: 64Mi}\n")))
	// Two containers: one with both limits, one with none, so the pod has no quota and no memory
	// limit, but the first container has both.
	e.writeManifest("burstable.yaml", resourcesPod("burstable",
		sleepContainer("limited", "      requests: {cpu: 100m, memory: 32Mi}\n      limits: {cpu: 300m, memory: 96Mi}\n")+
			sleepContainer("free", "      requests: {cpu: 50m}\n")))
	e.writeManifest("besteffort.yaml", resourcesPod("besteffort", sleepContainer("main", "")))
	l := e.waitPods("all three Running", 30*time.Second, func(l agent.PodList) bool {
		return podRunning("guaranteed")(l) && podRunning("burstable")(l) && podRunning("besteffort")(l)
	})

	type want struct {
		shares, quota, memory, pids string
	}
	check := func(what, rel string, w want) {
		t.Helper()
		for controller, files := range map[string][]string{"cpu": {"cpu.shares", "cpu.cfs_quota_us"}, "memory": {"memory.limit_in_bytes"}, "pids": {"pids.max"}} {
			for _, f := range files {
				got, err := e.cgFile(controller, rel, f)
				if err != nil {
					t.Errorf("%s: %v", what, err)
					continue
				}
				exp := map[string]string{"cpu.shares": w.shares, "cpu.cfs_quota_us": w.quota, "memory.limit_in_bytes": w.memory, "pids.max": w.pids}[f]
				if got != exp {
					t.Errorf("%s: %s/%s = %s, want %s", what, controller, f, got, exp)
				}
			}
		}
	}
	podDir := map[string]string{}
	for _, p := range []struct {
		name, class string
	}{{"guaranteed", ""}, {"burstable", "burstable/"}, {"besteffort", "besteffort/"}} {
		v := findPod(l, p.name)
		podDir[p.name] = "kubepods/" + p.class + "pod" + v.UID
		// The pod cgroup is in every v1 hierarchy.
		for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "systemd"} {
			if !cgExists(filepath.Join("/sys/fs/cgroup", c, e.cgroupRoot, podDir[p.name])) {
				t.Errorf("%s: no pod cgroup in the %s hierarchy", p.name, c)
			}
		}
		// The sandbox and the containers run under it.
		for _, c := range v.Containers {
			pid := e.containerPid(c.ID)
			cg := string(mustRead(t, fmt.Sprintf("/proc/%d/cgroup", pid)))
			wantPath := e.cgroupRoot + "/" + podDir[p.name] + "/" + c.ID
			if !strings.Contains(cg, ":memory:"+wantPath+"\n") || !strings.Contains(cg, ":cpu:"+wantPath+"\n") {
				t.Errorf("%s/%s: /proc/%d/cgroup does not put it in %s:\n%s", p.name, c.Name, pid, wantPath, cg)
			}
		}
	}
	unlimitedQuota := "-1"
	// Guaranteed: 250m → 256 shares, 25000 µs per 100 ms; 64Mi.
	check("guaranteed pod", podDir["guaranteed"], want{"256", "25000", "67108864", "100"})
	// Burstable: requests 150m → 153 shares; "free" has no limits, so the pod has none.
	check("burstable pod", podDir["burstable"], want{"153", unlimitedQuota, unlimitedMemory, "100"})
	check("besteffort pod", podDir["besteffort"], want{"2", unlimitedQuota, unlimitedMemory, "100"})
	// Container level (the runtime's, from Berth's container config).
	cid := func(pod, ctr string) string {
		for _, c := range findPod(l, pod).Containers {
			if c.Name == ctr {
				return c.ID
			}
		}
		t.Fatalf("no container %s in %s", ctr, pod)
		return ""
	}
	check("guaranteed/main", podDir["guaranteed"]+"/"+cid("guaranteed", "main"), want{"256", "25000", "67108864", "max"})
	check("burstable/limited", podDir["burstable"]+"/"+cid("burstable", "limited"), want{"102", "30000", "100663296", "max"})
	check("burstable/free", podDir["burstable"]+"/"+cid("burstable", "free"), want{"51", unlimitedQuota, unlimitedMemory, "max"})
	check("besteffort/main", podDir["besteffort"]+"/"+cid("besteffort", "main"), want{"2", unlimitedQuota, unlimitedMemory, "max"})
	// cpuset: Berth's QoS cgroups hand their cpus and mems down (cgroup.clone_children), so the
	// pods' and the containers' cpuset cgroups have them without anyone writing them.
	machineCpus := string(bytes.TrimSpace(mustRead(t, "/sys/fs/cgroup/cpuset/cpuset.cpus")))
	for _, rel := range []string{"kubepods", "kubepods/burstable", "kubepods/besteffort", podDir["besteffort"], podDir["burstable"]} {
		if got := e.mustCgFile("cpuset", rel, "cgroup.clone_children"); got != "1" {
			t.Errorf("cpuset %s: cgroup.clone_children = %s, want 1", rel, got)
		}
	}
	for _, rel := range []string{podDir["guaranteed"], podDir["burstable"], podDir["besteffort"], podDir["besteffort"] + "/" + cid("besteffort", "main")} {
		if got := e.mustCgFile("cpuset", rel, "cpuset.cpus"); got != machineCpus {
			t.Errorf("cpuset %s: cpuset.cpus = %q, want the machine's %q", rel, got, machineCpus)
		}
		if got := e.mustCgFile("cpuset", rel, "cpuset.mems"); got == "" {
			t.Errorf("cpuset %s: cpuset.mems is empty", rel)
		}
	}
	if got := e.mustCgFile("cpu", "kubepods/burstable", "cpu.shares"); got != "153" {
		t.Errorf("burstable class cpu.shares = %s, want 153 (the sum of its pods' requests, 150m)", got)
	}

	// A restarted Berth (kill -9) adopts the pods: their cgroups stay, nothing is recreated, and
	// the burstable class's shares count them again.
	before := map[string]string{}
	for _, name := range []string{"guaranteed", "burstable", "besteffort"} {
		for _, c := range findPod(l, name).Containers {
			before[c.Name+"@"+name] = c.ID
		}
	}
	e.kill9()
	e.start()
	deadline := time.Now().Add(15 * time.Second)
	for e.mustCgFile("cpu", "kubepods/burstable", "cpu.shares") != "153" {
		if time.Now().After(deadline) {
			t.Fatalf("burstable class cpu.shares after a restart = %s, want 153", e.mustCgFile("cpu", "kubepods/burstable", "cpu.shares"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	l = e.waitPods("all three Running after the restart", 15*time.Second, func(l agent.PodList) bool {
		return podRunning("guaranteed")(l) && podRunning("burstable")(l) && podRunning("besteffort")(l)
	})
	for _, name := range []string{"guaranteed", "burstable", "besteffort"} {
		for _, c := range findPod(l, name).Containers {
			if before[c.Name+"@"+name] != c.ID {
				t.Errorf("%s/%s was recreated after the restart", name, c.Name)
			}
		}
		if !cgExists(filepath.Join("/sys/fs/cgroup/memory", e.cgroupRoot, podDir[name])) {
			t.Errorf("%s: pod cgroup gone after the restart", name)
		}
	}
	check("guaranteed pod after the restart", podDir["guaranteed"], want{"256", "25000", "67108864", "100"})

	// Deletion: the pod cgroups go (in every hierarchy), and the burstable class's shares follow.
	for _, f := range []string{"guaranteed.yaml", "burstable.yaml", "besteffort.yaml"} {
		e.removeManifest(f)
	}
	e.waitPods("no pods", 30*time.Second, func(l agent.PodList) bool { return len(l.Pods) == 0 })
	deadline = time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, d := range podDir {
			matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", e.cgroupRoot, d))
			left = append(left, matches...)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod cgroups left after the pods were deleted: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := e.mustCgFile("cpu", "kubepods/burstable", "cpu.shares"); got != "2" {
		t.Errorf("burstable class cpu.shares after its pod left = %s, want 2", got)
	}
}

// TestCgroupsOrphansRemovedAtStartup: pod<uid> cgroups under Berth's kubepods that no pod owns are
// removed at startup; anything else (a cgroup not named pod<uid>, a pod<uid> outside kubepods) is
// left alone.
func TestCgroupsOrphansRemovedAtStartup(t *testing.T) {
	e := newEnv(t)
	controllers := []string{"cpu", "memory", "pids", "systemd"}
	mk := func(rel string) {
		for _, c := range controllers {
			if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", c, e.cgroupRoot, rel), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	orphans := []string{"kubepods/burstable/pod0b7e3d6c-orphan-1", "kubepods/besteffort/pod0b7e3d6c-orphan-2", "kubepods/pod0b7e3d6c-orphan-3"}
	kept := []string{"kubepods/burstable/not-a-pod", "elsewhere/pod0b7e3d6c-orphan-4"}
	for _, d := range append(append([]string{}, orphans...), kept...) {
		mk(d)
	}
	e.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []string
		for _, d := range orphans {
			for _, c := range controllers {
				if p := filepath.Join("/sys/fs/cgroup", c, e.cgroupRoot, d); cgExists(p) {
					left = append(left, p)
				}
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphaned pod cgroups still there 15 s after startup: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, d := range kept {
		for _, c := range controllers {
			if p := filepath.Join("/sys/fs/cgroup", c, e.cgroupRoot, d); !cgExists(p) {
				t.Errorf("%s was removed; Berth only removes pod<uid> cgroups under its kubepods", p)
			}
		}
	}
}

// TestCgroupsForkBombContained: a pod that forks without end under podPidsLimit stops at the
// limit (pids.max of its pod cgroup: forks are refused, the container's pids.events counts them),
// and the node goes on: another pod starts, and the bomb's pod is deleted cleanly.
func TestCgroupsForkBombContained(t *testing.T) {
	e := newEnv(t)
	const limit = 40
	e.appendConfigLines(fmt.Sprintf("podPidsLimit: %d\n", limit))
	e.start()
	// The inner shell forks sleepers until fork fails (busybox sh then exits); the container's
	// init stays, with the sleepers, so the pod sits at its limit.
	e.writeManifest("bomb.yaml", shPod("bomb", "Always", `sh -c "while true; do sleep 3600 & done"; exec sleep 3600`))
	l := e.waitPods("bomb Running", 20*time.Second, podRunning("bomb"))
	bomb := findPod(l, "bomb")
	dir := "kubepods/besteffort/pod" + bomb.UID
	ctrDir := dir + "/" + bomb.Containers[0].ID
	if got := e.mustCgFile("pids", dir, "pids.max"); got != strconv.Itoa(limit) {
		t.Fatalf("pod pids.max = %s, want %d", got, limit)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cur := atoi(e.mustCgFile("pids", dir, "pids.current"))
		events := e.mustCgFile("pids", ctrDir, "pids.events") // "max N": forks refused at the limit
		if cur > limit {
			t.Fatalf("pids.current %d above pids.max %d", cur, limit)
		}
		if cur >= limit-2 && events != "max 0" {
			t.Logf("pod pids.current %d of %d; container pids.events %q", cur, limit, events)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fork bomb did not reach the limit in 20 s: pids.current %d, container pids.events %q", cur, events)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The node is fine: a new pod starts; the bomb's pod runs on, at its limit, not restarted.
	e.writeManifest("after.yaml", shPod("after", "Always", "exec sleep 3600"))
	l = e.waitPods("after Running", 20*time.Second, podRunning("after"))
	if p := findPod(l, "bomb"); p.Restarts != 0 || p.Phase != "Running" {
		t.Errorf("bomb: phase %s, restarts %d; want Running, 0", p.Phase, p.Restarts)
	}
	if cur := atoi(e.mustCgFile("pids", dir, "pids.current")); cur > limit || cur < limit-2 {
		t.Errorf("bomb pod pids.current %d, want at its limit %d", cur, limit)
	}
	e.removeManifest("bomb.yaml")
	e.waitPods("bomb gone", 30*time.Second, func(l agent.PodList) bool { return findPod(l, "bomb") == nil })
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", e.cgroupRoot, dir)); !os.IsNotExist(err) {
		t.Errorf("the bomb's pod cgroup is still there after deletion (stat: %v)", err)
	}
}

// TestCgroupsOOMKilled: a container that allocates past its memory limit is killed by the kernel's
// OOM killer; its status says OOMKilled with exit code 137, and with restartPolicy Always it is
// restarted. The Failed pod's cgroup is removed.
func TestCgroupsOOMKilled(t *testing.T) {
	e := newEnv(t)
	e.start()
	// tail keeps the current line in memory, and /dev/zero has no newline: it grows without end.
	hog := func(name, policy string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1; head -c 1000m /dev/zero | tail"]
    resources:
      limits: {memory: 32Mi}
`, name, policy)
	}
	e.writeManifest("hog-never.yaml", hog("hog-never", "Never"))
	e.writeManifest("hog-always.yaml", hog("hog-always", "Always"))
	l := e.waitPods("hog-never Failed", 60*time.Second, podPhase("hog-never", "Failed"))
	c := findPod(l, "hog-never").Containers[0]
	if c.State != "exited" || c.Reason != "OOMKilled" || c.ExitCode == nil || *c.ExitCode != 137 {
		t.Fatalf("hog-never container: state %s reason %q exitCode %v, want exited OOMKilled 137", c.State, c.Reason, c.ExitCode)
	}
	// A terminal pod's cgroup goes once nothing of it runs, before the pod is removed.
	neverDir := filepath.Join("/sys/fs/cgroup/memory", e.cgroupRoot, "kubepods/burstable/pod"+findPod(l, "hog-never").UID)
	deadline := time.Now().Add(15 * time.Second)
	for cgExists(neverDir) {
		if time.Now().After(deadline) {
			t.Fatalf("the Failed pod's cgroup %s is still there", neverDir)
		}
		time.Sleep(200 * time.Millisecond)
	}
	l = e.waitPods("hog-always restarted", 60*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "hog-always")
		return p != nil && p.Restarts >= 1
	})
	// The runtime's record of the killed instance says the same.
	uid := findPod(l, "hog-always").UID
	found := false
	for _, ctr := range e.containers(uid) {
		st, err := e.rt.ContainerStatus(t.Context(), ctr.Id)
		if err != nil {
			t.Fatal(err)
		}
		if st.FinishedAt != 0 && st.Reason == "OOMKilled" && st.ExitCode == 137 {
			found = true
		}
	}
	if !found {
		t.Errorf("no OOMKilled (137) instance of hog-always in the runtime")
	}
}

// TestCgroupsDriverMismatch: Berth refuses to start with a cgroup driver other than the runtime's
// (containerd reports SystemdCgroup in its verbose CRI status), and says what to change.
func TestCgroupsDriverMismatch(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command(e.bin, "--config", e.config, "--container-runtime-endpoint", e.endpoint,
		"--root-dir", e.rootDir, "--hostname-override", e.nodeName, "--cgroup-driver", "systemd", "--cgroup-root", "/")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("berth with the wrong cgroup driver did not exit:\n%s", out)
	}
	if err == nil {
		t.Fatalf("berth with the wrong cgroup driver exited 0:\n%s", out)
	}
	for _, want := range []string{"cgroup driver mismatch", `runtime uses "cgroupfs"`, "SystemdCgroup = true", "cgroupDriver: cgroupfs"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q (exit: %v):\n%s", want, err, out)
		}
	}
}
