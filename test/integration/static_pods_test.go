//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/cri"
)

// webPod is a busybox httpd serving "<text>" on port 80.
func webPod(name, text string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
    - containerPort: 80
`, name, text)
}

// shPod runs one shell command in busybox with the given restart policy.
func shPod(name, policy, script string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", %q]
`, name, policy, script)
}

// TestStaticPodLifecycle: a dropped manifest runs and serves within 5 s; an edit replaces the pod;
// a deletion removes containers, sandbox, log directory and network namespace.
func TestStaticPodLifecycle(t *testing.T) {
	e := newEnv(t)
	e.start()

	start := time.Now()
	e.writeManifest("web.yaml", webPod("web", "first"))
	l := e.waitPods("web Running", 5*time.Second, podRunning("web"))
	p := findPod(l, "web")
	var body string
	for {
		var err error
		if body, err = httpGet(p.PodIP, 80, "/"); err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("web not reachable on its pod IP %s within 5s: %v", p.PodIP, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("manifest → serving on %s in %s", p.PodIP, time.Since(start).Round(time.Millisecond))
	if strings.TrimSpace(body) != "first" {
		t.Fatalf("body = %q, want first", body)
	}
	if p.Namespace != "default" || p.Total != 1 || len(p.Containers) != 1 || p.Containers[0].State != "running" || p.Containers[0].ID == "" {
		t.Fatalf("local view of web: %+v", p)
	}
	sbs := e.sandboxes(p.UID)
	if len(sbs) != 1 || sbs[0].State.String() != "SANDBOX_READY" {
		t.Fatalf("sandboxes of web: %v", sbs)
	}
	if cs := e.containers(p.UID); len(cs) != 1 || cs[0].Id != p.Containers[0].ID || cs[0].State.String() != "CONTAINER_RUNNING" {
		t.Fatalf("containers of web: %v", cs)
	}
	logDir := cri.PodLogDir(e.logsDir, p.Namespace, p.Name, typesUID(p.UID))
	if _, err := os.Stat(filepath.Join(logDir, "httpd", "0.log")); err != nil {
		t.Fatalf("container log: %v", err)
	}
	table := e.podsTable()
	if !strings.Contains(table, "web-"+nodeName) || !strings.Contains(table, "Running") || !strings.Contains(table, "1/1") {
		t.Fatalf("berth pods table:\n%s", table)
	}

	// Edit: a new UID, the old pod gone, the new one serving the new content.
	oldUID, oldNetns, oldLogDir := p.UID, e.netnsPath(sbs[0].Id), logDir
	e.writeManifest("web.yaml", webPod("web", "second"))
	l = e.waitPods("edited web Running", 15*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "web")
		return p != nil && p.UID != oldUID && p.Phase == "Running" && len(l.Pods) == 1
	})
	p = findPod(l, "web")
	waitFor(t, "new content served", 5*time.Second, func() bool {
		b, err := httpGet(p.PodIP, 80, "/")
		return err == nil && strings.TrimSpace(b) == "second"
	})
	assertPodGone(t, e, oldUID, oldLogDir, oldNetns)

	// Delete: everything of the pod goes.
	sbs = e.sandboxes(p.UID)
	uid, netns, logDir := p.UID, e.netnsPath(sbs[0].Id), cri.PodLogDir(e.logsDir, p.Namespace, p.Name, typesUID(p.UID))
	e.removeManifest("web.yaml")
	e.waitPods("no pods", 15*time.Second, func(l agent.PodList) bool { return len(l.Pods) == 0 })
	assertPodGone(t, e, uid, logDir, netns)
}

func assertPodGone(t *testing.T, e *env, uid, logDir, netns string) {
	t.Helper()
	waitFor(t, "pod "+uid+" removed from the runtime", 10*time.Second, func() bool {
		return len(e.sandboxes(uid)) == 0 && len(e.containers(uid)) == 0
	})
	if _, err := os.Stat(logDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log directory %s still there (err %v)", logDir, err)
	}
	if netns == "" {
		t.Errorf("pod %s had no network namespace path", uid)
	} else if _, err := os.Stat(netns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace %s still there (err %v)", netns, err)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestartPolicies: containers that exit are restarted, or not, per restartPolicy, and the pod
// ends in the kubelet's phase.
func TestRestartPolicies(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.writeManifest("always-ok.yaml", shPod("always-ok", "Always", "sleep 0.2; exit 0"))
	e.writeManifest("onfailure-ok.yaml", shPod("onfailure-ok", "OnFailure", "exit 0"))
	e.writeManifest("never-fail.yaml", shPod("never-fail", "Never", "exit 3"))
	e.writeManifest("onfailure-fail.yaml", shPod("onfailure-fail", "OnFailure", "exit 1"))

	e.waitPods("final phases", 20*time.Second, func(l agent.PodList) bool {
		a, s, f, of := findPod(l, "always-ok"), findPod(l, "onfailure-ok"), findPod(l, "never-fail"), findPod(l, "onfailure-fail")
		return a != nil && a.Phase == "Running" && a.Restarts >= 1 &&
			s != nil && s.Phase == "Succeeded" &&
			f != nil && f.Phase == "Failed" &&
			of != nil && of.Phase == "Running" && of.Restarts >= 1
	})
	// Give a wrong restart time to happen, then check nothing restarted what must not restart.
	time.Sleep(2 * time.Second)
	l := e.pods()
	s, f := findPod(l, "onfailure-ok"), findPod(l, "never-fail")
	if s.Restarts != 0 || s.Containers[0].State != "exited" || *s.Containers[0].ExitCode != 0 || s.Containers[0].Reason != "Completed" {
		t.Errorf("OnFailure pod that exited 0: %+v %+v", s, s.Containers[0])
	}
	if f.Restarts != 0 || f.Containers[0].State != "exited" || *f.Containers[0].ExitCode != 3 || f.Containers[0].Reason != "Error" {
		t.Errorf("Never pod that exited 3: %+v %+v", f, f.Containers[0])
	}
	// A terminal pod's sandbox is stopped (its network freed), its container kept for logs.
	if sbs := e.sandboxes(f.UID); len(sbs) != 1 || sbs[0].State.String() != "SANDBOX_NOTREADY" {
		t.Errorf("sandbox of the failed pod: %v", sbs)
	}
	if cs := e.containers(f.UID); len(cs) != 1 {
		t.Errorf("containers of the failed pod: %v", cs)
	}
}

// TestCrashLoopBackOffReal observes the back-off once for real: the first restart comes at once,
// the second only after 10 s, and the local view says CrashLoopBackOff meanwhile. Dead instances
// beyond the newest are removed.
func TestCrashLoopBackOffReal(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.writeManifest("crash.yaml", shPod("crash", "Always", "exit 1"))
	l := e.waitPods("first restart", 10*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "crash")
		return p != nil && p.Restarts >= 1
	})
	uid := findPod(l, "crash").UID
	e.waitPods("CrashLoopBackOff", 10*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "crash")
		return p != nil && p.Restarts == 1 && strings.Contains(p.Error, "CrashLoopBackOff") && strings.Contains(p.Error, "back-off 10s")
	})
	e.waitPods("second restart", 15*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "crash")
		return p != nil && p.Restarts >= 2
	})
	ctx := context.Background()
	byRestart := map[int]int64{} // restart count → started / finished
	finished := map[int]int64{}
	for _, c := range e.containers(uid) {
		st, err := e.rt.ContainerStatus(ctx, c.Id)
		if err != nil {
			t.Fatal(err)
		}
		n := atoi(c.Annotations[cri.AnnotationRestartCount])
		byRestart[n], finished[n] = st.StartedAt, st.FinishedAt
	}
	if _, ok := byRestart[0]; ok && len(byRestart) > 2 {
		t.Errorf("dead instances beyond the newest were not removed: restart counts %v", byRestart)
	}
	gap := time.Duration(byRestart[2] - finished[1])
	t.Logf("second restart came %s after the first restart died", gap.Round(time.Millisecond))
	if gap < 9*time.Second || gap > 14*time.Second {
		t.Errorf("second restart %s after the previous exit, want the 10s back-off", gap)
	}
}

// TestResourceLimits: the manifest's CPU and memory limits are in the container's cgroup, and a
// container over its memory limit is OOMKilled.
func TestResourceLimits(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.writeManifest("limited.yaml", `apiVersion: v1
kind: Pod
metadata: {name: limited}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 250m, memory: 64Mi}
`)
	e.writeManifest("hog.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]
    resources:
      limits: {memory: 32Mi}
`)
	l := e.waitPods("limited Running", 10*time.Second, podRunning("limited"))
	p := findPod(l, "limited")
	pid := e.containerPid(p.Containers[0].ID)
	for file, want := range map[string]string{
		"memory/memory.limit_in_bytes": fmt.Sprint(64 << 20),
		"cpu/cpu.cfs_quota_us":         "25000",
		"cpu/cpu.cfs_period_us":        "100000",
		"cpu/cpu.shares":               "102",
	} {
		if got := readCgroupFile(t, pid, file); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
	l = e.waitPods("hog OOMKilled", 15*time.Second, podPhase("hog", "Failed"))
	h := findPod(l, "hog")
	if c := h.Containers[0]; c.Reason != "OOMKilled" || c.ExitCode == nil || *c.ExitCode != 137 {
		t.Errorf("hog container: %+v (exit %v), want OOMKilled 137", c, c.ExitCode)
	}
}

// readCgroupFile reads controller/file in the v1 cgroup of pid, as the host sees it.
func readCgroupFile(t *testing.T, pid int, file string) string {
	t.Helper()
	controller, name, _ := strings.Cut(file, "/")
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, parts[2], name))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(b))
			}
		}
	}
	t.Fatalf("pid %d has no %s cgroup", pid, controller)
	return ""
}
