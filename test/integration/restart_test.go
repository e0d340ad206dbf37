//go:build integration

package integration

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
)

// TestKill9Adoption: Berth is killed with SIGKILL while 10 pods run; a new Berth adopts the same
// sandboxes and containers (no duplicate, no restart), and removes the pod whose manifest was
// deleted while it was down.
func TestKill9Adoption(t *testing.T) {
	e := newEnv(t)
	e.start()
	const n = 10
	for i := range n {
		e.writeManifest(fmt.Sprintf("p%02d.yaml", i), shPod(fmt.Sprintf("p%02d", i), "Always", "exec sleep 3600"))
	}
	l := e.waitPods("10 pods Running", 30*time.Second, func(l agent.PodList) bool {
		running := 0
		for _, p := range l.Pods {
			if p.Phase == "Running" && p.Ready == 1 {
				running++
			}
		}
		return running == n
	})
	before := runtimeIDs(e)
	if len(before) != 2*n {
		t.Fatalf("runtime has %d sandboxes+containers before the kill, want %d: %v", len(before), 2*n, before)
	}

	e.kill9()
	gone := findPod(l, "p09")
	e.removeManifest("p09.yaml") // vanished while Berth was down
	e.start()

	e.waitPods("p09 removed", 15*time.Second, func(l agent.PodList) bool { return findPod(l, "p09") == nil && len(l.Pods) == n-1 })
	waitFor(t, "p09's sandbox removed", 10*time.Second, func() bool { return len(e.sandboxes(gone.UID)) == 0 })
	// Let several relists and syncs pass, then compare.
	time.Sleep(3 * time.Second)
	l = e.pods()
	for _, p := range l.Pods {
		if p.Phase != "Running" || p.Restarts != 0 || p.Ready != 1 {
			t.Errorf("pod %s after the restart: phase %s ready %d restarts %d", p.Name, p.Phase, p.Ready, p.Restarts)
		}
	}
	after := runtimeIDs(e)
	var want []string
	for _, id := range before {
		if id.uid != gone.UID {
			want = append(want, id.String())
		}
	}
	var got []string
	for _, id := range after {
		got = append(got, id.String())
	}
	sort.Strings(want)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runtime objects after the restart differ:\n got %v\nwant %v", got, want)
	}
}

type runtimeID struct{ kind, uid, id, state string }

func (r runtimeID) String() string { return r.kind + "/" + r.id + "/" + r.state }

// runtimeIDs lists the runtime's Berth sandboxes and containers, sorted (the runtime lists them in
// no particular order).
func runtimeIDs(e *env) []runtimeID {
	var out []runtimeID
	for _, sb := range e.sandboxes("") {
		out = append(out, runtimeID{"sandbox", sb.Labels["io.kubernetes.pod.uid"], sb.Id, sb.State.String()})
	}
	for _, c := range e.containers("") {
		out = append(out, runtimeID{"container", c.Labels["io.kubernetes.pod.uid"], c.Id, c.State.String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
