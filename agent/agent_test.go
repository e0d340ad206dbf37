package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeNode is an agent on a fake CRI runtime (a real gRPC server, spoken to by the real client) with
// a fake clock shared by both, so back-off and grace periods are asserted without waiting.
type fakeNode struct {
	t         *testing.T
	srv       *fakecri.Server
	rt        *recordingRuntime
	clock     *clocktesting.FakeClock
	manifests string
	logs      string
	root      string
	agent     *Agent
	// configure, when set, adjusts the agent's Config before it starts (newFakeNodeWith).
	configure func(*Config)
	cancel    context.CancelFunc
	done      chan struct{}
}

// recordingRuntime notes the grace period of every StopContainer call, and the order of container
// creations, starts and stops (as "create <name>", "start <name>", "stop <name>") with the
// configurations created.
type recordingRuntime struct {
	*cri.Client
	mu      sync.Mutex
	graces  []int64
	calls   []string
	names   map[string]string // container ID → name
	configs map[string]*runtimeapi.ContainerConfig
	graceOf map[string]int64 // container name → grace of its last stop
	parents []string         // CgroupParent of every RunPodSandbox
}

func (r *recordingRuntime) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	r.mu.Lock()
	r.parents = append(r.parents, cfg.GetLinux().GetCgroupParent())
	r.mu.Unlock()
	return r.Client.RunPodSandbox(ctx, cfg, handler)
}

func (r *recordingRuntime) note(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

func (r *recordingRuntime) name(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.names[id]
}

func (r *recordingRuntime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	id, err := r.Client.CreateContainer(ctx, sandboxID, cfg, sandboxCfg)
	if err == nil {
		r.mu.Lock()
		if r.names == nil {
			r.names, r.configs = map[string]string{}, map[string]*runtimeapi.ContainerConfig{}
		}
		r.names[id] = cfg.Metadata.Name
		r.configs[cfg.Metadata.Name] = cfg
		r.mu.Unlock()
		r.note("create " + cfg.Metadata.Name)
	}
	return id, err
}

func (r *recordingRuntime) StartContainer(ctx context.Context, id string) error {
	r.note("start " + r.name(id))
	return r.Client.StartContainer(ctx, id)
}

func (r *recordingRuntime) StopContainer(ctx context.Context, id string, grace int64) error {
	name := r.name(id)
	r.mu.Lock()
	r.graces = append(r.graces, grace)
	if r.graceOf == nil {
		r.graceOf = map[string]int64{}
	}
	r.graceOf[name] = grace
	r.mu.Unlock()
	r.note("stop " + name)
	return r.Client.StopContainer(ctx, id, grace)
}

// recorded returns the calls noted so far, keeping those with one of the given prefixes.
func (r *recordingRuntime) recorded(prefixes ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func (r *recordingRuntime) stopGraces() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.graces...)
}

func newFakeNode(t *testing.T, manifests map[string]string) *fakeNode {
	t.Helper()
	return newFakeNodeWith(t, manifests, nil)
}

// newFakeNodeWith is newFakeNode with configure applied to the agent's Config.
func newFakeNodeWith(t *testing.T, manifests map[string]string, configure func(*Config)) *fakeNode {
	t.Helper()
	return newFakeNodeRuntime(t, manifests, nil, configure)
}

// newFakeNodeRuntime is newFakeNodeWith with configureRuntime applied to the fake CRI's Config.
func newFakeNodeRuntime(t *testing.T, manifests map[string]string, configureRuntime func(*fakecri.Config), configure func(*Config)) *fakeNode {
	t.Helper()
	dir := t.TempDir()
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	rc := fakecri.Config{Images: []string{"busybox"}, Clock: clk}
	if configureRuntime != nil {
		configureRuntime(&rc)
	}
	srv := fakecri.New(rc)
	if err := srv.Serve(filepath.Join(dir, "cri.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	client, err := cri.NewClient(cri.ClientConfig{Endpoint: srv.Endpoint(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	n := &fakeNode{t: t, srv: srv, rt: &recordingRuntime{Client: client}, clock: clk,
		manifests: filepath.Join(dir, "manifests"), logs: filepath.Join(dir, "logs"), root: filepath.Join(dir, "root"), configure: configure}
	if err := os.MkdirAll(n.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range manifests {
		n.write(name, body)
	}
	n.start()
	return n
}

func (n *fakeNode) write(name, body string) {
	if err := os.WriteFile(filepath.Join(n.manifests, name), []byte(body), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) start() {
	n.t.Helper()
	cfg := Config{
		NodeName:      "node",
		RootDir:       n.root,
		PodLogsDir:    n.logs,
		StaticPodPath: n.manifests,
		Runtime:       n.rt,
		RuntimeName:   "fakecri",
		NodeIPs:       []string{"192.0.2.10"},
		Clock:         n.clock,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if n.configure != nil {
		n.configure(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.agent, n.cancel, n.done = a, cancel, make(chan struct{})
	go func() { a.Run(ctx); close(n.done) }()
	n.t.Cleanup(n.stop)
}

func (n *fakeNode) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

// waitView polls the local view in real time (the agent's goroutines run freely; only their
// timers are on the fake clock).
func (n *fakeNode) waitView(what string, cond func(PodList) bool) PodList {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := n.agent.PodList()
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out waiting for %s; view: %+v", what, l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stepUntil advances the fake clock in small steps until cond holds: for changes that go through the
// static source, whose debounce timer runs on the fake clock and may be armed after any given step.
func (n *fakeNode) stepUntil(what string, cond func(PodList) bool) PodList {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := n.agent.PodList(); cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out waiting for %s; view: %+v", what, n.agent.PodList())
		}
		n.clock.Step(50 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
}

// settle lets the agent's goroutines react to a clock step, then checks cond still holds: used to
// prove that something does NOT happen before its time.
func (n *fakeNode) holds(what string, cond func(PodList) bool) {
	n.t.Helper()
	for range 20 {
		if l := n.agent.PodList(); !cond(l) {
			n.t.Fatalf("%s no longer holds: %+v", what, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tick steps the fake clock by d in relist-sized steps, so the relist runs along the way.
func (n *fakeNode) tick(d time.Duration) {
	for d > 0 {
		s := min(d, time.Second)
		n.clock.Step(s)
		d -= s
		time.Sleep(5 * time.Millisecond)
	}
}

func pod(name, policy, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 7
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
%s`, name, policy, extra)
}

func viewPod(l PodList, name string) *PodView {
	for i := range l.Pods {
		if l.Pods[i].Name == name+"-node" {
			return &l.Pods[i]
		}
	}
	return nil
}

func runningWith(name string, restarts int) func(PodList) bool {
	return func(l PodList) bool {
		p := viewPod(l, name)
		return p != nil && p.Phase == "Running" && p.Ready == 1 && p.Restarts == restarts && p.Containers[0].State == "running"
	}
}

// TestCrashLoopBackOff drives a container that keeps dying: the first restart comes at once, then
// after 10s, then 20s — not a moment before — with CrashLoopBackOff shown meanwhile.
func TestCrashLoopBackOff(t *testing.T) {
	n := newFakeNode(t, map[string]string{"crash.yaml": pod("crash", "Always", "")})
	l := n.waitView("running", runningWith("crash", 0))

	kill := func(l PodList) {
		if err := n.srv.SetContainerExited(viewPod(l, "crash").Containers[0].ID, 1, "Error"); err != nil {
			t.Fatal(err)
		}
		n.tick(time.Second) // the relist notices
	}
	kill(l)
	l = n.waitView("first restart at once", runningWith("crash", 1))

	for _, delay := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		kill(l)
		backingOff := func(l PodList) bool {
			p := viewPod(l, "crash")
			return p != nil && strings.Contains(p.Error, "CrashLoopBackOff") && strings.Contains(p.Error, fmt.Sprintf("back-off %s", delay))
		}
		l = n.waitView("CrashLoopBackOff "+delay.String(), backingOff)
		restarts := viewPod(l, "crash").Restarts
		n.tick(delay - 2*time.Second) // 1s already passed in kill(), 1s short of the delay
		n.holds("still backing off before "+delay.String(), backingOff)
		n.tick(2 * time.Second)
		l = n.waitView("restart after "+delay.String(), runningWith("crash", restarts+1))
	}
	// Only the newest dead instance is kept beside the running one.
	if c := n.srv.Calls()["RemoveContainer"]; c == 0 {
		t.Errorf("no dead container was garbage-collected")
	}
	cs, err := n.rt.ListContainers(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Errorf("runtime holds %d instances, want 2 (running + newest dead)", len(cs))
	}
}

// TestRestartPolicyOnFailureAndNever: OnFailure restarts a failure but not a success; Never
// restarts nothing and the pod fails.
func TestRestartPolicyOnFailureAndNever(t *testing.T) {
	n := newFakeNode(t, map[string]string{
		"ok.yaml":    pod("ok", "OnFailure", ""),
		"fail.yaml":  pod("fail", "OnFailure", ""),
		"never.yaml": pod("never", "Never", ""),
	})
	l := n.waitView("all running", func(l PodList) bool {
		return runningWith("ok", 0)(l) && runningWith("fail", 0)(l) && runningWith("never", 0)(l)
	})
	for name, code := range map[string]int32{"ok": 0, "fail": 2, "never": 2} {
		if err := n.srv.SetContainerExited(viewPod(l, name).Containers[0].ID, code, ""); err != nil {
			t.Fatal(err)
		}
	}
	n.tick(time.Second)
	n.waitView("final states", func(l PodList) bool {
		ok, never := viewPod(l, "ok"), viewPod(l, "never")
		return ok.Phase == "Succeeded" && ok.Restarts == 0 &&
			runningWith("fail", 1)(l) &&
			never.Phase == "Failed" && never.Restarts == 0 && *never.Containers[0].ExitCode == 2
	})
}

// TestRemovedPodTerminatedWithGrace: deleting a manifest stops the containers with the pod's grace
// period and removes sandbox, containers and the log directory.
func TestRemovedPodTerminatedWithGrace(t *testing.T) {
	n := newFakeNode(t, map[string]string{"web.yaml": pod("web", "Always", "")})
	l := n.waitView("running", runningWith("web", 0))
	uid := viewPod(l, "web").UID
	logDir := filepath.Join(n.logs, "default_web-node_"+uid)
	if _, err := os.Stat(logDir); err != nil {
		t.Fatalf("pod log dir: %v", err)
	}
	if err := os.Remove(filepath.Join(n.manifests, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	n.stepUntil("pod removed", func(l PodList) bool { return len(l.Pods) == 0 })
	sbs, _ := n.rt.ListPodSandbox(context.Background(), nil)
	cs, _ := n.rt.ListContainers(context.Background(), nil)
	if len(sbs) != 0 || len(cs) != 0 {
		t.Errorf("left in the runtime: %d sandboxes, %d containers", len(sbs), len(cs))
	}
	if _, err := os.Stat(logDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log dir still there: %v", err)
	}
	n.rt.mu.Lock()
	defer n.rt.mu.Unlock()
	if len(n.rt.graces) != 1 || n.rt.graces[0] != 7 {
		t.Errorf("StopContainer graces = %v, want [7]", n.rt.graces)
	}
}

// TestRestartAdoptsAndCleansOrphans: a new agent on the same runtime adopts running pods without a
// single create call, and removes the pod whose manifest vanished while no agent ran.
func TestRestartAdoptsAndCleansOrphans(t *testing.T) {
	n := newFakeNode(t, map[string]string{"a.yaml": pod("a", "Always", ""), "b.yaml": pod("b", "Always", "")})
	n.waitView("both running", func(l PodList) bool { return runningWith("a", 0)(l) && runningWith("b", 0)(l) })
	n.stop()
	before := n.srv.Calls()
	if err := os.Remove(filepath.Join(n.manifests, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	n.start()
	n.waitView("a adopted", runningWith("a", 0))
	deadline := time.Now().Add(10 * time.Second)
	for {
		sbs, _ := n.rt.ListPodSandbox(context.Background(), nil)
		if len(sbs) == 1 && sbs[0].Metadata.Name == "a-node" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan b not removed: %v", sbs)
		}
		n.tick(time.Second)
	}
	after := n.srv.Calls()
	for _, call := range []string{"RunPodSandbox", "CreateContainer", "StartContainer"} {
		if after[call] != before[call] {
			t.Errorf("%s called %d times after the restart", call, after[call]-before[call])
		}
	}
	if l := n.agent.PodList(); len(l.Pods) != 1 {
		t.Errorf("view after restart: %+v", l)
	}
}

// TestImagePullBackOff: a failing pull shows ErrImagePull, then ImagePullBackOff, and is retried
// when the back-off ends.
func TestImagePullBackOff(t *testing.T) {
	n := newFakeNode(t, nil)
	// Every status the worker publishes, in order: ErrImagePull lasts until the worker's next
	// sync, which anything may trigger (a relist, the runtime's events), too briefly to poll for.
	var mu sync.Mutex
	var seen []string
	n.agent.store.mu.Lock()
	n.agent.store.onChange = func(types.UID) {
		if p := viewPod(n.agent.PodList(), "img"); p != nil {
			mu.Lock()
			seen = append(seen, p.Error)
			mu.Unlock()
		}
	}
	n.agent.store.mu.Unlock()
	seenPrefix := func(prefix, contains string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range seen {
				if strings.HasPrefix(e, prefix) && strings.Contains(e, contains) {
					return true
				}
			}
			return false
		}
	}
	n.srv.InjectError("PullImage", errors.New("registry unreachable"))
	n.write("img.yaml", strings.Replace(pod("img", "Always", ""), "image: busybox\n    imagePullPolicy: IfNotPresent", "image: example.com/app:v1\n    imagePullPolicy: IfNotPresent", 1))
	n.stepUntil("ErrImagePull", func(PodList) bool { return seenPrefix("ErrImagePull", "registry unreachable")() })
	n.tick(time.Second)
	n.waitView("ImagePullBackOff", func(l PodList) bool {
		p := viewPod(l, "img")
		return p != nil && strings.HasPrefix(p.Error, "ImagePullBackOff")
	})
	n.tick(10 * time.Second)
	n.waitView("pulled and running", runningWith("img", 0))
}

// TestInitContainersRunInOrder: each init container runs to success before the next; app
// containers start only after all of them; a failing init container is retried.
func TestInitContainersRunInOrder(t *testing.T) {
	n := newFakeNode(t, map[string]string{"init.yaml": `apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  initContainers:
  - {name: one, image: busybox, imagePullPolicy: IfNotPresent}
  - {name: two, image: busybox, imagePullPolicy: IfNotPresent}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent}
`})
	state := func(l PodList, name string) ContainerView {
		for _, c := range viewPod(l, "init").Containers {
			if c.Name == name {
				return c
			}
		}
		return ContainerView{}
	}
	l := n.waitView("one running", func(l PodList) bool { p := viewPod(l, "init"); return p != nil && state(l, "one").State == "running" })
	if s := state(l, "two"); s.ID != "" || viewPod(l, "init").Phase != "Pending" || state(l, "app").Reason != reasonPodInitializing {
		t.Fatalf("while one runs: two %+v app %+v phase %s", s, state(l, "app"), viewPod(l, "init").Phase)
	}
	n.srv.SetContainerExited(state(l, "one").ID, 1, "Error") // fails: retried at once
	n.tick(time.Second)
	l = n.waitView("one retried", func(l PodList) bool { c := state(l, "one"); return c.State == "running" && c.Restarts == 1 })
	n.srv.SetContainerExited(state(l, "one").ID, 0, "Completed")
	n.tick(time.Second)
	l = n.waitView("two running", func(l PodList) bool { return state(l, "two").State == "running" })
	if state(l, "app").ID != "" {
		t.Fatalf("app started before the init containers finished")
	}
	n.srv.SetContainerExited(state(l, "two").ID, 0, "Completed")
	n.tick(time.Second)
	n.waitView("app running", func(l PodList) bool {
		p := viewPod(l, "init")
		return p.Phase == "Running" && state(l, "app").State == "running" && state(l, "one").State == "exited" && state(l, "two").State == "exited"
	})
}

// TestProbesDriveReadinessAndRestarts: a readiness probe flips the container's ready both ways; a
// failing liveness probe gets the container killed (with the pod's grace) and restarted.
func TestProbesDriveReadinessAndRestarts(t *testing.T) {
	var live, ready atomic.Bool
	live.Store(true)
	ready.Store(true)
	n := newFakeNode(t, map[string]string{"probed.yaml": pod("probed", "Always", `    readinessProbe:
      exec: {command: ["ready"]}
      initialDelaySeconds: 3
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      exec: {command: ["live"]}
      periodSeconds: 1
      failureThreshold: 2
`)})
	n.srv.SetExecHandler(func(_ string, cmd []string) ([]byte, []byte, int32, error) {
		ok := map[string]*atomic.Bool{"ready": &ready, "live": &live}[cmd[0]]
		if ok != nil && ok.Load() {
			return []byte("fine"), nil, 0, nil
		}
		return []byte(cmd[0] + " says no"), nil, 1, nil
	})
	isReady := func(want int) func(PodList) bool {
		return func(l PodList) bool {
			p := viewPod(l, "probed")
			return p != nil && p.Phase == "Running" && p.Ready == want && p.Restarts == 0
		}
	}
	// Readiness starts failing: not ready until the first probe, after its initial delay, passes.
	n.waitView("running, not yet ready", isReady(0))
	n.tick(2 * time.Second)
	n.holds("not ready during the initial delay", isReady(0))
	n.tick(2 * time.Second)
	n.waitView("ready after the first probe", isReady(1))
	ready.Store(false)
	n.tick(2 * time.Second)
	n.waitView("unready after a failed probe", isReady(0))
	ready.Store(true)
	n.tick(2 * time.Second)
	n.waitView("ready again", isReady(1))

	live.Store(false)
	restarted := func(l PodList) bool { p := viewPod(l, "probed"); return p != nil && p.Restarts >= 1 }
	for i := 0; !restarted(n.agent.PodList()); i++ {
		if i == 10 {
			t.Fatalf("no restart after 10s of failing liveness probes: %+v", n.agent.PodList())
		}
		n.tick(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	live.Store(true) // the new instance is healthy
	n.waitView("restarted after the liveness failures", func(l PodList) bool {
		p := viewPod(l, "probed")
		return p != nil && p.Restarts == 1 && p.Containers[0].State == "running"
	})
	n.rt.mu.Lock()
	graces := append([]int64(nil), n.rt.graces...)
	n.rt.mu.Unlock()
	if len(graces) != 1 || graces[0] != 7 {
		t.Errorf("liveness kill graces = %v, want [7] (the pod's terminationGracePeriodSeconds)", graces)
	}
}
