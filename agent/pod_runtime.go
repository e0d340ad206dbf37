package agent

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/cri"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podRuntime is what the runtime holds of one pod, read afresh at the start of every sync: the
// runtime, not Berth's memory, is the truth about what runs.
type podRuntime struct {
	// sandboxes of the pod, newest first.
	sandboxes []*runtimeapi.PodSandbox
	// sandboxStatus is the status of sandboxes[0], when there is one and it is ready.
	sandboxStatus *runtimeapi.PodSandboxStatus
	// containers of the pod in every sandbox, newest first.
	containers []*containerRecord
	// fingerprint is the sandboxes' and containers' IDs and states as listed (runtimeFingerprint):
	// the relist compares its own with the one its worker saw last.
	fingerprint string
}

// runtimeFingerprint is one pod's sandboxes and containers, IDs and states, in a canonical form:
// two lists of the runtime with the same fingerprint saw nothing change for the pod.
func runtimeFingerprint(sandboxes []*runtimeapi.PodSandbox, containers []*runtimeapi.Container) string {
	parts := make([]string, 0, len(sandboxes)+len(containers))
	for _, sb := range sandboxes {
		parts = append(parts, "s"+sb.Id+sb.State.String())
	}
	for _, c := range containers {
		parts = append(parts, "c"+c.Id+c.State.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// containerRecord is one instance of a container (one restart) as the runtime knows it, with the
// details Berth put in its labels and annotations.
type containerRecord struct {
	id           string
	name         string
	sandboxID    string
	typ          string // cri.ContainerTypeInit or cri.ContainerTypeApp
	restartCount int
	hash         string
	state        runtimeapi.ContainerState
	createdAt    int64
	image        string
	imageRef     string
	// preStop is the preStop hook from the container's annotation (JSON), for pods without a spec.
	preStop string
	// status is the runtime's ContainerStatus (exit code, times, reason), fetched for the instances
	// that status reporting needs; nil for the older ones.
	status *runtimeapi.ContainerStatus
}

func (c *containerRecord) exited() bool {
	return c.state == runtimeapi.ContainerState_CONTAINER_EXITED || c.state == runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func (c *containerRecord) exitCode() int32 {
	if c.status == nil {
		return -1 // not known: treated as a failure
	}
	return c.status.ExitCode
}

func (c *containerRecord) finishedAt() int64 {
	if c.status == nil || c.status.FinishedAt == 0 {
		return c.createdAt
	}
	return c.status.FinishedAt
}

// currentSandbox is the newest sandbox, or nil.
func (r *podRuntime) currentSandbox() *runtimeapi.PodSandbox {
	if len(r.sandboxes) == 0 {
		return nil
	}
	return r.sandboxes[0]
}

// sandboxReady reports whether the newest sandbox is ready.
func (r *podRuntime) sandboxReady() bool {
	sb := r.currentSandbox()
	return sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY
}

// instances returns the instances of the named container of the given type, newest first.
func (r *podRuntime) instances(typ, name string) []*containerRecord {
	var out []*containerRecord
	for _, c := range r.containers {
		if c.name == name && c.typ == typ {
			out = append(out, c)
		}
	}
	return out
}

// newestIn returns the newest instance of a container inside the given sandbox, or nil.
func (r *podRuntime) newestIn(sandboxID, typ, name string) *containerRecord {
	for _, c := range r.containers {
		if c.name == name && c.typ == typ && c.sandboxID == sandboxID {
			return c
		}
	}
	return nil
}

// nextRestartCount is the restart count the next instance of a container gets: one more than the
// newest instance in any sandbox, so counts survive sandbox re-creation and Berth restarts.
func (r *podRuntime) nextRestartCount(typ, name string) int {
	if inst := r.instances(typ, name); len(inst) > 0 {
		return inst[0].restartCount + 1
	}
	return 0
}

// statusCache remembers ContainerStatus answers for instances whose state has not changed since,
// and the PodSandboxStatus of the ready sandbox (under sandboxCacheKey+ID), so a steady pod costs
// two List calls per sync and no per-object calls.
type statusCache map[string]cachedStatus

type cachedStatus struct {
	container *runtimeapi.ContainerStatus
	sandbox   *runtimeapi.PodSandboxStatus
}

// sandboxCacheKey prefixes sandbox IDs in a statusCache (container and sandbox IDs share a space).
const sandboxCacheKey = "sandbox/"

// observePod reads a pod's sandboxes and containers from the runtime.
func observePod(ctx context.Context, rt Runtime, uid types.UID, cache statusCache) (*podRuntime, error) {
	sel := map[string]string{cri.LabelPodUID: string(uid), cri.LabelManagedBy: cri.ManagedByValue}
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	sort.Slice(sandboxes, func(i, j int) bool {
		if sandboxes[i].Metadata.GetAttempt() != sandboxes[j].Metadata.GetAttempt() {
			return sandboxes[i].Metadata.GetAttempt() > sandboxes[j].Metadata.GetAttempt()
		}
		return sandboxes[i].CreatedAt > sandboxes[j].CreatedAt
	})
	r := &podRuntime{sandboxes: sandboxes}
	if len(sandboxes) == 0 {
		r.fingerprint = runtimeFingerprint(sandboxes, nil)
		return r, nil
	}
	list, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	r.fingerprint = runtimeFingerprint(sandboxes, list)
	for _, c := range list {
		r.containers = append(r.containers, recordOf(c))
	}
	sort.Slice(r.containers, func(i, j int) bool {
		a, b := r.containers[i], r.containers[j]
		if a.restartCount != b.restartCount {
			return a.restartCount > b.restartCount
		}
		return a.createdAt > b.createdAt
	})
	if r.sandboxReady() {
		// A ready sandbox's status (its IPs) does not change while it stays ready: asked once.
		key := sandboxCacheKey + sandboxes[0].Id
		if st, ok := cache[key]; ok {
			r.sandboxStatus = st.sandbox
		} else {
			st, err := rt.PodSandboxStatus(ctx, sandboxes[0].Id)
			if err != nil && !cri.IsNotFound(err) {
				return nil, err
			}
			r.sandboxStatus = st
			if st.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
				cache[key] = cachedStatus{sandbox: st}
			}
		}
	}
	// Fetch details for the two newest instances of each container: the current one and the one
	// before it (lastState).
	seen := map[string]int{}
	live := map[string]bool{}
	for _, c := range r.containers {
		live[c.id] = true
		key := c.typ + "/" + c.name
		if seen[key] >= 2 {
			continue
		}
		seen[key]++
		if st, ok := cache[c.id]; ok && st.container.State == c.state {
			c.status = st.container
			continue
		}
		st, err := rt.ContainerStatus(ctx, c.id)
		if err != nil {
			if cri.IsNotFound(err) {
				continue // removed meanwhile
			}
			return nil, err
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			// Read once per exit (the answer is cached with the status), as the kubelet appends it
			// to the runtime's message.
			if msg := terminationMessage(st); msg != "" {
				if st.Message != "" {
					st.Message += ": "
				}
				st.Message += msg
			}
		}
		c.status = st
		c.state = st.State
		cache[c.id] = cachedStatus{container: st}
	}
	if r.sandboxReady() {
		live[sandboxCacheKey+sandboxes[0].Id] = true
	}
	for id := range cache {
		if !live[id] {
			delete(cache, id)
		}
	}
	return r, nil
}

func recordOf(c *runtimeapi.Container) *containerRecord {
	rc, _ := strconv.Atoi(c.Annotations[cri.AnnotationRestartCount])
	typ := c.Annotations[cri.AnnotationContainerType]
	if typ == "" {
		typ = cri.ContainerTypeApp
	}
	return &containerRecord{
		id:           c.Id,
		name:         c.Labels[cri.LabelContainerName],
		sandboxID:    c.PodSandboxId,
		typ:          typ,
		restartCount: rc,
		hash:         c.Annotations[cri.AnnotationContainerHash],
		state:        c.State,
		createdAt:    c.CreatedAt,
		image:        c.Image.GetImage(),
		imageRef:     c.ImageRef,
		preStop:      c.Annotations[cri.AnnotationPreStopHandler],
	}
}
