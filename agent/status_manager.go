package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/util/workqueue"
)

// statusManager owns what the API server is told about pods. Pod workers publish into the
// statusStore; the store wakes the manager, which patches the status subresource of the API pod (of
// the mirror pod, for a static pod) when what it would write differs from what the API holds.
// Writes are deduplicated (a queue keyed by pod UID: ten syncs in a burst make one patch), carry the
// pod UID as a precondition, are retried with back-off on conflict or outage, and never move a status
// backwards (a terminal phase stays, a pod IP is not erased).
type statusManager struct {
	client  kubeclient.Interface
	store   *statusStore
	api     *apiSource
	mirrors *mirrorPods
	log     *slog.Logger
	health  *apiHealth
	queue   workqueue.TypedRateLimitingInterface[types.UID]

	// written remembers, per pod, the pod the API server returned for Berth's last patch and the
	// resourceVersion that patch was computed against. Until the informer moves past that version
	// its copy is older than what Berth wrote, and diffing against it would send the same patch
	// again (seen in test/bench: two or three identical patches per pod in a burst).
	writtenMu sync.Mutex
	written   map[types.UID]writtenStatus
}

type writtenStatus struct {
	basedOn string  // resourceVersion of the pod the patch was computed against
	result  *v1.Pod // the API server's answer to the patch
}

func newStatusManager(client kubeclient.Interface, store *statusStore, api *apiSource, mirrors *mirrorPods, health *apiHealth, log *slog.Logger) *statusManager {
	return &statusManager{
		client: client, store: store, api: api, mirrors: mirrors, log: log, health: health,
		written: map[types.UID]writtenStatus{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.UID](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "pod-status"}),
	}
}

// statusWriters is how many pod status patches may be in flight at once. A patch is one round trip
// to the API server (milliseconds to tens of them on a busy server); with two, a burst of 100 new
// pods waited ~1 s in this queue alone (test/bench burst-fake-100). kubeAPIQPS still bounds the rate.
const statusWriters = 8

func (m *statusManager) enqueue(uid types.UID) { m.queue.Add(uid) }

func (m *statusManager) run(ctx context.Context, workers int) {
	go func() { <-ctx.Done(); m.queue.ShutDown() }()
	for range workers {
		go func() {
			for m.processNext(ctx) {
			}
		}()
	}
}

func (m *statusManager) processNext(ctx context.Context) bool {
	uid, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(uid)
	retry, err := m.sync(ctx, uid)
	switch {
	case err != nil:
		m.health.failed(err)
		m.queue.AddRateLimited(uid)
	case retry:
		m.queue.AddAfter(uid, time.Second) // waiting for the mirror pod or the informer
	default:
		m.queue.Forget(uid)
	}
	return true
}

// sync writes one pod's status if needed; retry asks to be called again later without an error.
func (m *statusManager) sync(ctx context.Context, uid types.UID) (retry bool, err error) {
	rec := m.store.get(uid)
	if rec == nil {
		m.forget(uid)
		return false, nil // gone from the node
	}
	target := rec.pod
	if rec.pod.Annotations[annotationConfigSource] == SourceFile {
		if target = m.mirrors.mirrorOf(rec.pod); target == nil {
			return true, nil
		}
	}
	current := m.api.get(target.Namespace, target.Name)
	if current == nil || current.UID != target.UID {
		return current == nil && rec.pod.Annotations[annotationConfigSource] == SourceFile, nil
	}
	current = m.newest(uid, current)
	next := mergeStatus(&current.Status, &rec.status)
	if apiequality.Semantic.DeepEqual(&current.Status, next) {
		return false, nil
	}
	patch, empty, err := statusPatch(current, next)
	if err != nil || empty {
		// empty: the difference does not survive serialisation (times are kept to the second).
		return false, err
	}
	result, err := m.client.CoreV1().Pods(current.Namespace).Patch(ctx, current.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) && current.DeletionTimestamp != nil {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("patch status of pod %s/%s: %w", current.Namespace, current.Name, err)
	}
	m.writtenMu.Lock()
	m.written[uid] = writtenStatus{basedOn: current.ResourceVersion, result: result}
	m.writtenMu.Unlock()
	m.health.ok()
	return false, nil
}

// newest is the informer's copy of the pod, or the answer to Berth's last patch while the informer
// has not caught up with it.
func (m *statusManager) newest(uid types.UID, informed *v1.Pod) *v1.Pod {
	m.writtenMu.Lock()
	defer m.writtenMu.Unlock()
	w, ok := m.written[uid]
	switch {
	case !ok:
		return informed
	case informed.ResourceVersion == w.basedOn && w.result.UID == informed.UID:
		return w.result
	default:
		delete(m.written, uid) // the informer saw the write (or a newer change): trust it again
		return informed
	}
}

func (m *statusManager) forget(uid types.UID) {
	m.writtenMu.Lock()
	delete(m.written, uid)
	m.writtenMu.Unlock()
}

// mergeStatus is what Berth writes: its computed status, kept from going backwards against what the
// API already holds, and keeping the conditions other components own.
func mergeStatus(old, computed *v1.PodStatus) *v1.PodStatus {
	next := computed.DeepCopy()
	if old.Phase == v1.PodSucceeded || old.Phase == v1.PodFailed {
		if next.Phase != old.Phase {
			next.Phase = old.Phase // terminal is final
			next.Reason, next.Message = old.Reason, old.Message
		}
	}
	if next.PodIP == "" && old.PodIP != "" {
		next.PodIP, next.PodIPs = old.PodIP, old.PodIPs
	}
	if next.StartTime == nil || old.StartTime != nil && old.StartTime.Before(next.StartTime) {
		next.StartTime = old.StartTime
	}
	if next.NominatedNodeName == "" {
		next.NominatedNodeName = old.NominatedNodeName
	}
	owned := map[v1.PodConditionType]bool{}
	for i, c := range next.Conditions {
		owned[c.Type] = true
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				next.Conditions[i].LastTransitionTime = o.LastTransitionTime
				next.Conditions[i].LastProbeTime = o.LastProbeTime
				if o.Type == v1.PodScheduled {
					next.Conditions[i] = o // the scheduler's, when it set it
				}
			}
		}
	}
	for _, o := range old.Conditions {
		if !owned[o.Type] {
			next.Conditions = append(next.Conditions, o) // e.g. DisruptionTarget
		}
	}
	// Restart counts never go down (a dead instance may have been garbage-collected).
	keepRestarts(old.ContainerStatuses, next.ContainerStatuses)
	keepRestarts(old.InitContainerStatuses, next.InitContainerStatuses)
	return next
}

func keepRestarts(old, next []v1.ContainerStatus) {
	for i := range next {
		for _, o := range old {
			if o.Name == next[i].Name && o.RestartCount > next[i].RestartCount && o.ContainerID == next[i].ContainerID {
				next[i].RestartCount = o.RestartCount
			}
		}
	}
}

// statusPatch is a strategic merge patch from the pod's status to next, with the pod UID as a
// precondition (the API server refuses it if the pod was replaced by another of the same name).
// empty reports a patch that would change nothing.
func statusPatch(pod *v1.Pod, next *v1.PodStatus) (patch []byte, empty bool, err error) {
	oldJSON, err := json.Marshal(v1.Pod{Status: pod.Status})
	if err != nil {
		return nil, false, err
	}
	newJSON, err := json.Marshal(v1.Pod{Status: *next})
	if err != nil {
		return nil, false, err
	}
	diff, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Pod{})
	if err != nil {
		return nil, false, fmt.Errorf("status patch of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(diff, &m); err != nil {
		return nil, false, err
	}
	if len(m) == 0 {
		return nil, true, nil
	}
	m["metadata"] = map[string]any{"uid": string(pod.UID)}
	patch, err = json.Marshal(m)
	return patch, false, err
}
