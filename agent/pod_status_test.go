package agent

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// Shorthands for container states in the phase table.
var (
	running    = v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
	waiting    = v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	exited0    = v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}}}
	exited1    = v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}}}
	crashLoop  = v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}}}
	initRuns   = running
	initFailed = exited1

	// Sidecar states: running and started (no startup probe, or it passed), running with its
	// startup probe pending, and restarting (waiting after an exit).
	sidecarUp       = v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}, Started: ptr.To(true)}
	sidecarStarting = v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}, Started: ptr.To(false)}
	sidecarStopped  = v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 143}}}
)

func TestPodPhase(t *testing.T) {
	const (
		always    = v1.RestartPolicyAlways
		onFailure = v1.RestartPolicyOnFailure
		never     = v1.RestartPolicyNever
	)
	cs := func(s ...v1.ContainerStatus) []v1.ContainerStatus { return s }
	tests := []struct {
		name   string
		policy v1.RestartPolicy
		init   []v1.ContainerStatus
		apps   []v1.ContainerStatus
		want   v1.PodPhase
		// sidecars lists the init containers (by index) that are sidecars (restartPolicy Always).
		sidecars []int
	}{
		{"nothing started yet", always, nil, cs(waiting), v1.PodPending, nil},
		{"one of two started", always, nil, cs(running, waiting), v1.PodPending, nil},
		{"all running", always, nil, cs(running, running), v1.PodRunning, nil},
		{"running and exited 0, Always", always, nil, cs(running, exited0), v1.PodRunning, nil},
		{"all exited 0, Always: will restart", always, nil, cs(exited0, exited0), v1.PodRunning, nil},
		{"crash looping, Always", always, nil, cs(crashLoop), v1.PodRunning, nil},
		{"all exited 0, OnFailure", onFailure, nil, cs(exited0, exited0), v1.PodSucceeded, nil},
		{"one failed, OnFailure: will restart", onFailure, nil, cs(exited0, exited1), v1.PodRunning, nil},
		{"crash looping, OnFailure", onFailure, nil, cs(crashLoop), v1.PodRunning, nil},
		{"all exited 0, Never", never, nil, cs(exited0), v1.PodSucceeded, nil},
		{"one failed, Never", never, nil, cs(exited0, exited1), v1.PodFailed, nil},
		{"running and failed, Never", never, nil, cs(running, exited1), v1.PodRunning, nil},
		{"init running", always, cs(initRuns), cs(waiting), v1.PodPending, nil},
		{"init done, apps running", always, cs(exited0), cs(running), v1.PodRunning, nil},
		{"second init waiting", always, cs(exited0, waiting), cs(waiting), v1.PodPending, nil},
		{"init failed, Never", never, cs(initFailed), cs(waiting), v1.PodFailed, nil},
		{"init failed, OnFailure: will retry", onFailure, cs(initFailed), cs(waiting), v1.PodPending, nil},
		{"init failed, Always: will retry", always, cs(initFailed), cs(waiting), v1.PodPending, nil},
		{"no containers", always, nil, nil, v1.PodPending, nil},

		// Sidecars: they must have started before initialization goes on, they do not count as app
		// containers, a running one keeps the pod Running, an exited one does not count at all.
		{"sidecar not started yet", always, cs(waiting), cs(waiting), v1.PodPending, []int{0}},
		{"sidecar running, startup probe pending", always, cs(sidecarStarting), cs(waiting), v1.PodPending, []int{0}},
		{"sidecar started, next init running", always, cs(sidecarUp, initRuns), cs(waiting), v1.PodPending, []int{0}},
		{"sidecar started, apps not yet", always, cs(sidecarUp), cs(waiting), v1.PodPending, []int{0}},
		{"sidecar crash-looping during init", always, cs(crashLoop), cs(waiting), v1.PodPending, []int{0}},
		{"regular init failed after a sidecar, Never", never, cs(sidecarUp, initFailed), cs(waiting), v1.PodFailed, []int{0}},
		{"sidecar and app running", always, cs(sidecarUp), cs(running), v1.PodRunning, []int{0}},
		{"sidecar restarting beside the app", always, cs(crashLoop), cs(running), v1.PodRunning, []int{0}},
		{"sidecar restarted, startup probe pending, app running", always, cs(sidecarStarting), cs(running), v1.PodRunning, []int{0}},
		{"sidecar only running, app exited 0, Always: will restart", always, cs(sidecarUp), cs(exited0), v1.PodRunning, []int{0}},
		{"Job: app done, sidecar still running, Never", never, cs(sidecarUp), cs(exited0), v1.PodRunning, []int{0}},
		{"Job: app done, sidecar stopped, Never", never, cs(sidecarStopped), cs(exited0), v1.PodSucceeded, []int{0}},
		{"Job: app done, two sidecars, one still running", never, cs(sidecarStopped, sidecarUp), cs(exited0), v1.PodRunning, []int{0, 1}},
		{"Job: app done, sidecar stopped, OnFailure", onFailure, cs(sidecarStopped), cs(exited0), v1.PodSucceeded, []int{0}},
		{"Job: app failed, sidecar still running, Never", never, cs(sidecarUp), cs(exited1), v1.PodRunning, []int{0}},
		{"Job: app failed, sidecar stopped, Never", never, cs(sidecarStopped), cs(exited1), v1.PodFailed, []int{0}},
		{"Job: app failed, OnFailure: will restart", onFailure, cs(sidecarStopped), cs(exited1), v1.PodRunning, []int{0}},
		{"sidecar with a regular init before it", always, cs(exited0, sidecarUp), cs(running), v1.PodRunning, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: tt.policy}}
			for i := range tt.init {
				c := v1.Container{Name: fmt.Sprintf("init%d", i)}
				if slices.Contains(tt.sidecars, i) {
					c.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
				}
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
			}
			if got := podPhase(pod, tt.init, tt.apps); got != tt.want {
				t.Errorf("phase = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestComputePodStatusFromRuntime checks the status built from runtime records: container states,
// restart counts, lastState, reasons, IPs and conditions.
func TestComputePodStatusFromRuntime(t *testing.T) {
	now := time.Unix(2_000_000, 0)
	pod := &v1.Pod{Spec: v1.PodSpec{
		RestartPolicy: v1.RestartPolicyAlways,
		Containers:    []v1.Container{{Name: "web", Image: "busybox"}, {Name: "crash", Image: "busybox"}, {Name: "new", Image: "busybox"}},
	}}
	ns := func(s int64) int64 { return now.Add(time.Duration(s) * time.Second).UnixNano() }
	rt := &podRuntime{
		sandboxes:     []*runtimeapi.PodSandbox{{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_READY}},
		sandboxStatus: &runtimeapi.PodSandboxStatus{Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.1.2.3"}},
		containers: []*containerRecord{
			{id: "w0", name: "web", typ: cri.ContainerTypeApp, sandboxID: "sb", state: runtimeapi.ContainerState_CONTAINER_RUNNING,
				status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: ns(-10), ImageRef: "sha256:abc"}},
			{id: "c2", name: "crash", typ: cri.ContainerTypeApp, sandboxID: "sb", restartCount: 2, state: runtimeapi.ContainerState_CONTAINER_EXITED,
				status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: 137, Reason: "OOMKilled", StartedAt: ns(-5), FinishedAt: ns(-4)}},
			{id: "c1", name: "crash", typ: cri.ContainerTypeApp, sandboxID: "sb", restartCount: 1, state: runtimeapi.ContainerState_CONTAINER_EXITED},
		},
	}
	waiting := map[string]*v1.ContainerStateWaiting{
		waitingKey(cri.ContainerTypeApp, "crash"): {Reason: reasonCrashLoopBackOff, Message: "back-off 20s"},
		waitingKey(cri.ContainerTypeApp, "new"):   {Reason: reasonErrImagePull, Message: "no such image"},
	}
	st := computePodStatus(statusInput{pod: pod, rt: rt, waiting: waiting, runtimeName: "containerd", hostIPs: []string{"192.0.2.1"}, startTime: now.Add(-time.Minute), now: now})

	if st.Phase != v1.PodPending || st.PodIP != "10.1.2.3" || st.HostIP != "192.0.2.1" || st.QOSClass != v1.PodQOSBestEffort {
		t.Errorf("pod: phase %s podIP %s hostIP %s qos %s", st.Phase, st.PodIP, st.HostIP, st.QOSClass)
	}
	web, crash, fresh := st.ContainerStatuses[0], st.ContainerStatuses[1], st.ContainerStatuses[2]
	if web.State.Running == nil || !web.Ready || web.ContainerID != "containerd://w0" || web.ImageID != "sha256:abc" || !*web.Started {
		t.Errorf("web: %+v", web)
	}
	if crash.State.Waiting == nil || crash.State.Waiting.Reason != reasonCrashLoopBackOff || crash.RestartCount != 2 ||
		crash.LastTerminationState.Terminated == nil || crash.LastTerminationState.Terminated.Reason != "OOMKilled" ||
		crash.LastTerminationState.Terminated.ExitCode != 137 || crash.Ready {
		t.Errorf("crash: %+v", crash)
	}
	if fresh.State.Waiting == nil || fresh.State.Waiting.Reason != reasonErrImagePull || fresh.ContainerID != "" {
		t.Errorf("new: %+v", fresh)
	}
	want := map[v1.PodConditionType]v1.ConditionStatus{
		v1.PodReadyToStartContainers: v1.ConditionTrue, v1.PodInitialized: v1.ConditionTrue,
		v1.ContainersReady: v1.ConditionFalse, v1.PodReady: v1.ConditionFalse, v1.PodScheduled: v1.ConditionTrue,
	}
	for _, c := range st.Conditions {
		if want[c.Type] != c.Status {
			t.Errorf("condition %s = %s, want %s", c.Type, c.Status, want[c.Type])
		}
		if c.Type == v1.PodReady && c.Message != "containers with unready status: [crash new]" {
			t.Errorf("Ready message %q", c.Message)
		}
	}

	// Transition times only move when a condition changes.
	later := now.Add(time.Minute)
	st2 := computePodStatus(statusInput{pod: pod, rt: rt, waiting: waiting, runtimeName: "containerd", now: later, previous: &st})
	for _, c := range st2.Conditions {
		if !c.LastTransitionTime.Time.Equal(now) {
			t.Errorf("condition %s moved to %v with no change", c.Type, c.LastTransitionTime)
		}
	}
}

func TestComputePodStatusExitedWithoutRestart(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyNever, Containers: []v1.Container{{Name: "job"}}}}
	rt := &podRuntime{
		sandboxes: []*runtimeapi.PodSandbox{{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}},
		containers: []*containerRecord{{id: "j", name: "job", typ: cri.ContainerTypeApp, sandboxID: "sb", state: runtimeapi.ContainerState_CONTAINER_EXITED,
			status: &runtimeapi.ContainerStatus{ExitCode: 0}}},
	}
	st := computePodStatus(statusInput{pod: pod, rt: rt, runtimeName: "containerd", now: time.Now()})
	if st.Phase != v1.PodSucceeded {
		t.Fatalf("phase %s", st.Phase)
	}
	if term := st.ContainerStatuses[0].State.Terminated; term == nil || term.Reason != reasonCompleted {
		t.Errorf("terminated %+v", term)
	}
	for _, c := range st.Conditions {
		if c.Type == v1.PodReady && (c.Status != v1.ConditionFalse || c.Reason != reasonPodCompleted) {
			t.Errorf("Ready condition of a completed pod: %+v", c)
		}
	}
}

// fakeProbes answers Ready and Started from sets of container IDs.
type fakeProbes struct{ notReady, notStarted map[string]bool }

func (f fakeProbes) Ready(id string) bool   { return !f.notReady[id] && !f.notStarted[id] }
func (f fakeProbes) Started(id string) bool { return !f.notStarted[id] }

// TestComputePodStatusWithSidecar: a sidecar is an init container in status, counts for readiness
// (ContainersReady, Ready), and the pod is initialized once it has started; a sidecar whose startup
// probe has not passed keeps the app containers at PodInitializing.
func TestComputePodStatusWithSidecar(t *testing.T) {
	now := time.Unix(2_000_000, 0)
	pod := &v1.Pod{Spec: v1.PodSpec{
		RestartPolicy:  v1.RestartPolicyAlways,
		InitContainers: []v1.Container{{Name: "proxy", RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways)}},
		Containers:     []v1.Container{{Name: "web"}},
	}}
	runningRec := func(id, name, typ string) *containerRecord {
		return &containerRecord{id: id, name: name, typ: typ, sandboxID: "sb", state: runtimeapi.ContainerState_CONTAINER_RUNNING,
			status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: now.UnixNano()}}
	}
	sandbox := []*runtimeapi.PodSandbox{{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_READY}}
	conds := func(st v1.PodStatus) map[v1.PodConditionType]v1.PodCondition {
		m := map[v1.PodConditionType]v1.PodCondition{}
		for _, c := range st.Conditions {
			m[c.Type] = c
		}
		return m
	}

	// Initializing: the sidecar runs, its startup probe has not passed.
	rt := &podRuntime{sandboxes: sandbox, containers: []*containerRecord{runningRec("p0", "proxy", cri.ContainerTypeInit)}}
	st := computePodStatus(statusInput{pod: pod, rt: rt, runtimeName: "containerd", now: now, probes: fakeProbes{notStarted: map[string]bool{"p0": true}}})
	if st.Phase != v1.PodPending || st.ContainerStatuses[0].State.Waiting.Reason != reasonPodInitializing {
		t.Errorf("initializing: phase %s, app %+v", st.Phase, st.ContainerStatuses[0].State)
	}
	if c := conds(st)[v1.PodInitialized]; c.Status != v1.ConditionFalse || c.Message != "containers with incomplete status: [proxy]" {
		t.Errorf("initializing: Initialized %+v", c)
	}

	// Running beside the app, not ready: the pod is not ready.
	rt.containers = append(rt.containers, runningRec("w0", "web", cri.ContainerTypeApp))
	st = computePodStatus(statusInput{pod: pod, rt: rt, runtimeName: "containerd", now: now, probes: fakeProbes{notReady: map[string]bool{"p0": true}}})
	if st.Phase != v1.PodRunning || conds(st)[v1.PodInitialized].Status != v1.ConditionTrue {
		t.Errorf("running: phase %s, conditions %+v", st.Phase, st.Conditions)
	}
	if c := conds(st)[v1.ContainersReady]; c.Status != v1.ConditionFalse || c.Message != "containers with unready status: [proxy]" {
		t.Errorf("unready sidecar: ContainersReady %+v", c)
	}
	if !*st.InitContainerStatuses[0].Started || st.InitContainerStatuses[0].Ready {
		t.Errorf("sidecar status %+v", st.InitContainerStatuses[0])
	}

	// Ready.
	st = computePodStatus(statusInput{pod: pod, rt: rt, runtimeName: "containerd", now: now, probes: fakeProbes{}})
	if c := conds(st)[v1.PodReady]; c.Status != v1.ConditionTrue {
		t.Errorf("ready: Ready %+v", c)
	}
}

// TestTerminationMessagesShareTheBudget: with many containers, each message is cut to its share of
// 12 KiB.
func TestTerminationMessagesShareTheBudget(t *testing.T) {
	st := v1.PodStatus{}
	long := strings.Repeat("x", 4096)
	for i := range 6 {
		st.ContainerStatuses = append(st.ContainerStatuses, v1.ContainerStatus{Name: fmt.Sprint(i),
			State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{Message: long}}})
	}
	limitTerminationMessages(&st)
	for _, cs := range st.ContainerStatuses {
		if n := len(cs.State.Terminated.Message); n != 2048 {
			t.Errorf("message of %s: %d bytes, want 2048", cs.Name, n)
		}
	}
}
