package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/cgroups"
	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// statusInput is everything a pod's status is computed from. The computation is a pure function of
// it, so the phase and condition rules are tested as a table.
type statusInput struct {
	pod *v1.Pod
	rt  *podRuntime
	// waiting holds the reasons a container is not running that only the sync knows (back-off,
	// image pull errors, config errors), by "init/<name>" or "app/<name>".
	waiting map[string]*v1.ContainerStateWaiting
	// runtimeName prefixes container IDs ("containerd://…"), as the API shows them.
	runtimeName string
	hostIPs     []string
	startTime   time.Time
	now         time.Time
	// previous is the status computed last time, so that condition transition times only move
	// when a condition changes.
	previous *v1.PodStatus
	// probes has the readiness and startup results of running containers; nil means no probes.
	probes probeResults
}

// probeResults is what status needs of the prober.
type probeResults interface {
	Ready(containerID string) bool
	Started(containerID string) bool
}

func waitingKey(typ, name string) string { return typ + "/" + name }

// computePodStatus derives the API status of a pod from the runtime's state.
func computePodStatus(in statusInput) v1.PodStatus {
	pod := in.pod
	st := v1.PodStatus{
		HostIP:   first(in.hostIPs),
		QOSClass: cgroups.QOSClass(pod),
	}
	for _, ip := range in.hostIPs {
		st.HostIPs = append(st.HostIPs, v1.HostIP{IP: ip})
	}
	if !in.startTime.IsZero() {
		t := metav1.NewTime(in.startTime)
		st.StartTime = &t
	}
	if ss := in.rt.sandboxStatus; ss != nil && ss.Network != nil && ss.Network.Ip != "" {
		st.PodIP = ss.Network.Ip
		st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ss.Network.Ip})
		for _, ip := range ss.Network.AdditionalIps {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip.Ip})
		}
	} else if pod.Spec.HostNetwork && in.rt.sandboxReady() {
		st.PodIP = st.HostIP
		for _, ip := range in.hostIPs {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip})
		}
	}

	// Initialization is done when every regular init container succeeded and every sidecar runs
	// and has started; once app containers exist in the current sandbox it stays done, whatever the
	// sidecars do since.
	appsCreated := false
	if sb := in.rt.currentSandbox(); sb != nil {
		for _, c := range pod.Spec.Containers {
			if in.rt.newestIn(sb.Id, cri.ContainerTypeApp, c.Name) != nil {
				appsCreated = true
			}
		}
	}
	var notInit []string
	for _, c := range pod.Spec.InitContainers {
		cs := containerStatusOf(in, c, cri.ContainerTypeInit)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if isSidecar(&c) {
			if !appsCreated && !(cs.State.Running != nil && cs.Started != nil && *cs.Started) {
				notInit = append(notInit, c.Name)
			}
			continue
		}
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			notInit = append(notInit, c.Name)
		}
	}
	initDone := len(notInit) == 0
	for _, c := range pod.Spec.Containers {
		cs := containerStatusOf(in, c, cri.ContainerTypeApp)
		if !initDone && cs.State.Waiting != nil && cs.State.Waiting.Reason == reasonContainerCreating {
			cs.State.Waiting.Reason = reasonPodInitializing
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	limitTerminationMessages(&st)
	st.Phase = podPhase(pod, st.InitContainerStatuses, st.ContainerStatuses)
	st.Conditions = podConditions(in, &st, notInit)
	return st
}

// Container and pod reasons as the kubelet writes them.
const (
	reasonContainerCreating      = "ContainerCreating"
	reasonPodInitializing        = "PodInitializing"
	reasonCrashLoopBackOff       = "CrashLoopBackOff"
	reasonErrImagePull           = "ErrImagePull"
	reasonImagePullBackOff       = "ImagePullBackOff"
	reasonErrImageNeverPull      = "ErrImageNeverPull"
	reasonCreateContainerConfig  = "CreateContainerConfigError"
	reasonCreateContainerError   = "CreateContainerError"
	reasonRunContainerError      = "RunContainerError"
	reasonCompleted              = "Completed"
	reasonError                  = "Error"
	reasonContainersNotReady     = "ContainersNotReady"
	reasonContainersNotInitiated = "ContainersNotInitialized"
	reasonPodCompleted           = "PodCompleted"
	reasonPostStartHookError     = "PostStartHookError"
)

func containerStatusOf(in statusInput, c v1.Container, typ string) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image}
	insts := in.rt.instances(typ, c.Name)
	waiting := in.waiting[waitingKey(typ, c.Name)]
	f := false
	cs.Started = &f
	if len(insts) == 0 {
		if waiting == nil {
			waiting = &v1.ContainerStateWaiting{Reason: reasonContainerCreating}
		}
		cs.State.Waiting = waiting
		return cs
	}
	cur := insts[0]
	cs.RestartCount = int32(cur.restartCount)
	cs.ContainerID = in.runtimeName + "://" + cur.id
	cs.ImageID = cur.imageRef
	if cur.status != nil && cur.status.ImageRef != "" {
		cs.ImageID = cur.status.ImageRef
	}
	switch {
	case cur.state == runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: nanoTime(cur.status.GetStartedAt())}
		// Readiness and startup come from the probes; with none, a running container is both.
		ready, started := true, true
		if in.probes != nil {
			ready, started = in.probes.Ready(cur.id), in.probes.Started(cur.id)
		}
		cs.Ready = ready && started
		cs.Started = &started
	case cur.exited():
		term := terminatedOf(in.runtimeName, cur)
		if waiting != nil {
			cs.State.Waiting = waiting
			cs.LastTerminationState.Terminated = term
		} else {
			cs.State.Terminated = term
		}
	default: // created, not yet started
		if waiting == nil {
			waiting = &v1.ContainerStateWaiting{Reason: reasonContainerCreating}
		}
		cs.State.Waiting = waiting
	}
	if cs.LastTerminationState.Terminated == nil && len(insts) > 1 && insts[1].exited() {
		cs.LastTerminationState.Terminated = terminatedOf(in.runtimeName, insts[1])
	}
	return cs
}

func terminatedOf(runtimeName string, c *containerRecord) *v1.ContainerStateTerminated {
	t := &v1.ContainerStateTerminated{ContainerID: runtimeName + "://" + c.id, ExitCode: c.exitCode()}
	if s := c.status; s != nil {
		t.StartedAt = nanoTime(s.StartedAt)
		t.FinishedAt = nanoTime(s.FinishedAt)
		t.Reason = s.Reason
		t.Message = s.Message
	}
	if t.Reason == "" {
		t.Reason = reasonError
		if t.ExitCode == 0 {
			t.Reason = reasonCompleted
		}
	}
	return t
}

func nanoTime(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns))
}

// podPhase follows the kubelet's rules: a pod is Pending until its regular init containers have
// all succeeded, its sidecars have started and each app container has started at least once;
// Running while any app container (or sidecar) runs or an app container will be restarted;
// Succeeded when every app container exited 0 and none will be restarted, and no sidecar runs any
// more; Failed when one exited non-zero and will not be restarted (or a regular init container
// failed under restartPolicy Never), once no sidecar runs. Sidecars (init containers with
// restartPolicy Always) are not app containers: a sidecar that exited does not count at all, a
// running one keeps the pod Running. initStatuses are in the order of spec.initContainers.
func podPhase(pod *v1.Pod, initStatuses, statuses []v1.ContainerStatus) v1.PodPhase {
	policy := pod.Spec.RestartPolicy
	sidecar := func(i int) bool {
		return i < len(pod.Spec.InitContainers) && isSidecar(&pod.Spec.InitContainers[i])
	}
	var sidecarsRunning, sidecarsPending int
	for i, cs := range initStatuses {
		if sidecar(i) {
			switch {
			case cs.State.Running != nil:
				sidecarsRunning++
				if cs.Started == nil || !*cs.Started {
					sidecarsPending++
				}
			case cs.State.Terminated != nil, cs.LastTerminationState.Terminated != nil:
				// has run: exited (or waiting to restart), it does not count
			default:
				sidecarsPending++ // never started yet
			}
			continue
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case cs.State.Terminated != nil && policy == v1.RestartPolicyNever:
			return v1.PodFailed
		default:
			return v1.PodPending
		}
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			stopped++ // has run, waits to be restarted
		default:
			waiting++
		}
	}
	switch {
	case sidecarsPending > 0 && running+stopped == 0:
		return v1.PodPending // still initializing: a sidecar has not started
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		if policy == v1.RestartPolicyAlways {
			return v1.PodRunning
		}
		if sidecarsRunning > 0 {
			return v1.PodRunning // the apps are done; the sidecars are being stopped
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if policy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning // OnFailure: the failed ones will be restarted
	}
	return v1.PodPending
}

func podConditions(in statusInput, st *v1.PodStatus, notInit []string) []v1.PodCondition {
	terminal := st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed
	initDone := len(notInit) == 0
	// Sidecars count for readiness, as app containers do.
	var notReady []string
	for i, cs := range st.InitContainerStatuses {
		if i < len(in.pod.Spec.InitContainers) && isSidecar(&in.pod.Spec.InitContainers[i]) && !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	conds := []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, in.rt.sandboxReady() && (st.PodIP != "" || in.pod.Spec.HostNetwork), "", ""),
		cond(v1.PodInitialized, initDone, reasonContainersNotInitiated, fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " "))),
		cond(v1.ContainersReady, len(notReady) == 0 && !terminal, reasonContainersNotReady, fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))),
		cond(v1.PodReady, len(notReady) == 0 && !terminal, reasonContainersNotReady, fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))),
		cond(v1.PodScheduled, true, "", ""),
	}
	if terminal {
		for i := range conds {
			if conds[i].Type == v1.PodReady || conds[i].Type == v1.ContainersReady {
				conds[i].Reason, conds[i].Message = reasonPodCompleted, ""
			}
		}
	}
	now := metav1.NewTime(in.now)
	for i := range conds {
		conds[i].LastTransitionTime = now
		if in.previous != nil {
			for _, p := range in.previous.Conditions {
				if p.Type == conds[i].Type && p.Status == conds[i].Status {
					conds[i].LastTransitionTime = p.LastTransitionTime
				}
			}
		}
	}
	return conds
}

func cond(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
	if ok {
		return v1.PodCondition{Type: t, Status: v1.ConditionTrue}
	}
	return v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason, Message: msg}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// podIsTerminal reports whether a pod has reached Succeeded or Failed.
func podIsTerminal(st *v1.PodStatus) bool {
	return st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed
}
