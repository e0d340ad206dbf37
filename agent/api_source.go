package agent

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// isMirrorPod reports whether an API pod is the mirror of a static pod (it is never run: the static
// pod is).
func isMirrorPod(p *v1.Pod) bool {
	_, ok := p.Annotations[annotationConfigMirror]
	return ok
}

// apiSource watches the pods bound to this node (an informer with the field selector
// spec.nodeName=<node>, which the Node authorizer allows) and sends full snapshots of them. Mirror
// pods are passed to the mirror pod manager instead: they describe static pods, they are not pods to
// run.
type apiSource struct {
	client   kubeclient.Interface
	nodeName string
	log      *slog.Logger
	mirrors  *mirrorPods

	lister corelisters.PodLister
	synced cache.InformerSynced
	dirty  chan struct{}
}

func newAPISource(client kubeclient.Interface, nodeName string, mirrors *mirrorPods, log *slog.Logger) *apiSource {
	return &apiSource{client: client, nodeName: nodeName, mirrors: mirrors, log: log, dirty: make(chan struct{}, 1)}
}

// start creates the informer; Run waits for its first sync. It is what client-go's informer
// factory built for pods (the same list/watch calls, field selector, no resync, namespace index),
// made here on kubeclient's pods (package kubeclient says why).
func (s *apiSource) start(ctx context.Context) {
	selector := fields.OneTermEqualSelector("spec.nodeName", s.nodeName).String()
	pods := s.client.CoreV1().Pods(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return pods.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, s.client), &v1.Pod{},
		cache.SharedIndexInformerOptions{Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}})
	// managedFields are the API server's bookkeeping of who set what: Berth never reads them, and
	// they are a good part of every cached pod.
	_ = inf.SetTransform(func(o any) (any, error) {
		if p, ok := o.(*v1.Pod); ok {
			p.ManagedFields = nil
		}
		return o, nil
	})
	s.lister = corelisters.NewPodLister(inf.GetIndexer())
	s.synced = inf.HasSynced
	mark := func() {
		select {
		case s.dirty <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mark() },
		UpdateFunc: func(any, any) { mark() },
		DeleteFunc: func(any) { mark() },
	})
	go inf.RunWithContext(ctx)
}

// Run sends a snapshot after the informer's first sync, then one per burst of changes.
// A change within burstWindow of the last snapshot waits for more (Run): burstCoalesce, or
// coalescePerPod for each pod on the node when that is longer, up to maxCoalesce.
const (
	burstWindow    = 100 * time.Millisecond
	burstCoalesce  = 50 * time.Millisecond
	coalescePerPod = 200 * time.Microsecond
	maxCoalesce    = 250 * time.Millisecond
)

// coalesceFor is how long changes that follow a snapshot closely are gathered, with n pods on the
// node. A snapshot costs each pod a list entry, a sort step and a diff; while changes keep coming
// (the status echoes of a burst), a fixed rate of snapshots would cost n × rate: waiting longer as
// n grows keeps the cost of a burst per pod constant (500 pods: 100 ms) at the price of a pod
// starting that much later in a burst that large, where the status writes' rate limit takes seconds
// anyway. 250 pods and fewer keep 50 ms.
func coalesceFor(n int) time.Duration {
	return min(max(burstCoalesce, time.Duration(n)*coalescePerPod), maxCoalesce)
}

func (s *apiSource) Run(ctx context.Context, out chan<- SourceUpdate) {
	if !cache.WaitForCacheSync(ctx.Done(), s.synced) {
		return
	}
	s.log.Info("watching the pods bound to this node", "node", s.nodeName)
	var last time.Time
	n := 0 // pods in the last snapshot
	for {
		last = time.Now()
		pods, err := s.lister.List(labels.Everything())
		n = len(pods)
		if err == nil {
			var run, mirrors []*v1.Pod
			for _, p := range pods {
				if isMirrorPod(p) {
					mirrors = append(mirrors, p)
				} else {
					run = append(run, p)
				}
			}
			// Oldest first: admission admits in creation order, as the kubelet does.
			sort.Slice(run, func(i, j int) bool {
				a, b := run[i].CreationTimestamp, run[j].CreationTimestamp
				if !a.Equal(&b) {
					return a.Before(&b)
				}
				return run[i].UID < run[j].UID
			})
			s.mirrors.observe(mirrors)
			select {
			case out <- SourceUpdate{Source: SourceAPI, Pods: run}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.dirty:
			// Coalesce a burst (a 100-pod create, and the status updates that follow) into a few
			// snapshots: each costs a list, a sort and a diff of every pod on the node, so one per
			// change would make a burst of n pods cost n². A lone change waits 5 ms; changes that
			// follow a snapshot closely are gathered for coalesceFor(n).
			wait := 5 * time.Millisecond
			if time.Since(last) < burstWindow {
				wait = coalesceFor(n)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
	}
}

// get returns the API's current version of a pod, or nil.
func (s *apiSource) get(namespace, name string) *v1.Pod {
	if s.lister == nil {
		return nil
	}
	p, err := s.lister.Pods(namespace).Get(name)
	if err != nil {
		return nil
	}
	return p
}
