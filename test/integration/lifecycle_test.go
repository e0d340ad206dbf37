//go:build integration

package integration

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerByName finds a pod's newest instance of a container in the runtime.
func (e *env) containerByName(uid, name string) *runtimeapi.Container {
	e.t.Helper()
	var best *runtimeapi.Container
	for _, c := range e.containers(uid) {
		if c.Labels["io.kubernetes.container.name"] == name && (best == nil || c.CreatedAt > best.CreatedAt) {
			best = c
		}
	}
	return best
}

func (e *env) status(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	st, err := e.rt.ContainerStatus(context.Background(), id)
	if err != nil {
		e.t.Fatalf("status of %s: %v", id, err)
	}
	return st
}

// TestPreStopAndGracePeriod: on deletion the preStop hook runs first (its file is seen while the
// container still runs), and a process that ignores SIGTERM is killed when the grace period ends.
func TestPreStopAndGracePeriod(t *testing.T) {
	e := newEnv(t)
	e.writeManifest("stubborn.yaml", `apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 4
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "echo ran > /tmp/prestop"]}
`)
	e.start()
	l := e.waitPods("running", 10*time.Second, podRunning("stubborn"))
	p := findPod(l, "stubborn")
	id := p.Containers[0].ID

	deleted := time.Now()
	e.removeManifest("stubborn.yaml")
	var sawHook bool
	var finished int64
	deadline := time.Now().Add(15 * time.Second)
	for finished == 0 && time.Now().Before(deadline) {
		st, err := e.rt.ContainerStatus(context.Background(), id)
		if err != nil {
			break // removed: the loop below reports what it saw
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_RUNNING && !sawHook {
			out, _, code, err := e.rt.ExecSync(context.Background(), id, []string{"cat", "/tmp/prestop"}, 2*time.Second)
			sawHook = err == nil && code == 0 && strings.TrimSpace(string(out)) == "ran"
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			finished = st.FinishedAt
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawHook {
		t.Error("the preStop hook's file was not seen while the container still ran")
	}
	if finished == 0 {
		t.Fatal("never saw the container exited")
	}
	took := time.Unix(0, finished).Sub(deleted)
	t.Logf("SIGTERM-ignoring container killed %s after the deletion (grace 4s)", took.Round(time.Millisecond))
	if took < 3*time.Second || took > 5*time.Second {
		t.Errorf("killed after %s, want the 4s grace period ±1s", took)
	}
}

// TestPostStartFailure: a failing postStart hook kills the container, which the restart policy
// then restarts (Always) or leaves failed (Never).
func TestPostStartFailure(t *testing.T) {
	e := newEnv(t)
	hook := `
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo hook says no; exit 3"]}
`
	e.writeManifest("always.yaml", shPod("hook-always", "Always", "exec sleep 3600")+hook)
	e.writeManifest("never.yaml", shPod("hook-never", "Never", "exec sleep 3600")+hook)
	e.start()
	e.waitPods("hook-always restarted, hook-never failed", 20*time.Second, func(l agent.PodList) bool {
		a, n := findPod(l, "hook-always"), findPod(l, "hook-never")
		return a != nil && a.Restarts >= 1 && n != nil && n.Phase == "Failed" && n.Restarts == 0
	})
	if log := string(mustRead(t, e.logPath)); !strings.Contains(log, "hook says no") {
		t.Errorf("the log does not carry the hook's output")
	}
}

// TestInitContainersReal: init containers run one at a time, in order, before the app; a failing
// init container fails a Never pod and never starts its app.
func TestInitContainersReal(t *testing.T) {
	e := newEnv(t)
	e.writeManifest("ordered.yaml", `apiVersion: v1
kind: Pod
metadata: {name: ordered}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: first, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: ["sleep", "1"]}
  - {name: second, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: ["sleep", "1"]}
  containers:
  - {name: app, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
`)
	e.writeManifest("broken-init.yaml", `apiVersion: v1
kind: Pod
metadata: {name: broken-init}
spec:
  restartPolicy: Never
  initContainers:
  - {name: fails, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: ["sh", "-c", "exit 7"]}
  containers:
  - {name: app, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
`)
	e.start()
	l := e.waitPods("ordered Running, broken-init Failed", 20*time.Second, func(l agent.PodList) bool {
		o, b := findPod(l, "ordered"), findPod(l, "broken-init")
		return o != nil && o.Phase == "Running" && o.Ready == 1 && b != nil && b.Phase == "Failed"
	})
	uid := findPod(l, "ordered").UID
	first, second, app := e.status(e.containerByName(uid, "first").Id), e.status(e.containerByName(uid, "second").Id), e.status(e.containerByName(uid, "app").Id)
	if !(first.FinishedAt <= second.StartedAt && second.FinishedAt <= app.StartedAt) || first.ExitCode != 0 || second.ExitCode != 0 {
		t.Errorf("order: first %d–%d, second %d–%d, app from %d", first.StartedAt, first.FinishedAt, second.StartedAt, second.FinishedAt, app.StartedAt)
	}
	b := findPod(l, "broken-init")
	if c := e.containerByName(b.UID, "app"); c != nil {
		t.Errorf("the app of a pod whose init container failed was created: %v", c)
	}
}

// TestSidecarsReal: a sidecar keeps running beside the app and is restarted when it dies while the
// app runs on; a Job-like pod with a sidecar reaches Succeeded with its sidecar stopped; on deletion
// the app is stopped before the sidecar.
func TestSidecarsReal(t *testing.T) {
	e := newEnv(t)
	sidecarPod := func(name, policy, app string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  restartPolicy: ` + policy + `
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: sidecar
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
  containers:
  - name: app
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "` + app + `"]
`
	}
	e.writeManifest("service.yaml", sidecarPod("service", "Always", "trap 'exit 0' TERM; while true; do sleep 1; done"))
	e.writeManifest("job.yaml", sidecarPod("job", "Never", "sleep 4; exit 0"))
	e.start()
	l := e.waitPods("service Running", 15*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "service")
		return p != nil && p.Phase == "Running" && p.Ready == p.Total
	})
	svc := findPod(l, "service")

	// The sidecar dies (SIGKILL from the host): it is restarted, the app is not.
	side := e.containerByName(svc.UID, "sidecar")
	appID := e.containerByName(svc.UID, "app").Id
	if err := syscall.Kill(e.containerPid(side.Id), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitPods("sidecar restarted", 15*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "service")
		for _, c := range p.Containers {
			if c.Name == "sidecar" && (c.Restarts < 1 || c.State != "running") {
				return false
			}
		}
		return p.Phase == "Running"
	})
	if now := e.containerByName(svc.UID, "app"); now.Id != appID || now.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the app was disturbed by its sidecar's restart")
	}

	// The Job-like pod: the app completes, the pod Succeeds, the sidecar is stopped.
	l = e.waitPods("job Succeeded", 20*time.Second, podPhase("job", "Succeeded"))
	for _, c := range findPod(l, "job").Containers {
		if c.State != "exited" {
			t.Errorf("job container %s is %s after the pod succeeded", c.Name, c.State)
		}
	}

	// Deletion: the app stops before the sidecar.
	sideID := e.containerByName(svc.UID, "sidecar").Id
	e.removeManifest("service.yaml")
	var appDone, sideDone int64
	waitFor(t, "both stopped", 20*time.Second, func() bool {
		for id, done := range map[string]*int64{appID: &appDone, sideID: &sideDone} {
			if st, err := e.rt.ContainerStatus(context.Background(), id); err == nil && st.FinishedAt != 0 {
				*done = st.FinishedAt
			}
		}
		return appDone != 0 && sideDone != 0 || len(e.sandboxes(svc.UID)) == 0
	})
	if appDone == 0 || sideDone == 0 {
		t.Fatalf("did not see both containers exit before the pod was removed (app %d, sidecar %d)", appDone, sideDone)
	}
	if appDone > sideDone {
		t.Errorf("the sidecar stopped %s before the app", time.Duration(appDone-sideDone))
	}
}
