//go:build integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/systemd"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// systemdNS is a real systemd (with dbus and logind) in namespaces of its own (test/env/systemd-ns.sh).
type systemdNS struct {
	t   *testing.T
	dir string
	pid int
	bus string // DBUS_SYSTEM_BUS_ADDRESS
}

func startSystemdNS(t *testing.T) *systemdNS {
	t.Helper()
	script, err := filepath.Abs("../env/systemd-ns.sh")
	if err != nil {
		t.Fatal(err)
	}
	// Under /run (not /tmp): the namespace mounts a tmpfs of its own on /tmp.
	dir, err := os.MkdirTemp("/run", "berth-sdns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("systemd-ns.sh down: %v\n%s", err, out)
		}
		if t.Failed() {
			t.Logf("systemd's console log: %s/systemd.log", dir)
			return
		}
		os.RemoveAll(dir)
	})
	out, err := exec.Command(script, "up", dir).Output()
	if err != nil {
		t.Fatalf("systemd-ns.sh up: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "pid")))))
	if err != nil {
		t.Fatal(err)
	}
	return &systemdNS{t: t, dir: dir, pid: pid, bus: "unix:path=" + lines[len(lines)-1]}
}

// run runs a command in the namespace's PID namespace (logind takes calls that change state only
// from processes it can see), with the bus address set.
func (s *systemdNS) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(s.pid), "--pid", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.bus)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestGracefulNodeShutdown: Berth (cluster mode, inside the PID namespace of a real systemd)
// holds a logind delay inhibitor lock; a power-off through logind makes it mark the Node NotReady
// ("node is shutting down"), stop the regular pod within shutdownGracePeriod −
// shutdownGracePeriodCriticalPods, then the critical one within shutdownGracePeriodCriticalPods,
// each reported Failed with the kubelet's reason, message and DisruptionTarget condition; then
// logind goes on with the power-off (which ends that namespace only). Also: Berth's way of raising
// logind's InhibitDelayMaxSec (a drop-in and a reload) against the real logind.
func TestGracefulNodeShutdown(t *testing.T) {
	ns := startSystemdNS(t)

	t.Run("inhibit-delay", func(t *testing.T) {
		os.Setenv("DBUS_SYSTEM_BUS_ADDRESS", ns.bus)
		defer os.Unsetenv("DBUS_SYSTEM_BUS_ADDRESS")
		l, err := systemd.ConnectLogind()
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if d, err := l.InhibitDelayMax(); err != nil || d != 5*time.Second {
			t.Fatalf("logind's default InhibitDelayMaxSec: %v %v, want 5s", d, err)
		}
		// The namespace's /etc (an overlay: nothing reaches the host's), seen from here.
		dropIns := filepath.Join("/proc", strconv.Itoa(ns.pid), "root/etc/systemd/logind.conf.d")
		got, err := l.EnsureInhibitDelay(dropIns, 9*time.Second)
		if err != nil || got != 9*time.Second {
			t.Fatalf("EnsureInhibitDelay(9s): %v %v", got, err)
		}
		if b := string(mustRead(t, filepath.Join(dropIns, "99-berth.conf"))); !strings.Contains(b, "[Login]\nInhibitDelayMaxSec=9\n") {
			t.Errorf("drop-in: %q", b)
		}
		// Back to the default, for the shutdown below: 4 s of grace fit in logind's 5 s.
		os.Remove(filepath.Join(dropIns, "99-berth.conf"))
		if err := l.ReloadLogind(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "InhibitDelayMaxSec back to 5s", 5*time.Second, func() bool { d, _ := l.InhibitDelayMax(); return d == 5*time.Second })
	})

	c := newCluster(t)
	c.serveNode()
	c.addConfig("shutdownGracePeriod: 4s\nshutdownGracePeriodCriticalPods: 2s\n")
	c.wrap = []string{"nsenter", "-t", strconv.Itoa(ns.pid), "--pid", "--"}
	c.wrapEnv = []string{"DBUS_SYSTEM_BUS_ADDRESS=" + ns.bus}
	// Both ignore SIGTERM: each is killed at its group's grace, not its own 30 s.
	ignoreTerm := `trap "" TERM; echo up; while true; do sleep 0.1; done`
	c.writeManifest("critical.yaml", `apiVersion: v1
kind: Pod
metadata: {name: critical}
spec:
  priorityClassName: system-node-critical
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", `+strconv.Quote(ignoreTerm)+`]
`)
	c.start("--node-ip", "127.0.0.1")
	c.waitNodeReady(10 * time.Second)
	regular := apiPod("regular", "Always", "sh", "-c", ignoreTerm)
	thirty := int64(30)
	regular.Spec.TerminationGracePeriodSeconds = &thirty
	c.create(regular)
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
	c.waitPod("regular", "Running", 30*time.Second, running)
	c.waitPod("critical-"+clusterNode, "Running", 30*time.Second, running)
	waitFor(t, "Berth's delay lock", 10*time.Second, func() bool {
		out := ns.run("busctl", "call", "org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "ListInhibitors")
		return strings.Contains(out, `"shutdown" "berth"`) && strings.Contains(out, `"delay"`)
	})

	// Watch the Node and the pods from now on.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodeWatch, err := c.admin.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + clusterNode})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeWatch.Stop()

	start := time.Now()
	ns.run("busctl", "call", "org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "PowerOff", "b", "false")

	var notReadyAfter time.Duration
	for ev := range nodeWatch.ResultChan() {
		n, ok := ev.Object.(*v1.Node)
		if !ok {
			continue
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == v1.NodeReady && cond.Status == v1.ConditionFalse {
				if cond.Reason != "KubeletNotReady" || !strings.Contains(cond.Message, "node is shutting down") {
					t.Errorf("Ready condition: %s %q", cond.Reason, cond.Message)
				}
				notReadyAfter = time.Since(start)
			}
		}
		if notReadyAfter > 0 {
			break
		}
	}
	if notReadyAfter == 0 || notReadyAfter > 2*time.Second {
		t.Errorf("Node NotReady %s after the power-off, want within 2 s", notReadyAfter)
	}

	// The pods' statuses, as Berth wrote them.
	for _, name := range []string{"regular", "critical-" + clusterNode} {
		p := c.waitPod(name, "Failed", 10*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if p.Status.Reason != "Terminated" || p.Status.Message != "Pod was terminated in response to imminent node shutdown." {
			t.Errorf("%s: reason %q message %q", name, p.Status.Reason, p.Status.Message)
		}
		found := false
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.DisruptionTarget && cond.Status == v1.ConditionTrue && cond.Reason == "TerminationByKubelet" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no DisruptionTarget condition: %+v", name, p.Status.Conditions)
		}
	}

	// The containers, from the runtime: regular killed ~2 s after the power-off, critical ~2 s
	// after that.
	finished := func(uid string) time.Time {
		var at time.Time
		waitFor(t, "the container of "+uid+" stopped", 15*time.Second, func() bool {
			for _, ct := range c.containers(uid) {
				st, err := c.rt.ContainerStatus(context.Background(), ct.Id)
				if err == nil && st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
					at = time.Unix(0, st.FinishedAt)
					return true
				}
			}
			return false
		})
		return at
	}
	regularDone := finished(string(c.get("regular").UID))
	critical := c.get("critical-" + clusterNode)
	criticalDone := finished(critical.Annotations["kubernetes.io/config.mirror"])
	r, cr := regularDone.Sub(start), criticalDone.Sub(regularDone)
	t.Logf("regular pod's container stopped %s after the power-off, the critical one %s after it", r, cr)
	if r < 1500*time.Millisecond || r > 3500*time.Millisecond {
		t.Errorf("regular pod stopped %s after the power-off, want about 2 s (4s − 2s)", r)
	}
	if cr < 1500*time.Millisecond || cr > 3500*time.Millisecond {
		t.Errorf("critical pod stopped %s after the regular one, want about 2 s", cr)
	}
	// logind goes on with the power-off once the lock is released: the namespace ends, Berth with it.
	select {
	case <-c.procDone:
	case <-time.After(20 * time.Second):
		t.Errorf("Berth still runs 20 s after the power-off: the namespace did not go down")
		c.signal(syscall.SIGQUIT) // its goroutines' stacks, in its log
	}
}
