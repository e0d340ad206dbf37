package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Pods of the bench live in their own namespace; every run labels its pods with its own id.
const (
	benchNamespace = "bench"
	runLabel       = "berth-bench/run"
	benchImage     = "localhost/busybox:latest"
	sandboxImage   = "localhost/pause:3.9"
)

// podSpec options.
type podOpts struct {
	// livenessPort, when not 0, adds an httpGet liveness probe on 127.0.0.1:livenessPort every 10 s.
	livenessPort int
}

// benchPod is a busybox `sleep 3600` pod bound to the node: one container, image present, no
// service account token (there is no token controller), a short grace period so deletion is not
// dominated by `sleep` ignoring SIGTERM.
func benchPod(name, node, run string, o podOpts) *v1.Pod {
	f := false
	grace := int64(2)
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNamespace, Labels: map[string]string{runLabel: run}},
		Spec: v1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 v1.RestartPolicyAlways,
			AutomountServiceAccountToken:  &f,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name:            "main",
				Image:           benchImage,
				ImagePullPolicy: v1.PullIfNotPresent,
				Command:         []string{"sleep", "3600"},
			}},
		},
	}
	if o.livenessPort != 0 {
		p.Spec.Containers[0].LivenessProbe = &v1.Probe{
			ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{
				Host: "127.0.0.1", Path: "/healthz", Port: intstr.FromInt32(int32(o.livenessPort)),
			}},
			PeriodSeconds:    10,
			TimeoutSeconds:   1,
			FailureThreshold: 3,
		}
	}
	return p
}

// podState is what the tracker saw of one pod, in the bench's clock.
type podState struct {
	created  time.Time // when the create request was sent
	ready    time.Time // first seen Running with Ready=True
	gone     time.Time // deletion seen
	restarts int32     // restartCount of the first container, as last seen
	running  bool      // first container running, as last seen
	cid      string    // first container's ID (without the runtime:// prefix), as last seen
	// restartedAt[k] is when restartCount k (k >= 1) was first seen together with a running
	// container.
	restartedAt map[int32]time.Time
}

// tracker watches the run's pods through an informer (the admin's view of the API) and records
// when each becomes Running+Ready, restarts and disappears.
type tracker struct {
	mu     sync.Mutex
	pods   map[string]*podState
	cancel context.CancelFunc
}

func newTracker(ctx context.Context, admin kubernetes.Interface, run string) (*tracker, error) {
	ctx, cancel := context.WithCancel(ctx)
	t := &tracker{pods: map[string]*podState{}, cancel: cancel}
	f := informers.NewSharedInformerFactoryWithOptions(admin, 0,
		informers.WithNamespace(benchNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = runLabel + "=" + run }))
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.observe(o) },
		UpdateFunc: func(_, o any) { t.observe(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				now := time.Now()
				t.mu.Lock()
				s := t.state(p.Name)
				if s.gone.IsZero() {
					s.gone = now
				}
				t.mu.Unlock()
			}
		},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod informer did not sync")
	}
	return t, nil
}

func (t *tracker) Close() { t.cancel() }

func (t *tracker) state(name string) *podState {
	s := t.pods[name]
	if s == nil {
		s = &podState{restartedAt: map[int32]time.Time{}}
		t.pods[name] = s
	}
	return s
}

func (t *tracker) observe(o any) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(p.Name)
	if s.ready.IsZero() && runningReady(p) {
		s.ready = now
	}
	if len(p.Status.ContainerStatuses) > 0 {
		cs := p.Status.ContainerStatuses[0]
		s.restarts = cs.RestartCount
		s.running = cs.State.Running != nil
		s.cid = cs.ContainerID
		if _, id, ok := strings.Cut(s.cid, "://"); ok {
			s.cid = id
		}
		if s.running && cs.RestartCount > 0 {
			if _, seen := s.restartedAt[cs.RestartCount]; !seen {
				s.restartedAt[cs.RestartCount] = now
			}
		}
	}
}

func runningReady(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func (t *tracker) setCreated(name string, at time.Time) {
	t.mu.Lock()
	t.state(name).created = at
	t.mu.Unlock()
}

// snapshot returns a copy of one pod's state.
func (t *tracker) get(name string) podState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := *t.state(name)
	return s
}

// waitAll polls until cond holds for every name, or the timeout; it returns the names for which
// it does not hold.
func (t *tracker) waitAll(names []string, timeout time.Duration, cond func(*podState) bool) []string {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		t.mu.Lock()
		for _, n := range names {
			if !cond(t.state(n)) {
				missing = append(missing, n)
			}
		}
		t.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createPods creates the pods all at once (one goroutine each) and records when each create
// request was sent. It returns the time the first was sent.
func createPods(ctx context.Context, admin kubernetes.Interface, t *tracker, pods []*v1.Pod) (time.Time, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := time.Now()
			t.setCreated(p.Name, at)
			if _, err := admin.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				errs <- fmt.Errorf("create pod %s: %w", p.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return start, <-errs
}

// deletePods deletes the pods all at once, with their own grace period (the agent stops them and
// then removes them from the API, as a kubelet does).
func deletePods(ctx context.Context, admin kubernetes.Interface, names []string) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := admin.CoreV1().Pods(benchNamespace).Delete(ctx, n, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				errs <- fmt.Errorf("delete pod %s: %w", n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// forceDeleteAll removes every pod of the bench namespace at once (grace 0): cleanup after a run
// or a failure, whatever the agent does.
func forceDeleteAll(ctx context.Context, admin kubernetes.Interface) {
	zero := int64(0)
	_ = admin.CoreV1().Pods(benchNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		l, err := admin.CoreV1().Pods(benchNamespace).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
