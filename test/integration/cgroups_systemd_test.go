//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cgroups"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// systemdCgroupDirs is, per v1 controller, the host directory of the root cgroup of a systemd
// started by startSystemdNS (test/env/systemd-ns.sh lists them in DIR/cgroups).
func systemdCgroupDirs(t *testing.T, s *systemdNS) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, filepath.Join(s.dir, "cgroups"))))
	for sc.Scan() {
		if c, p, ok := strings.Cut(sc.Text(), " "); ok {
			dirs[c] = p
		}
	}
	return dirs
}

// TestCgroupsSystemdDriver: the systemd driver against a real systemd (252 on the test machines,
// legacy cgroup v1 hierarchy) running in namespaces of its own: kubepods, the QoS classes and the
// pod cgroups are slices made through D-Bus, their limits land in the cgroup files (read from the
// host), the runtime is given kubepods-<class>-pod<uid>.slice, and removal and orphan cleanup stop
// the slices.
func TestCgroupsSystemdDriver(t *testing.T) {
	sns := startSystemdNS(t)
	bus, dirs := sns.bus, systemdCgroupDirs(t, sns)
	newManager := func() *cgroups.Manager {
		unified := false
		m, err := cgroups.New(cgroups.Config{
			Driver:       cgroups.DriverSystemd,
			Root:         cgroups.Name{},
			PodPidsLimit: 64,
			Kubepods:     cgroups.NodeResourceConfig(v1.ResourceList{v1.ResourceCPU: resource.MustParse("1500m"), v1.ResourceMemory: resource.MustParse("1Gi"), "pid": resource.MustParse("1000")}),
			Unified:      &unified,
			Systemd:      cgroups.SystemdBusAt(bus),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	m := newManager()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	pod := func(uid string, req, lim v1.ResourceList) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: "p", Namespace: "default"},
			Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}}}}
	}
	q := func(kv ...string) v1.ResourceList {
		l := v1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return l
	}
	g := pod("6f1c-aa01", nil, q("cpu", "250m", "memory", "64Mi"))
	b := pod("6f1c-bb02", q("cpu", "100m"), q("memory", "96Mi"))
	e := pod("6f1c-cc03", nil, nil)
	for _, p := range []*v1.Pod{g, b, e} {
		if err := m.EnsurePod(p); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := m.PodParent(b), "kubepods-burstable-pod6f1c_bb02.slice"; got != want {
		t.Errorf("PodParent = %s, want %s", got, want)
	}
	read := func(controller string, n cgroups.Name, file string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dirs[controller], n.SystemdPath(), file))
		if err != nil {
			t.Errorf("%v", err)
			return ""
		}
		return strings.TrimSpace(string(data))
	}
	kp := cgroups.Name{"kubepods"}
	gn := kp.Child("pod6f1c-aa01")
	bn := kp.Child("burstable").Child("pod6f1c-bb02")
	en := kp.Child("besteffort").Child("pod6f1c-cc03")
	for _, c := range []struct {
		controller string
		n          cgroups.Name
		file, want string
	}{
		{"cpu", kp, "cpu.shares", "1536"},
		{"memory", kp, "memory.limit_in_bytes", "1073741824"},
		{"pids", kp, "pids.max", "1000"},
		{"cpu", kp.Child("besteffort"), "cpu.shares", "2"},
		{"cpu", kp.Child("burstable"), "cpu.shares", "102"},
		{"cpu", gn, "cpu.shares", "256"},
		{"cpu", gn, "cpu.cfs_quota_us", "25000"},
		{"memory", gn, "memory.limit_in_bytes", "67108864"},
		{"pids", gn, "pids.max", "64"},
		{"cpu", bn, "cpu.shares", "102"},
		{"cpu", bn, "cpu.cfs_quota_us", "-1"},
		{"memory", bn, "memory.limit_in_bytes", "100663296"},
		{"pids", bn, "pids.max", "64"},
		{"cpu", en, "cpu.shares", "2"},
		{"pids", en, "pids.max", "64"},
	} {
		if got := read(c.controller, c.n, c.file); got != c.want {
			t.Errorf("%s%s/%s = %q, want %q", c.controller, c.n.SystemdPath(), c.file, got, c.want)
		}
	}
	uids, err := m.PodUIDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(uids) != 3 || !uids["6f1c-aa01"] || !uids["6f1c-bb02"] || !uids["6f1c-cc03"] {
		t.Errorf("PodUIDs = %v", uids)
	}

	if err := m.RemovePod(b.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs["cpu"], bn.SystemdPath())); !os.IsNotExist(err) {
		t.Errorf("the burstable pod's slice is still there after RemovePod: %v", err)
	}
	if got := read("cpu", kp.Child("burstable"), "cpu.shares"); got != "2" {
		t.Errorf("burstable cpu.shares after its pod left = %s, want 2", got)
	}

	// A new manager (Berth restarted) removes the slices of pods that are gone.
	m2 := newManager()
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m2.CleanupOrphans(func(uid types.UID) bool { return uid == g.UID }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs["cpu"], en.SystemdPath())); !os.IsNotExist(err) {
		t.Errorf("the orphaned besteffort slice is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirs["cpu"], gn.SystemdPath())); err != nil {
		t.Errorf("the active pod's slice was removed: %v", err)
	}
}
