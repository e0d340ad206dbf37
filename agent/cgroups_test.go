package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeCgroups records what the agent asks of the pod cgroup hierarchy.
type fakeCgroups struct {
	mu       sync.Mutex
	ensured  []types.UID
	removed  []types.UID
	orphans  map[types.UID]bool // pod cgroups that exist without a pod
	failWith error
}

func (f *fakeCgroups) PodParent(pod *v1.Pod) string { return "/kubepods/pod" + string(pod.UID) }
func (f *fakeCgroups) EnsurePod(pod *v1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return f.failWith
	}
	f.ensured = append(f.ensured, pod.UID)
	return nil
}
func (f *fakeCgroups) RemovePod(uid types.UID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, uid)
	return nil
}
func (f *fakeCgroups) CleanupOrphans(active func(types.UID) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for uid := range f.orphans {
		if !active(uid) {
			delete(f.orphans, uid)
			f.removed = append(f.removed, uid)
		}
	}
	return nil
}

func (f *fakeCgroups) snapshot() (ensured, removed []types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ensured), slices.Clone(f.removed)
}

// newFakeNodeWithCgroups is newFakeNode with a pod cgroup hierarchy.
func newFakeNodeWithCgroups(t *testing.T, cg PodCgroups, manifests map[string]string) *fakeNode {
	t.Helper()
	return newFakeNodeWith(t, manifests, func(c *Config) { c.Cgroups = cg })
}

// TestPodCgroups: the pod cgroup is made before the sandbox and given to it as CgroupParent; it is
// removed once the pod is gone; pod cgroups of pods nobody has are cleaned once the sources are
// ready, those of running pods are not.
func TestPodCgroups(t *testing.T) {
	cg := &fakeCgroups{orphans: map[types.UID]bool{"gone-uid": true}}
	n := newFakeNodeWithCgroups(t, cg, map[string]string{"web.yaml": pod("web", "Always", "")})
	l := n.waitView("running", runningWith("web", 0))
	uid := types.UID(viewPod(l, "web").UID)
	ensured, _ := cg.snapshot()
	if len(ensured) == 0 || ensured[0] != uid {
		t.Fatalf("EnsurePod calls = %v, want the pod's", ensured)
	}
	n.rt.mu.Lock()
	parents := slices.Clone(n.rt.parents)
	n.rt.mu.Unlock()
	if len(parents) != 1 || parents[0] != "/kubepods/pod"+string(uid) {
		t.Errorf("sandbox CgroupParent = %v, want [/kubepods/pod%s]", parents, uid)
	}
	n.tick(2 * time.Second)
	if _, removed := cg.snapshot(); !slices.Equal(removed, []types.UID{"gone-uid"}) {
		t.Errorf("removed = %v, want only the orphan gone-uid", removed)
	}

	if err := os.Remove(filepath.Join(n.manifests, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	n.stepUntil("pod removed", func(l PodList) bool { return len(l.Pods) == 0 })
	if _, removed := cg.snapshot(); !slices.Contains(removed, uid) {
		t.Errorf("RemovePod was not called for the pod: %v", removed)
	}
}

// TestPodCgroupFailureBlocksTheSandbox: when the pod cgroup cannot be made, no sandbox is created
// (it would run without the pod's limits) and the pod shows why.
func TestPodCgroupFailureBlocksTheSandbox(t *testing.T) {
	cg := &fakeCgroups{failWith: errors.New("pod cgroup /kubepods/podx: permission denied")}
	n := newFakeNodeWithCgroups(t, cg, map[string]string{"web.yaml": pod("web", "Always", "")})
	n.waitView("error shown", func(l PodList) bool {
		p := viewPod(l, "web")
		return p != nil && strings.Contains(p.Error, "permission denied")
	})
	sbs, _ := n.rt.ListPodSandbox(context.Background(), nil)
	if len(sbs) != 0 {
		t.Errorf("%d sandboxes created without a pod cgroup", len(sbs))
	}
}

// TestTerminalPodCgroupRemoved: a pod that completed (restartPolicy Never) has its cgroup removed
// once its sandbox is stopped, before the pod itself is removed.
func TestTerminalPodCgroupRemoved(t *testing.T) {
	cg := &fakeCgroups{}
	n := newFakeNodeWithCgroups(t, cg, map[string]string{"job.yaml": pod("job", "Never", "")})
	l := n.waitView("running", runningWith("job", 0))
	uid := types.UID(viewPod(l, "job").UID)
	sbs, _ := n.rt.ListPodSandbox(context.Background(), nil)
	cs, _ := n.rt.ListContainers(context.Background(), nil)
	if len(sbs) != 1 || len(cs) != 1 {
		t.Fatalf("%d sandboxes, %d containers", len(sbs), len(cs))
	}
	if err := n.srv.SetContainerExited(cs[0].Id, 0, "Completed"); err != nil {
		t.Fatal(err)
	}
	n.stepUntil("Succeeded", func(l PodList) bool { p := viewPod(l, "job"); return p != nil && p.Phase == "Succeeded" })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, removed := cg.snapshot(); slices.Contains(removed, uid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the completed pod's cgroup was not removed")
		}
		n.tick(time.Second)
	}
}
