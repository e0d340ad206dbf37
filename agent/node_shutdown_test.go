package agent

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeLogind hands out inhibitor locks as pipes (the lock is held while the write end is open) and
// delivers the PrepareForShutdown signals the test sends.
type fakeLogind struct {
	events chan bool
	mu     sync.Mutex
	locks  []*os.File // read ends, one per lock taken
}

func (f *fakeLogind) InhibitShutdown(who, why string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.locks = append(f.locks, r)
	f.mu.Unlock()
	return w, nil
}

func (f *fakeLogind) PrepareForShutdown(ctx context.Context) (<-chan bool, error) {
	return f.events, nil
}

// held reports whether lock i is still held: its write end is open.
func (f *fakeLogind) held(i int) bool {
	f.mu.Lock()
	r := f.locks[i]
	f.mu.Unlock()
	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(make([]byte, 1))
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func (f *fakeLogind) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.locks)
}

func shutdownPod(name, container, priorityClass string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  priorityClassName: ` + priorityClass + `
  terminationGracePeriodSeconds: 30
  containers:
  - name: ` + container + `
    image: busybox
    imagePullPolicy: IfNotPresent
`
}

// TestNodeShutdown: on PrepareForShutdown(true) the regular pod is stopped with grace −
// criticalGrace, then the critical one with criticalGrace, both end Failed with the kubelet's
// reason, message and DisruptionTarget condition, the lock is released and a new pod is rejected
// (NodeShutdown); a cancelled shutdown takes the lock again and admits pods.
func TestNodeShutdown(t *testing.T) {
	logind := &fakeLogind{events: make(chan bool)}
	n := newFakeNodeWith(t, map[string]string{
		"web.yaml":  shutdownPod("web", "web-app", "\"\""),
		"crit.yaml": shutdownPod("crit", "crit-app", "system-node-critical"),
	}, func(c *Config) {
		c.ShutdownGracePeriod, c.ShutdownGracePeriodCriticalPods, c.Logind = 20*time.Second, 8*time.Second, logind
	})
	l := n.waitView("both running", func(l PodList) bool {
		return runningIn(l, "web") && runningIn(l, "crit")
	})
	webUID, critUID := types.UID(viewPod(l, "web").UID), types.UID(viewPod(l, "crit").UID)
	waitFor(t, "the inhibitor lock", func() bool { return logind.count() == 1 && logind.held(0) })

	logind.events <- true
	n.stepUntil("both stopped", func(l PodList) bool {
		return viewPod(l, "web").Phase == "Failed" && viewPod(l, "crit").Phase == "Failed" &&
			viewPod(l, "web").Containers[0].State == "exited" && viewPod(l, "crit").Containers[0].State == "exited"
	})
	if got := n.rt.recorded("stop "); len(got) != 2 || got[0] != "stop web-app" || got[1] != "stop crit-app" {
		t.Errorf("stops %v, want the regular pod's, then the critical pod's", got)
	}
	n.rt.mu.Lock()
	webGrace, critGrace := n.rt.graceOf["web-app"], n.rt.graceOf["crit-app"]
	n.rt.mu.Unlock()
	if webGrace != 12 || critGrace != 8 {
		t.Errorf("graces: regular %d (want 20−8 = 12), critical %d (want 8)", webGrace, critGrace)
	}
	for _, uid := range []types.UID{webUID, critUID} {
		st := n.agent.store.get(uid).status
		if st.Reason != "Terminated" || st.Message != "Pod was terminated in response to imminent node shutdown." {
			t.Errorf("%s: reason %q message %q", uid, st.Reason, st.Message)
		}
		found := false
		for _, c := range st.Conditions {
			if c.Type == v1.DisruptionTarget && c.Status == v1.ConditionTrue && c.Reason == "TerminationByKubelet" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no DisruptionTarget condition: %+v", uid, st.Conditions)
		}
	}
	// The manager polls the pods' state on the (fake) clock: step it.
	waitFor(t, "the lock released", func() bool { n.clock.Step(50 * time.Millisecond); return !logind.held(0) })

	// A pod that comes now is refused.
	n.write("late.yaml", shutdownPod("late", "late-app", "\"\""))
	n.stepUntil("late rejected", func(l PodList) bool { p := viewPod(l, "late"); return p != nil && p.Phase == "Failed" })
	for _, p := range n.agent.PodList().Pods {
		if p.Name == "late-node" && p.Error != "NodeShutdown: Pod was rejected as the node is shutting down." {
			t.Errorf("late pod: %+v", p)
		}
	}

	// Cancelled: a new lock, and pods are admitted again.
	logind.events <- false
	waitFor(t, "a new lock", func() bool { return logind.count() == 2 && logind.held(1) })
	n.write("later.yaml", shutdownPod("later", "later-app", "\"\""))
	n.stepUntil("later running", func(l PodList) bool { return runningIn(l, "later") })
}

func runningIn(l PodList, name string) bool {
	p := viewPod(l, name)
	return p != nil && p.Phase == "Running"
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCriticalPod(t *testing.T) {
	prio := func(p int32) *int32 { return &p }
	for _, tc := range []struct {
		spec v1.PodSpec
		want bool
	}{
		{v1.PodSpec{}, false},
		{v1.PodSpec{Priority: prio(1000)}, false},
		{v1.PodSpec{Priority: prio(2000000000)}, true},
		{v1.PodSpec{Priority: prio(2000001000), PriorityClassName: "system-node-critical"}, true},
		{v1.PodSpec{PriorityClassName: "system-cluster-critical"}, true},
		{v1.PodSpec{Priority: prio(0), PriorityClassName: "system-node-critical"}, false}, // the resolved priority wins
	} {
		if got := criticalPod(&v1.Pod{Spec: tc.spec}); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.spec, got, tc.want)
		}
	}
}
