package agent

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berth-dev/berth/kubeclient/clientset"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// statusHarness is a status manager over a fake clientset whose informer cache the test moves by
// hand, so that it can be left stale on purpose.
type statusHarness struct {
	client  *fake.Clientset
	indexer cache.Indexer
	store   *statusStore
	m       *statusManager
}

func newStatusHarness(t *testing.T, pod *v1.Pod) *statusHarness {
	t.Helper()
	client := fake.NewClientset(pod)
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := indexer.Add(pod.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := newAPISource(clientset.Wrap(client), "node-a", nil, log)
	api.lister = corelisters.NewPodLister(indexer)
	store := newStatusStore()
	return &statusHarness{client: client, indexer: indexer, store: store,
		m: newStatusManager(clientset.Wrap(client), store, api, nil, newAPIHealth(log), log)}
}

func (h *statusHarness) patches() int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func (h *statusHarness) sync(t *testing.T, pod *v1.Pod) {
	t.Helper()
	if _, err := h.m.sync(context.Background(), pod.UID); err != nil {
		t.Fatal(err)
	}
}

func runningStatus(at time.Time) v1.PodStatus {
	start := metav1.NewTime(at)
	return v1.PodStatus{
		Phase:     v1.PodRunning,
		PodIP:     "10.0.0.5",
		PodIPs:    []v1.PodIP{{IP: "10.0.0.5"}},
		StartTime: &start,
		Conditions: []v1.PodCondition{
			{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: start},
		},
		ContainerStatuses: []v1.ContainerStatus{{
			Name: "app", Ready: true, Image: "busybox",
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: start}},
		}},
	}
}

// The informer lags behind Berth's own writes; diffing against its stale copy re-sent the same patch
// (test/bench: up to four patches per pod in a burst, most of them repeats).
func TestStatusManagerDoesNotRepeatAPatchTheInformerHasNotSeen(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1", ResourceVersion: "1"},
		Status: v1.PodStatus{Phase: v1.PodPending}}
	h := newStatusHarness(t, pod)
	h.store.set(pod, runningStatus(time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)), "")

	h.sync(t, pod)
	h.sync(t, pod) // the informer still holds the Pending pod
	h.sync(t, pod)
	if got := h.patches(); got != 1 {
		t.Fatalf("%d status patches for one change seen thrice before the informer caught up, want 1", got)
	}

	// A real change is still written while the informer is stale.
	failed := runningStatus(time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC))
	failed.Phase = v1.PodFailed
	h.store.set(pod, failed, "")
	h.sync(t, pod)
	if got := h.patches(); got != 2 {
		t.Fatalf("%d status patches after a phase change, want 2", got)
	}

	// The informer catches up with a newer object: it is trusted again.
	newer, err := h.client.CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newer.ResourceVersion = "7"
	if err := h.indexer.Update(newer); err != nil {
		t.Fatal(err)
	}
	h.sync(t, pod)
	if got := h.patches(); got != 2 {
		t.Fatalf("%d status patches once the informer holds what was written, want 2", got)
	}
	if _, ok := h.m.written[pod.UID]; ok {
		t.Error("the remembered write outlived the informer catching up")
	}
}

// Times in the API are kept to the second: a status whose only difference is below a second makes
// an empty patch, which is not sent.
func TestStatusManagerSkipsPatchesThatChangeNothing(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1", ResourceVersion: "1"},
		Status: runningStatus(at)}
	h := newStatusHarness(t, pod)
	h.store.set(pod, runningStatus(at.Add(300*time.Millisecond)), "")
	h.sync(t, pod)
	if got := h.patches(); got != 0 {
		t.Fatalf("%d status patches for a sub-second difference, want 0", got)
	}
	h.store.set(pod, runningStatus(at.Add(2*time.Second)), "")
	h.sync(t, pod)
	if got := h.patches(); got != 1 {
		t.Fatalf("%d status patches for a 2 s difference, want 1", got)
	}
}
