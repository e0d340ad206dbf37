//go:build integration

package integration

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
)

// volumesPod uses every volume kind a static pod may have: emptyDir on disk and in memory, hostPath
// (created and checked), downwardAPI and a projected downwardAPI, with subPath and subPathExpr.
// The init container writes into the emptyDir (and plants a symlink to / for the escape test).
func volumesPod(name, hostDir string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  labels: {app: vols, tier: back}
  annotations: {note: "hello \"world\""}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo from-init > /cache/init.txt && mkdir -p /cache/sub/dir && echo inside > /cache/sub/dir/f && ln -s / /cache/escape && ln -s sub/dir /cache/inside-link"]
    volumeMounts: [{name: cache, mountPath: /cache}]
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    resources: {limits: {memory: 64Mi}}
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: mem, mountPath: /mem}
    - {name: podmem, mountPath: /podmem}
    - {name: host, mountPath: /host}
    - {name: hostfile, mountPath: /etc/host-file, readOnly: true}
    - {name: info, mountPath: /info}
    - {name: cache, mountPath: /sub, subPath: sub/dir}
    - {name: cache, mountPath: /linked, subPath: inside-link, readOnly: true}
    - {name: cache, mountPath: /byexpr, subPathExpr: "per-$(POD)"}
    - {name: proj, mountPath: /proj}
  volumes:
  - {name: cache, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  - {name: podmem, emptyDir: {medium: Memory}}
  - {name: host, hostPath: {path: %[2]s/created, type: DirectoryOrCreate}}
  - {name: hostfile, hostPath: {path: %[2]s/file, type: File}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: name, fieldRef: {fieldPath: metadata.name}, mode: 0400}
      - {path: deep/tier, fieldRef: {fieldPath: "metadata.labels['tier']"}}
      - {path: mem_limit, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
  - name: proj
    projected:
      defaultMode: 0440
      sources:
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
`, name, hostDir)
}

// TestVolumesStandalone: each kind a static pod may use is mounted and read from inside the
// container, with its modes and owner; the emptyDir outlives a container restart; after the pod is
// deleted no mount and no directory is left.
func TestVolumesStandalone(t *testing.T) {
	e := newEnv(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "file"), []byte("host-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeManifest("vols.yaml", volumesPod("vols", hostDir))
	e.start()
	l := e.waitPods("vols running", 30*time.Second, podRunning("vols"))
	p := findPod(l, "vols")
	main := containerID(t, p, "main")

	check := func(what, want string, cmd ...string) {
		t.Helper()
		out, stderr, code, err := e.rt.ExecSync(t.Context(), main, cmd, 10*time.Second)
		if got := strings.TrimSpace(string(out)); err != nil || code != 0 || got != want {
			t.Errorf("%s: %v = %q (code %d, err %v, stderr %s), want %q", what, cmd, got, code, err, stderr, want)
		}
	}
	// emptyDir on disk: shared with the init container, world-writable, root's.
	check("emptyDir written by the init container", "from-init", "cat", "/cache/init.txt")
	check("emptyDir mode and owner", "777 0 0", "stat", "-c", "%a %u %g", "/cache")
	// emptyDir in memory: a tmpfs of sizeLimit (8Mi), or of the pod's memory limit (64Mi).
	check("memory emptyDir is a tmpfs", "tmpfs 8192", "sh", "-c", "df -k /mem | awk 'NR==2 {print $1, $2}'")
	check("memory emptyDir sized to the pod's memory limit", "tmpfs 65536", "sh", "-c", "df -k /podmem | awk 'NR==2 {print $1, $2}'")
	check("memory emptyDir mode", "1777", "stat", "-c", "%a", "/mem")
	// hostPath: DirectoryOrCreate made the directory (0755); writes show on the host.
	check("hostPath write", "", "sh", "-c", "echo from-pod > /host/out")
	if b, err := os.ReadFile(filepath.Join(hostDir, "created", "out")); err != nil || string(b) != "from-pod\n" {
		t.Errorf("hostPath: host reads %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(hostDir, "created")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("DirectoryOrCreate: %v %v, want a 0755 directory", fi, err)
	}
	check("hostPath file", "host-file", "cat", "/etc/host-file")
	if _, _, code, _ := e.rt.ExecSync(t.Context(), main, []string{"sh", "-c", "echo x > /etc/host-file"}, 10*time.Second); code == 0 {
		t.Errorf("a readOnly hostPath mount was writable")
	}
	// downwardAPI: labels and annotations as key="value" lines, modes, nested paths, resources.
	check("downward labels", "app=\"vols\"\ntier=\"back\"", "cat", "/info/labels")
	check("downward annotations", `note="hello \"world\""`, "sh", "-c", "cat /info/annotations | grep note")
	check("downward name", "vols-itest-node", "cat", "/info/name") // a static pod's name ends with its node's
	check("downward item mode", "400 0 0", "stat", "-L", "-c", "%a %u %g", "/info/name")
	check("downward default mode", "644", "stat", "-L", "-c", "%a", "/info/labels")
	check("downward nested path", "back", "cat", "/info/deep/tier")
	check("downward resource", "64", "cat", "/info/mem_limit")
	check("downward is read-only", "1", "sh", "-c", "touch /info/x 2>/dev/null; echo $?")
	check("atomic writer layout", "..data/name", "readlink", "/info/name")
	// projected downwardAPI with its defaultMode.
	check("projected", "default", "cat", "/proj/ns")
	check("projected mode", "440", "stat", "-L", "-c", "%a", "/proj/ns")
	// subPath, subPath through a symlink that stays inside, subPathExpr.
	check("subPath", "inside", "cat", "/sub/f")
	check("subPath through an inside symlink", "inside", "cat", "/linked/f")
	check("subPathExpr", "", "sh", "-c", "echo x > /byexpr/y")
	check("subPathExpr directory", "x", "cat", "/cache/per-vols-itest-node/y")

	// The emptyDir is kept across a container restart.
	check("write before restart", "", "sh", "-c", "echo kept > /cache/kept")
	if err := e.rt.StopContainer(t.Context(), main, 0); err != nil {
		t.Fatal(err)
	}
	l = e.waitPods("main restarted", 30*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "vols")
		return p != nil && p.Phase == "Running" && p.Restarts >= 1 && p.Ready == 1
	})
	main = containerID(t, findPod(l, "vols"), "main")
	check("emptyDir after a restart", "kept", "cat", "/cache/kept")
	check("memory emptyDir after a restart", "tmpfs 8192", "sh", "-c", "df -k /mem | awk 'NR==2 {print $1, $2}'")

	// Deleted: nothing left mounted or on disk under the pod's directory; the hostPath stays.
	uid := p.UID
	podDir := filepath.Join(e.rootDir, "pods", uid)
	if n := len(mountsUnder(t, podDir)); n == 0 {
		t.Fatalf("no mounts under %s while the pod runs: the check below would prove nothing", podDir)
	}
	e.removeManifest("vols.yaml")
	waitFor(t, "pod removed from the runtime", 20*time.Second, func() bool {
		return len(e.sandboxes(uid)) == 0 && len(e.containers(uid)) == 0
	})
	waitFor(t, "pod directory removed", 10*time.Second, func() bool {
		_, err := os.Stat(podDir)
		return errors.Is(err, os.ErrNotExist)
	})
	if m := mountsUnder(t, podDir); len(m) > 0 {
		t.Errorf("mounts left after the pod was deleted: %v", m)
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "created", "out")); err != nil || string(b) != "from-pod\n" {
		t.Errorf("the hostPath lost its content with the pod: %q, %v", b, err)
	}
}

// TestVolumesRejected: a subPath that leads out of its volume through a symlink is refused (the
// container does not start), and a hostPath of the wrong type fails the mount with the kubelet's
// message; neither leaves anything behind.
func TestVolumesRejected(t *testing.T) {
	e := newEnv(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeManifest("escape.yaml", `apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: plant
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "ln -s / /vol/escape && ln -s ../../../../../../../../etc /vol/relative"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  containers:
  - name: abs
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    volumeMounts: [{name: vol, mountPath: /stolen, subPath: escape/etc}]
  - name: rel
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    volumeMounts: [{name: vol, mountPath: /stolen, subPath: relative}]
  volumes:
  - {name: vol, emptyDir: {}}
`)
	e.writeManifest("mismatch.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: mismatch}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    volumeMounts: [{name: dir, mountPath: /dir}]
  volumes:
  - {name: dir, hostPath: {path: %s/file, type: Directory}}
`, hostDir))
	e.start()
	l := e.waitPods("escape refused, mismatch failing", 30*time.Second, func(l agent.PodList) bool {
		esc, mis := findPod(l, "escape"), findPod(l, "mismatch")
		if esc == nil || mis == nil || mis.Error == "" {
			return false
		}
		refused := 0
		for _, c := range esc.Containers {
			if !c.Init && c.State == "waiting" && c.Reason == "CreateContainerConfigError" {
				refused++
			}
		}
		return refused == 2
	})
	esc, mis := findPod(l, "escape"), findPod(l, "mismatch")
	if !strings.Contains(esc.Error, "leads outside the volume") || !strings.Contains(esc.Error, "failed to prepare subPath") {
		t.Errorf("escape error = %q", esc.Error)
	}
	for _, c := range esc.Containers {
		if !c.Init && c.ID != "" {
			t.Errorf("container %s was created (%s) despite the escaping subPath", c.Name, c.ID)
		}
	}
	want := fmt.Sprintf(`FailedMount: MountVolume.SetUp failed for volume "dir" : hostPath type check failed: %s/file is not a directory`, hostDir)
	if mis.Error != want {
		t.Errorf("mismatch error = %q, want %q", mis.Error, want)
	}
	if len(e.sandboxes(mis.UID)) != 0 {
		t.Errorf("a sandbox was created for a pod whose volume failed")
	}
	if p := mis.Phase; p != "Pending" {
		t.Errorf("mismatch phase %s, want Pending", p)
	}

	e.removeManifest("escape.yaml")
	e.removeManifest("mismatch.yaml")
	for _, uid := range []string{esc.UID, mis.UID} {
		podDir := filepath.Join(e.rootDir, "pods", uid)
		waitFor(t, "pod directory "+uid+" removed", 20*time.Second, func() bool {
			_, err := os.Stat(podDir)
			return errors.Is(err, os.ErrNotExist)
		})
		if m := mountsUnder(t, podDir); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
	}
}

func containerID(t *testing.T, p *agent.PodView, name string) string {
	t.Helper()
	if p == nil {
		t.Fatal("no pod")
	}
	for _, c := range p.Containers {
		if c.Name == name && c.ID != "" {
			return c.ID
		}
	}
	t.Fatalf("pod %s has no container %s: %+v", p.Name, name, p.Containers)
	return ""
}

// unmountUnder detaches every mount at or under dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	mps := mountsUnder(t, dir)
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", mp, err)
		}
	}
}

// mountsUnder lists the mount points at or under dir, from /proc/self/mountinfo.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

// TestVolumesAcrossBerthRestart: Berth killed with -9 and started again adopts a pod with volumes
// without restarting it or stacking mounts; a pod whose manifest went away meanwhile has its
// volumes unmounted and its directory removed.
func TestVolumesAcrossBerthRestart(t *testing.T) {
	e := newEnv(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "file"), []byte("host-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeManifest("keep.yaml", volumesPod("keep", hostDir))
	e.writeManifest("gone.yaml", volumesPod("gone", hostDir))
	e.start()
	l := e.waitPods("both running", 40*time.Second, func(l agent.PodList) bool { return podRunning("keep")(l) && podRunning("gone")(l) })
	keep, gone := findPod(l, "keep"), findPod(l, "gone")
	keepDir := filepath.Join(e.rootDir, "pods", keep.UID)
	goneDir := filepath.Join(e.rootDir, "pods", gone.UID)
	mountsBefore := mountsUnder(t, keepDir)
	if len(mountsBefore) == 0 || len(mountsUnder(t, goneDir)) == 0 {
		t.Fatalf("no mounts under the pods' directories: the checks below would prove nothing")
	}
	main := containerID(t, keep, "main")

	e.kill9()
	e.removeManifest("gone.yaml")
	e.start()
	waitFor(t, "the vanished pod's volumes torn down", 20*time.Second, func() bool {
		_, err := os.Stat(goneDir)
		return errors.Is(err, os.ErrNotExist)
	})
	if m := mountsUnder(t, goneDir); len(m) > 0 {
		t.Errorf("mounts left of the vanished pod: %v", m)
	}
	time.Sleep(3 * time.Second) // several syncs of the adopted pod
	l = e.pods()
	p := findPod(l, "keep")
	if p == nil || p.Phase != "Running" || p.Restarts != 0 || containerID(t, p, "main") != main {
		t.Fatalf("the adopted pod: %+v", p)
	}
	if after := mountsUnder(t, keepDir); strings.Join(after, ",") != strings.Join(mountsBefore, ",") {
		t.Errorf("mounts changed across the restart:\nbefore %v\nafter  %v", mountsBefore, after)
	}
	out, _, code, err := e.rt.ExecSync(t.Context(), main, []string{"cat", "/info/name", "/cache/init.txt", "/sub/f"}, 10*time.Second)
	if err != nil || code != 0 || string(out) != "keep-itest-nodefrom-init\ninside\n" {
		t.Errorf("volumes after the restart: %q (code %d, %v)", out, code, err)
	}
	// The adopted pod's teardown finds every mount, including those made by the Berth before.
	e.removeManifest("keep.yaml")
	waitFor(t, "the adopted pod's directory removed", 20*time.Second, func() bool {
		_, err := os.Stat(keepDir)
		return errors.Is(err, os.ErrNotExist)
	})
	if m := mountsUnder(t, keepDir); len(m) > 0 {
		t.Errorf("mounts left of the adopted pod: %v", m)
	}
}
