package agent

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

// PodList is the local view of the node that `berth pods` prints and <rootDir>/berth.sock serves at
// GET /pods. Its JSON form is a stable interface: fields are only ever added.
type PodList struct {
	Pods           []PodView       `json:"pods"`
	ManifestErrors []ManifestError `json:"manifestErrors"`
}

// PodView is one pod at pod level, like a line of `crictl pods` with phase, readiness, restarts and
// the last error.
type PodView struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	Phase     string `json:"phase"`
	// Ready and Total count app containers and sidecars (init containers with restartPolicy
	// Always), as kubectl's READY column does.
	Ready    int `json:"ready"`
	Total    int `json:"total"`
	Restarts int `json:"restarts"`
	// Error is the last error that keeps the pod from its spec, "" when none.
	Error      string          `json:"error"`
	StartTime  *time.Time      `json:"startTime,omitempty"`
	PodIP      string          `json:"podIP,omitempty"`
	Containers []ContainerView `json:"containers"`
}

// ContainerView is one container of a pod (init containers included, marked Init).
type ContainerView struct {
	Name string `json:"name"`
	// ID is the CRI container ID of the newest instance, "" before the first one is created.
	ID string `json:"id"`
	// State is running, waiting or exited.
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	ExitCode *int32 `json:"exitCode,omitempty"`
	Restarts int    `json:"restarts"`
	Init     bool   `json:"init,omitempty"`
}

func viewOf(r *podRecord) PodView {
	st := r.status
	v := PodView{
		Name:       r.pod.Name,
		Namespace:  r.pod.Namespace,
		UID:        string(r.pod.UID),
		Phase:      string(st.Phase),
		Total:      len(r.pod.Spec.Containers) + sidecarCount(r.pod),
		Error:      r.syncErr,
		PodIP:      st.PodIP,
		Containers: []ContainerView{},
	}
	if st.StartTime != nil {
		t := st.StartTime.Time
		v.StartTime = &t
	}
	add := func(cs v1.ContainerStatus, init, sidecar bool) {
		cv := ContainerView{Name: cs.Name, ID: trimRuntimePrefix(cs.ContainerID), Restarts: int(cs.RestartCount), Init: init}
		switch {
		case cs.State.Running != nil:
			cv.State = "running"
		case cs.State.Terminated != nil:
			cv.State = "exited"
			cv.Reason = cs.State.Terminated.Reason
			code := cs.State.Terminated.ExitCode
			cv.ExitCode = &code
		default:
			cv.State = "waiting"
			if cs.State.Waiting != nil {
				cv.Reason = cs.State.Waiting.Reason
				if v.Error == "" && isErrorReason(cs.State.Waiting.Reason) {
					v.Error = cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
				}
			}
		}
		v.Restarts += int(cs.RestartCount)
		if (!init || sidecar) && cs.Ready {
			v.Ready++
		}
		v.Containers = append(v.Containers, cv)
	}
	for i, cs := range st.InitContainerStatuses {
		add(cs, true, i < len(r.pod.Spec.InitContainers) && isSidecar(&r.pod.Spec.InitContainers[i]))
	}
	for _, cs := range st.ContainerStatuses {
		add(cs, false, false)
	}
	return v
}

func sidecarCount(p *v1.Pod) int {
	n := 0
	for i := range p.Spec.InitContainers {
		if isSidecar(&p.Spec.InitContainers[i]) {
			n++
		}
	}
	return n
}

// isErrorReason tells waiting reasons that report a problem from those of normal progress.
func isErrorReason(reason string) bool {
	switch reason {
	case "", reasonContainerCreating, reasonPodInitializing:
		return false
	}
	return true
}

func trimRuntimePrefix(id string) string {
	for i := 0; i+2 < len(id); i++ {
		if id[i:i+3] == "://" {
			return id[i+3:]
		}
	}
	return id
}
