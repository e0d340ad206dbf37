package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

// mirrorPods keeps one mirror pod in the API server for every static pod, so that kubectl and
// controllers see it: created with the config.mirror annotation (the static pod's hash) and an owner
// reference to the Node, recreated when someone deletes it, replaced when the manifest changes (the
// hash then differs), deleted when the static pod goes. It never runs anything.
type mirrorPods struct {
	client kubeclient.Interface
	node   func() *v1.Node // nil until the node is registered: mirrors need its UID
	log    *slog.Logger
	health *apiHealth

	// onMirror is told the static pod UID of every mirror pod that appears or changes, so the
	// status manager writes the static pod's status to a recreated mirror.
	onMirror func(staticUID types.UID)

	mu      sync.Mutex
	static  map[string]*v1.Pod // desired static pods by namespace/name
	mirrors map[string]*v1.Pod // mirror pods in the API by namespace/name
	queue   workqueue.TypedRateLimitingInterface[string]
}

func newMirrorPods(client kubeclient.Interface, node func() *v1.Node, health *apiHealth, log *slog.Logger) *mirrorPods {
	return &mirrorPods{
		client:  client,
		node:    node,
		log:     log,
		health:  health,
		static:  map[string]*v1.Pod{},
		mirrors: map[string]*v1.Pod{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "mirror-pods"}),
	}
}

// setStatic records the static pods the file source wants.
func (m *mirrorPods) setStatic(pods []*v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.static = m.replace(m.static, pods)
}

// observe records the mirror pods the API holds for this node; a mirror that disappeared is
// recreated if its static pod is still there.
func (m *mirrorPods) observe(pods []*v1.Pod) {
	m.mu.Lock()
	old := m.mirrors
	m.mirrors = m.replace(old, pods)
	m.mu.Unlock()
	if m.onMirror == nil {
		return
	}
	for _, p := range pods {
		if old[nsName(p.Namespace, p.Name)] != p {
			if uid := p.Annotations[annotationConfigMirror]; uid != "" {
				m.onMirror(types.UID(uid))
			}
		}
	}
}

// replace returns pods keyed by namespace/name, queueing every key that changed against old.
// Callers hold m.mu.
func (m *mirrorPods) replace(old map[string]*v1.Pod, pods []*v1.Pod) map[string]*v1.Pod {
	next := make(map[string]*v1.Pod, len(pods))
	for _, p := range pods {
		next[nsName(p.Namespace, p.Name)] = p
	}
	for k, p := range next {
		if old[k] != p {
			m.queue.Add(k)
		}
	}
	for k := range old {
		if next[k] == nil {
			m.queue.Add(k)
		}
	}
	return next
}

// mirrorOf returns the API's mirror pod of a static pod, when it mirrors this version of it.
func (m *mirrorPods) mirrorOf(static *v1.Pod) *v1.Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.mirrors[nsName(static.Namespace, static.Name)]
	if mp == nil || mp.Annotations[annotationConfigMirror] != string(static.UID) || mp.DeletionTimestamp != nil {
		return nil
	}
	return mp
}

func (m *mirrorPods) run(ctx context.Context) {
	go func() { <-ctx.Done(); m.queue.ShutDown() }()
	for {
		key, quit := m.queue.Get()
		if quit {
			return
		}
		if err := m.sync(ctx, key); err != nil {
			m.health.failed(err)
			m.queue.AddRateLimited(key)
		} else {
			m.queue.Forget(key)
		}
		m.queue.Done(key)
	}
}

// errNodeNotRegistered delays mirror pods until the Node exists (they are owned by it).
type errNodeNotRegistered struct{}

func (errNodeNotRegistered) Error() string { return "node not registered yet" }

func (m *mirrorPods) sync(ctx context.Context, key string) error {
	m.mu.Lock()
	static, mirror := m.static[key], m.mirrors[key]
	m.mu.Unlock()
	pods := m.client.CoreV1().Pods(namespaceOf(key))
	// A mirror that is outdated, orphaned or being deleted (someone ran kubectl delete: the API
	// server waits for the node to finish it) is deleted now, with grace 0; its deletion event
	// requeues the key and a fresh one is created.
	if mirror != nil && (static == nil || mirror.Annotations[annotationConfigMirror] != string(static.UID) || mirror.DeletionTimestamp != nil) {
		uid := mirror.UID
		err := pods.Delete(ctx, mirror.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, GracePeriodSeconds: new(int64)})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		m.health.ok()
		m.log.Info("deleted mirror pod", "pod", key, "mirrorUID", string(uid), "staticPodGone", static == nil)
		return nil
	}
	if static == nil || mirror != nil {
		return nil
	}
	node := m.node()
	if node == nil {
		return errNodeNotRegistered{}
	}
	mp := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        static.Name,
			Namespace:   static.Namespace,
			Labels:      static.Labels,
			Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID, Controller: new(true),
			}},
		},
		Spec: *static.Spec.DeepCopy(),
	}
	for k, v := range static.Annotations {
		mp.Annotations[k] = v
	}
	mp.Annotations[annotationConfigMirror] = string(static.UID)
	created, err := pods.Create(ctx, mp, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // the informer will show it; a stale one is replaced then
	}
	if err != nil {
		return err
	}
	m.health.ok()
	m.log.Info("created mirror pod", "pod", key, "mirrorUID", string(created.UID))
	return nil
}

func namespaceOf(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i]
		}
	}
	return ""
}
