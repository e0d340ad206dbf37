package agent

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	}{
		{"nothing started yet", always, nil, cs(waiting), v1.PodPending},
		{"one of two started", always, nil, cs(running, waiting), v1.PodPending},
		{"all running", always, nil, cs(running, running), v1.PodRunning},
		{"running and exited 0, Always", always, nil, cs(running, exited0), v1.PodRunning},
		{"all exited 0, Always: will restart", always, nil, cs(exited0, exited0), v1.PodRunning},
		{"crash looping, Always", always, nil, cs(crashLoop), v1.PodRunning},
		{"all exited 0, OnFailure", onFailure, nil, cs(exited0, exited0), v1.PodSucceeded},
		{"one failed, OnFailure: will restart", onFailure, nil, cs(exited0, exited1), v1.PodRunning},
		{"crash looping, OnFailure", onFailure, nil, cs(crashLoop), v1.PodRunning},
		{"all exited 0, Never", never, nil, cs(exited0), v1.PodSucceeded},
		{"one failed, Never", never, nil, cs(exited0, exited1), v1.PodFailed},
		{"running and failed, Never", never, nil, cs(running, exited1), v1.PodRunning},
		{"init running", always, cs(initRuns), cs(waiting), v1.PodPending},
		{"init done, apps running", always, cs(exited0), cs(running), v1.PodRunning},
		{"second init waiting", always, cs(exited0, waiting), cs(waiting), v1.PodPending},
		{"init failed, Never", never, cs(initFailed), cs(waiting), v1.PodFailed},
		{"init failed, OnFailure: will retry", onFailure, cs(initFailed), cs(waiting), v1.PodPending},
		{"init failed, Always: will retry", always, cs(initFailed), cs(waiting), v1.PodPending},
		{"no containers", always, nil, nil, v1.PodPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: tt.policy}}
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
