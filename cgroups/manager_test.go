package cgroups

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeBackend records cgroups as paths with their last ResourceConfig.
type fakeBackend struct {
	cgroups map[string]string
	applies int
}

func (f *fakeBackend) apply(n Name, r *ResourceConfig) error {
	f.applies++
	f.cgroups[n.Cgroupfs()] = r.String()
	return nil
}
func (f *fakeBackend) remove(n Name) error { delete(f.cgroups, n.Cgroupfs()); return nil }
func (f *fakeBackend) exists(n Name) (bool, error) {
	_, ok := f.cgroups[n.Cgroupfs()]
	return ok, nil
}
func (f *fakeBackend) children(n Name) ([]string, error) {
	var out []string
	prefix := n.Cgroupfs() + "/"
	for p := range f.cgroups {
		if rest, ok := strings.CutPrefix(p, prefix); ok && !strings.Contains(rest, "/") {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out, nil
}
func (f *fakeBackend) parent(n Name) string { return n.Cgroupfs() }
func (f *fakeBackend) close()               {}

func testPod(uid string, c ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: uid, Namespace: "default"}, Spec: v1.PodSpec{Containers: c}}
}

func TestManagerHierarchy(t *testing.T) {
	f := &fakeBackend{cgroups: map[string]string{}}
	m := &Manager{cfg: Config{Root: Name{"berth"}, PodPidsLimit: 64, Kubepods: NodeResourceConfig(res("cpu", "1500m", "memory", "1Gi"))}, b: f, log: discardLogger(), pods: map[types.UID]podEntry{}}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/berth/kubepods":            "cpu.shares=1536 memory=1073741824",
		"/berth/kubepods/besteffort": "cpu.shares=2",
		"/berth/kubepods/burstable":  "cpu.shares=2",
	}
	check := func(step string) {
		t.Helper()
		for p, w := range want {
			if got, ok := f.cgroups[p]; !ok || got != w {
				t.Errorf("%s: %s = %q (exists %v), want %q", step, p, got, ok, w)
			}
		}
		for p := range f.cgroups {
			if _, ok := want[p]; !ok {
				t.Errorf("%s: unexpected cgroup %s", step, p)
			}
		}
	}
	check("start")

	g := testPod("g1", ctr(nil, res("cpu", "1", "memory", "1Gi")))
	b1 := testPod("b1", ctr(res("cpu", "100m"), nil))
	b2 := testPod("b2", ctr(res("cpu", "400m"), nil))
	be := testPod("e1", ctr(nil, nil))
	for _, p := range []*v1.Pod{g, b1, b2, be} {
		if err := m.EnsurePod(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.PodParent(b1); got != "/berth/kubepods/burstable/podb1" {
		t.Errorf("PodParent(b1) = %s", got)
	}
	want["/berth/kubepods/podg1"] = "cpu.shares=1024 cpu.quota=100000 cpu.period=100000 memory=1073741824 pids=64"
	want["/berth/kubepods/burstable/podb1"] = "cpu.shares=102 pids=64"
	want["/berth/kubepods/burstable/podb2"] = "cpu.shares=409 pids=64"
	want["/berth/kubepods/besteffort/pode1"] = "cpu.shares=2 pids=64"
	want["/berth/kubepods/burstable"] = "cpu.shares=512" // 500m
	check("four pods")

	// A second sync of the same pods writes nothing.
	n := f.applies
	for _, p := range []*v1.Pod{g, b1, b2, be} {
		if err := m.EnsurePod(p); err != nil {
			t.Fatal(err)
		}
	}
	if f.applies != n {
		t.Errorf("EnsurePod of unchanged pods wrote %d times", f.applies-n)
	}

	if err := m.RemovePod("b2"); err != nil {
		t.Fatal(err)
	}
	delete(want, "/berth/kubepods/burstable/podb2")
	want["/berth/kubepods/burstable"] = "cpu.shares=102"
	check("b2 removed")

	// Orphans: only pod<uid> under kubepods and its classes; active pods stay.
	f.cgroups["/berth/kubepods/burstable/podorphan"] = ""
	f.cgroups["/berth/kubepods/besteffort/not-a-pod"] = ""
	f.cgroups["/berth/elsewhere"] = ""
	f.cgroups["/berth/elsewhere/podx"] = ""
	want["/berth/kubepods/besteffort/not-a-pod"] = ""
	want["/berth/elsewhere"] = ""
	want["/berth/elsewhere/podx"] = ""
	active := map[types.UID]bool{"g1": true, "b1": true, "e1": true}
	if err := m.CleanupOrphans(func(uid types.UID) bool { return active[uid] }); err != nil {
		t.Fatal(err)
	}
	check("orphans cleaned")
}

// TestCgroupV2Tree runs the cgroup v2 (unified) driver — containerd's cgroup2 manager — on a tree
// the test prepares: plain directories with the interface files the kernel would provide
// (cgroup.controllers, cgroup.subtree_control). The machines Berth is tested on are cgroup v1, so
// this checks the files written (cpu.weight with SharesToWeight, cpu.max, memory.max, pids.max,
// the controllers enabled in the parents) and the removal; not the kernel's enforcement.
func TestCgroupV2Tree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the cgroup2 library writes its files with mode 0: only root can read them back")
	}
	root := t.TempDir()
	dirs := []string{"", "berth", "berth/kubepods", "berth/kubepods/burstable", "berth/kubepods/besteffort",
		"berth/kubepods/podg1", "berth/kubepods/burstable/podb1"}
	for _, d := range dirs {
		p := filepath.Join(root, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for file, content := range map[string]string{"cgroup.controllers": "cpuset cpu io memory pids", "cgroup.subtree_control": "", "cgroup.procs": ""} {
			if err := os.WriteFile(filepath.Join(p, file), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	unified := true
	m, err := New(Config{Root: Name{"berth"}, PodPidsLimit: 64, Unified: &unified, UnifiedMountpoint: root,
		Kubepods: NodeResourceConfig(res("cpu", "2", "memory", "2Gi", "pid", "1000")), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	g := testPod("g1", ctr(nil, res("cpu", "250m", "memory", "64Mi")))
	b := testPod("b1", ctr(res("cpu", "100m"), res("memory", "96Mi")))
	for _, p := range []*v1.Pod{g, b} {
		if err := m.EnsurePod(p); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	for rel, want := range map[string]string{
		"berth/kubepods/cpu.weight":                 "174", // 2048 shares
		"berth/kubepods/memory.max":                 "2147483648",
		"berth/kubepods/pids.max":                   "1000",
		"berth/kubepods/besteffort/cpu.weight":      "1",
		"berth/kubepods/burstable/cpu.weight":       "17", // 102 shares (100m)
		"berth/kubepods/podg1/cpu.weight":           "35", // 256 shares
		"berth/kubepods/podg1/cpu.max":              "25000 100000",
		"berth/kubepods/podg1/memory.max":           "67108864",
		"berth/kubepods/podg1/pids.max":             "64",
		"berth/kubepods/burstable/podb1/cpu.weight": "17",
		"berth/kubepods/burstable/podb1/memory.max": "100663296",
		"berth/kubepods/burstable/podb1/pids.max":   "64",
		// The library enables the controllers a child uses in each parent.
		"berth/kubepods/cgroup.subtree_control": "+cpu +memory +pids",
	} {
		if got := read(rel); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "berth/kubepods/burstable/podb1/cpu.max")); err == nil {
		t.Errorf("burstable pod without a CPU limit got a cpu.max")
	}
	if err := m.RemovePod("b1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "berth/kubepods/burstable/podb1")); !os.IsNotExist(err) {
		t.Errorf("pod cgroup still there after RemovePod: %v", err)
	}
	if got := read("berth/kubepods/burstable/cpu.weight"); got != "1" {
		t.Errorf("burstable cpu.weight after its pod left = %s, want 1", got)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestParentCopyCpuset checks the cpuset shortcut on a tree of plain directories shaped like a
// cpuset hierarchy: a pod's cgroup under a parent that has cpus and mems gets them copied and the
// ancestors are left alone (cgroup1's own Create walks up and writes the files of /berth, which
// has none here), and without a usable parent the call goes to cgroup1's Create, which fills the
// chain.
func TestParentCopyCpuset(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "cpuset") // NewCpuset(base) is the hierarchy mounted at base/cpuset
	write := func(p, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	c := parentCopyCpuset{cgroup1.NewCpuset(base)}
	if c.Name() != cgroup1.Cpuset {
		t.Fatalf("Name() = %s", c.Name())
	}

	// Fast path: /berth/kubepods/besteffort is set up, /berth has no files at all.
	write(filepath.Join(root, "berth/kubepods/besteffort/cpuset.cpus"), "0-1\n")
	write(filepath.Join(root, "berth/kubepods/besteffort/cpuset.mems"), "0\n")
	if err := c.Create("/berth/kubepods/besteffort/poda", &specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	pod := filepath.Join(root, "berth/kubepods/besteffort/poda")
	if got := read(filepath.Join(pod, "cpuset.cpus")); got != "0-1\n" {
		t.Errorf("pod cpuset.cpus = %q, want the parent's", got)
	}
	if got := read(filepath.Join(pod, "cpuset.mems")); got != "0\n" {
		t.Errorf("pod cpuset.mems = %q, want the parent's", got)
	}
	if _, err := os.Stat(filepath.Join(root, "berth/cpuset.cpus")); !os.IsNotExist(err) {
		t.Errorf("the ancestors were walked: /berth/cpuset.cpus exists (err %v)", err)
	}

	// A parent with cgroup.clone_children set: the mkdir alone, the kernel fills the files (on
	// this tree of plain directories nothing does, which shows nothing was written).
	write(filepath.Join(root, "berth/kubepods/burstable/cpuset.cpus"), "0-1\n")
	write(filepath.Join(root, "berth/kubepods/burstable/cpuset.mems"), "0\n")
	write(filepath.Join(root, "berth/kubepods/burstable/cgroup.clone_children"), "1\n")
	if err := c.Create("/berth/kubepods/burstable/podc", &specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "berth/kubepods/burstable/podc")); err != nil || !fi.IsDir() {
		t.Fatalf("pod cgroup under a cloning parent not made: %v", err)
	}
	for _, name := range []string{"cpuset.cpus", "cpuset.mems"} {
		if _, err := os.Stat(filepath.Join(root, "berth/kubepods/burstable/podc", name)); !os.IsNotExist(err) {
			t.Errorf("%s written under a cloning parent (err %v)", name, err)
		}
	}

	// No usable parent: cgroup1's Create, which copies down from the root.
	write(filepath.Join(root, "cpuset.cpus"), "0-3\n")
	write(filepath.Join(root, "cpuset.mems"), "0\n")
	if err := c.Create("/other/podb", &specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"other", "other/podb"} {
		if got := read(filepath.Join(root, dir, "cpuset.cpus")); got != "0-3\n" {
			t.Errorf("%s cpuset.cpus = %q, want the root's", dir, got)
		}
	}
}

// TestCloneCpuset checks that cloneCpuset sets cgroup.clone_children on a cpuset cgroup that has
// its cpus and mems, and refuses one that has none: its children would get nothing to run on.
func TestCloneCpuset(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "cpuset", "berth", "kubepods")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fs1{}
	f.once.Do(func() { f.subsystems = []cgroup1.Subsystem{parentCopyCpuset{cgroup1.NewCpuset(base)}} })
	n := Name{"berth", "kubepods"}

	for _, name := range []string{"cpuset.cpus", "cpuset.mems", cloneChildrenFile} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.cloneCpuset(n); err == nil || !strings.Contains(err.Error(), "cpuset.cpus is empty") {
		t.Errorf("cloneCpuset with empty cpus: err = %v, want cpuset.cpus is empty", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, cloneChildrenFile)); strings.TrimSpace(string(b)) != "" {
		t.Errorf("clone_children = %q after a refusal", b)
	}

	if err := os.WriteFile(filepath.Join(dir, "cpuset.cpus"), []byte("0-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpuset.mems"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.cloneCpuset(n); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, cloneChildrenFile)); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("clone_children = %q, want 1", b)
	}
}

// TestFs1RemoveRealCgroups makes a pod cgroup with two cgroups below it in every v1 hierarchy of
// this machine and removes it with fs1.remove: refused, naming the process, while a process is in
// it; then gone from every hierarchy once the process has exited.
func TestFs1RemoveRealCgroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("makes cgroups: needs root")
	}
	if cgroupsv3.Mode() == cgroupsv3.Unified {
		t.Skip("the cgroupfs v1 driver needs v1 hierarchies")
	}
	f := &fs1{}
	root := Name{fmt.Sprintf("berth-unit-%d", os.Getpid())}
	pod := append(append(Name{}, root...), "podtest")
	t.Cleanup(func() { _ = f.remove(root) })
	shares, pids := uint64(512), int64(20)
	for _, n := range []Name{pod, append(append(Name{}, pod...), "sandbox"), append(append(Name{}, pod...), "sandbox", "ctr")} {
		if err := f.apply(n, &ResourceConfig{CPUShares: &shares, PidsLimit: &pids}); err != nil {
			t.Fatal(err)
		}
	}
	subsystems, err := f.hierarchy()
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	var pidsDir string
	for _, s := range subsystems {
		if p, ok := s.(interface{ Path(string) string }); ok {
			dir := p.Path(pod.Cgroupfs())
			dirs = append(dirs, dir)
			if s.Name() == cgroup1.Pids {
				pidsDir = dir
			}
		}
	}
	if len(dirs) < 3 || pidsDir == "" {
		t.Fatalf("hierarchies found: %v (pids %q)", dirs, pidsDir)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "sandbox", "ctr")); err != nil {
			t.Fatalf("cgroup not made: %v", err)
		}
	}

	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill() }()
	if err := os.WriteFile(filepath.Join(pidsDir, "sandbox", "ctr", "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	err = f.remove(pod)
	if err == nil || !strings.Contains(err.Error(), "still has processes ("+strconv.Itoa(sleep.Process.Pid)+")") {
		t.Fatalf("remove with a process inside: err = %v, want one naming pid %d", err, sleep.Process.Pid)
	}
	if _, err := os.Stat(filepath.Join(pidsDir, "sandbox", "ctr")); err != nil {
		t.Fatalf("the cgroup holding the process is gone: %v", err)
	}

	_ = sleep.Process.Kill()
	_ = sleep.Wait()
	if err := f.remove(pod); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there after remove (err %v)", d, err)
		}
	}
	if err := f.remove(pod); err != nil {
		t.Errorf("removing a removed cgroup: %v", err)
	}
}
