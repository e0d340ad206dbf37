package probes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testclock "k8s.io/utils/clock/testing"
)

// fakeProbes replaces the prober: the outcome of each attempt comes from a script per container ID
// and kind (the kind is the exec command of the probe, see probeOf).
type fakeProbes struct {
	mu      sync.Mutex
	queue   map[string][]Outcome // consumed in order; the last one stays
	calls   map[string]int
	targets map[string]target
}

func newFakeProbes() *fakeProbes {
	return &fakeProbes{queue: map[string][]Outcome{}, calls: map[string]int{}, targets: map[string]target{}}
}

func fkey(id string, k Kind) string { return id + "/" + string(k) }

// set scripts the next outcomes of id's probe of kind k; the last one repeats.
func (f *fakeProbes) set(id string, k Kind, outcomes ...Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue[fkey(id, k)] = outcomes
}

func (f *fakeProbes) count(id string, k Kind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[fkey(id, k)]
}

func (f *fakeProbes) lastTarget(id string, k Kind) target {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.targets[fkey(id, k)]
}

func (f *fakeProbes) run(ctx context.Context, p *v1.Probe, t target) attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := t.containerID + "/" + p.Exec.Command[0]
	f.calls[key]++
	f.targets[key] = t
	q := f.queue[key]
	out := Passed
	if len(q) > 0 {
		out = q[0]
		if len(q) > 1 {
			f.queue[key] = q[1:]
		}
	}
	return attempt{out, fmt.Sprintf("%s #%d", out, f.calls[key])}
}

// probeOf is a probe of kind k that the fake prober recognises, with mods applied.
func probeOf(k Kind, mods ...func(*v1.Probe)) *v1.Probe {
	p := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{string(k)}}}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func period(s int32) func(*v1.Probe) { return func(p *v1.Probe) { p.PeriodSeconds = s } }
func delay(s int32) func(*v1.Probe)  { return func(p *v1.Probe) { p.InitialDelaySeconds = s } }
func thresholds(ok, ko int32) func(*v1.Probe) {
	return func(p *v1.Probe) { p.SuccessThreshold, p.FailureThreshold = ok, ko }
}
func grace(s int64) func(*v1.Probe) {
	return func(p *v1.Probe) { p.TerminationGracePeriodSeconds = &s }
}

func testPod(uid string, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: "pod-" + uid, Namespace: "default"},
		Spec:       v1.PodSpec{Containers: containers, RestartPolicy: v1.RestartPolicyAlways},
	}
}

// harness is a Manager on a fake clock with the fake prober, recording changes and events.
type harness struct {
	t    *testing.T
	clk  *testclock.FakeClock
	m    *Manager
	f    *fakeProbes
	t0   time.Time
	mu   sync.Mutex
	chg  map[types.UID]int
	evts []Event
}

func newHarness(t *testing.T, jitter bool) *harness {
	t.Helper()
	h := &harness{t: t, t0: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), f: newFakeProbes(), chg: map[types.UID]int{}}
	h.clk = testclock.NewFakeClock(h.t0)
	m, err := NewManager(ManagerConfig{
		Clock:  h.clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Jitter: jitter,
		OnChange: func(uid types.UID) {
			h.mu.Lock()
			h.chg[uid]++
			h.mu.Unlock()
		},
		OnEvent: func(e Event) {
			h.mu.Lock()
			h.evts = append(h.evts, e)
			h.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.run = h.f.run
	h.m = m
	t.Cleanup(m.Stop)
	return h
}

func (h *harness) changes(uid string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.chg[types.UID(uid)]
}

func (h *harness) events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.evts...)
}

// idle waits until every worker is parked on the clock and exactly n are: each worker woken by the
// last step or started by the last Sync has made its attempt and recorded it, and each stopped one
// has returned. (A worker counts in Manager.live until its goroutine returns, and waits on the
// clock only while parked, so live == waiters means nothing runs.)
func (h *harness) idle(n int) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for int64(h.clk.Waiters()) != h.m.live.Load() || h.clk.Waiters() != n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d workers, %d wait on the clock; want %d parked", h.m.live.Load(), h.clk.Waiters(), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// step advances the clock by d and waits until n workers wait again.
func (h *harness) step(d time.Duration, n int) {
	h.t.Helper()
	h.clk.Step(d)
	h.idle(n)
}

func (h *harness) running(name, id string, startedAt time.Time) ContainerState {
	return ContainerState{Name: name, ID: id, StartedAt: startedAt, Running: true}
}

func TestReadinessThresholds(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", ReadinessProbe: probeOf(Readiness, thresholds(2, 3))}
	pod := testPod("p1", c)
	h.f.set("c1", Readiness, Passed)
	if h.m.Ready("c1") {
		t.Fatal("ready before Sync")
	}
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	// One success of the two needed: readiness starts failing and is still failing.
	if n := h.f.count("c1", Readiness); n != 1 {
		t.Fatalf("%d attempts at start, want 1 (no initial delay)", n)
	}
	if h.m.Ready("c1") || !h.m.Started("c1") {
		t.Fatalf("after 1 success: ready %v started %v, want false true", h.m.Ready("c1"), h.m.Started("c1"))
	}
	h.step(10*time.Second, 1)
	if !h.m.Ready("c1") || h.changes("p1") != 1 {
		t.Fatalf("after 2 successes: ready %v, changes %d", h.m.Ready("c1"), h.changes("p1"))
	}
	// Failures: ready until the third in a row; an errored attempt neither counts nor breaks the run.
	h.f.set("c1", Readiness, Failed, Errored, Failed, Failed)
	for i, want := range []bool{true, true, true, false, false} {
		h.step(10*time.Second, 1)
		if got := h.m.Ready("c1"); got != want {
			t.Fatalf("failure step %d: ready %v, want %v", i+1, got, want)
		}
	}
	if h.changes("p1") != 2 {
		t.Errorf("changes %d, want 2", h.changes("p1"))
	}
	// A success then a failure then two successes: the run starts again at each change.
	h.f.set("c1", Readiness, Passed, Failed, Passed, Warned)
	for i, want := range []bool{false, false, false, true} {
		h.step(10*time.Second, 1)
		if got := h.m.Ready("c1"); got != want {
			t.Fatalf("recovery step %d: ready %v, want %v", i+1, got, want)
		}
	}
	// Every attempt that did not pass became an event.
	var failed, errored, warned int
	for _, e := range h.events() {
		if e.Kind != Readiness || e.ContainerID != "c1" || e.Container != "app" || e.Pod.String() != "default/pod-p1" || e.PodUID != "p1" {
			t.Errorf("event %+v", e)
		}
		switch e.Outcome {
		case Failed:
			failed++
		case Errored:
			errored++
		case Warned:
			warned++
		}
	}
	if failed != 5 || errored != 1 || warned != 1 {
		t.Errorf("events: %d failed, %d errored, %d warned; want 5 1 1", failed, errored, warned)
	}
}

func TestLivenessStartsPassingAndKillsAtThreshold(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", LivenessProbe: probeOf(Liveness, period(5), grace(7))}
	h.f.set("c1", Liveness, Failed, Failed, Passed, Failed, Failed, Failed)
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	// Liveness starts passing; without a readiness probe a started container is ready.
	if _, failed := h.m.LivenessFailed("c1"); failed || !h.m.Ready("c1") || !h.m.Started("c1") {
		t.Fatal("a new container is not alive, ready and started")
	}
	for i := 2; i <= 5; i++ { // attempts 2..5: F P F F
		h.step(5*time.Second, 1)
		if _, failed := h.m.LivenessFailed("c1"); failed {
			t.Fatalf("failed after attempt %d", i)
		}
	}
	h.step(5*time.Second, 0) // attempt 6: the third failure in a row; the worker ends
	k, failed := h.m.LivenessFailed("c1")
	if !failed {
		t.Fatal("not failed after three failures in a row")
	}
	want := Kill{Kind: Liveness, Message: "Container app failed liveness probe, will be restarted", Output: "failed #6"}
	if k.Kind != want.Kind || k.Message != want.Message || k.Output != want.Output || k.GracePeriodSeconds == nil || *k.GracePeriodSeconds != 7 || k.GracePeriod(30) != 7 {
		t.Errorf("kill = %+v, want %+v with grace 7", k, want)
	}
	if h.changes("p1") != 1 {
		t.Errorf("changes %d, want 1", h.changes("p1"))
	}
	// The worker has stopped: the instance is to be killed, nothing probes it any more.
	h.step(time.Minute, 0)
	if n := h.f.count("c1", Liveness); n != 6 {
		t.Errorf("%d attempts, want 6", n)
	}
	// Still reported until the agent's Sync no longer lists the instance; a new instance starts
	// afresh.
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c2", h.clk.Now())})
	h.idle(1)
	if _, failed := h.m.LivenessFailed("c1"); failed {
		t.Error("the replaced instance is still reported")
	}
	if _, failed := h.m.LivenessFailed("c2"); failed {
		t.Error("the new instance inherited the failure")
	}
	if n := h.f.count("c2", Liveness); n != 1 {
		t.Errorf("new instance: %d attempts, want 1", n)
	}
}

func TestKillGraceAndRestartPolicy(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", LivenessProbe: probeOf(Liveness, thresholds(1, 1))}
	pod := testPod("p1", c)
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	h.f.set("c1", Liveness, Failed)
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(0)
	k, failed := h.m.LivenessFailed("c1")
	if !failed || k.GracePeriodSeconds != nil || k.GracePeriod(30) != 30 || k.Message != "Container app failed liveness probe, will not be restarted (restartPolicy Never)" {
		t.Errorf("kill = %+v", k)
	}
}

func TestInitialDelay(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", ReadinessProbe: probeOf(Readiness, delay(25))}
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	for _, s := range []struct {
		step  time.Duration
		calls int
	}{{0, 0}, {10 * time.Second, 0}, {10 * time.Second, 0}, {4 * time.Second, 0}, {time.Second, 1}, {9 * time.Second, 1}, {time.Second, 2}, {10 * time.Second, 3}} {
		if s.step > 0 {
			h.step(s.step, 1)
		}
		if n := h.f.count("c1", Readiness); n != s.calls {
			t.Fatalf("at %s: %d attempts, want %d", h.clk.Since(h.t0), n, s.calls)
		}
	}
	// The delay counts from the container's start, not from Sync: a container that started 20s
	// ago is first probed 5s from now.
	h.m.Sync(testPod("p2", c), "10.0.0.2", []ContainerState{h.running("app", "c2", h.clk.Now().Add(-20*time.Second))})
	h.idle(2)
	h.step(4*time.Second, 2)
	if n := h.f.count("c2", Readiness); n != 0 {
		t.Fatalf("c2: %d attempts before its delay", n)
	}
	h.step(time.Second, 2)
	if n := h.f.count("c2", Readiness); n != 1 {
		t.Fatalf("c2: %d attempts at its delay, want 1", n)
	}
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{
		Name:           "app",
		StartupProbe:   probeOf(Startup, period(5), thresholds(1, 10)),
		LivenessProbe:  probeOf(Liveness, period(10)),
		ReadinessProbe: probeOf(Readiness, period(10)),
	}
	h.f.set("c1", Startup, Failed, Failed, Passed)
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1) // only the startup worker runs; the others start when it passes
	for i := 0; i < 2; i++ {
		if h.m.Started("c1") || h.m.Ready("c1") {
			t.Fatalf("started or ready before the startup probe passed (attempt %d)", i+1)
		}
		if _, failed := h.m.LivenessFailed("c1"); failed {
			t.Fatal("liveness failed before start")
		}
		if h.f.count("c1", Liveness)+h.f.count("c1", Readiness) != 0 {
			t.Fatal("liveness or readiness ran before the startup probe passed")
		}
		if i == 0 {
			h.step(5*time.Second, 1)
		}
	}
	// Third attempt passes: started; liveness and readiness run at once, startup never again.
	h.step(5*time.Second, 2)
	if !h.m.Started("c1") || !h.m.Ready("c1") {
		t.Fatalf("started %v ready %v after the startup probe passed", h.m.Started("c1"), h.m.Ready("c1"))
	}
	if h.f.count("c1", Liveness) != 1 || h.f.count("c1", Readiness) != 1 {
		t.Fatalf("liveness %d readiness %d attempts, want 1 1", h.f.count("c1", Liveness), h.f.count("c1", Readiness))
	}
	for i := 0; i < 5; i++ {
		h.step(10*time.Second, 2)
	}
	if n := h.f.count("c1", Startup); n != 3 {
		t.Errorf("startup ran %d times, want 3", n)
	}
	if h.f.count("c1", Liveness) != 6 || h.f.count("c1", Readiness) != 6 {
		t.Errorf("liveness %d readiness %d attempts, want 6 6", h.f.count("c1", Liveness), h.f.count("c1", Readiness))
	}
	if h.changes("p1") != 2 { // started, ready
		t.Errorf("changes %d, want 2", h.changes("p1"))
	}
}

func TestStartupFailureKills(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{
		Name:          "app",
		StartupProbe:  probeOf(Startup, period(2), thresholds(1, 3), grace(3)),
		LivenessProbe: probeOf(Liveness, grace(60)),
	}
	h.f.set("c1", Startup, Failed)
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	h.step(2*time.Second, 1)
	h.step(2*time.Second, 0)
	k, failed := h.m.LivenessFailed("c1")
	if !failed || k.Kind != Startup || k.GracePeriod(30) != 3 || k.Message != "Container app failed startup probe, will be restarted" {
		t.Fatalf("kill = %+v, %v", k, failed)
	}
	if h.m.Started("c1") || h.f.count("c1", Liveness) != 0 {
		t.Error("a container whose startup probe failed started or was liveness-probed")
	}
}

func TestWorkersStopWithTheirInstance(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", LivenessProbe: probeOf(Liveness), ReadinessProbe: probeOf(Readiness)}
	other := v1.Container{Name: "side"} // no probes: ready once running
	pod := testPod("p1", c, other)
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0), h.running("side", "s1", h.t0)})
	h.idle(2)
	h.step(10*time.Second, 2)
	if !h.m.Ready("c1") || !h.m.Ready("s1") || !h.m.Started("s1") {
		t.Fatal("not ready")
	}
	// A new instance replaces c1: its workers stop, the new one starts not ready.
	h.m.Sync(pod, "10.0.0.1", []ContainerState{
		{Name: "app", ID: "c1", StartedAt: h.t0, Running: false},
		h.running("app", "c2", h.clk.Now()),
		h.running("side", "s1", h.t0),
	})
	h.idle(2)
	if h.m.Ready("c1") || h.m.Started("c1") {
		t.Error("the old instance is still ready")
	}
	c1 := h.f.count("c1", Liveness) + h.f.count("c1", Readiness)
	h.step(10*time.Second, 2)
	if n := h.f.count("c1", Liveness) + h.f.count("c1", Readiness); n != c1 {
		t.Errorf("the old instance was probed after it was replaced (%d, then %d attempts)", c1, n)
	}
	if h.f.count("c2", Readiness) != 2 || !h.m.Ready("c2") {
		t.Errorf("new instance: %d readiness attempts, ready %v", h.f.count("c2", Readiness), h.m.Ready("c2"))
	}
	// The container stops (the agent lists it as not running, or not at all): workers stop.
	h.m.Sync(pod, "10.0.0.1", []ContainerState{{Name: "app", ID: "c2", Running: false}})
	h.idle(0)
	if h.m.Ready("c2") || h.m.Ready("s1") {
		t.Error("stopped containers are ready")
	}
	// Back, then the pod goes.
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("app", "c3", h.clk.Now())})
	h.idle(2)
	h.m.RemovePod("p1")
	h.idle(0)
	if h.m.Started("c3") {
		t.Error("removed pod's container still known")
	}
	h.m.mu.Lock()
	pods, ids := len(h.m.pods), len(h.m.byID)
	h.m.mu.Unlock()
	if pods != 0 || ids != 0 {
		t.Errorf("the manager still holds %d pods, %d instances", pods, ids)
	}
}

func TestTerminatingPodKeepsReadinessOnly(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", LivenessProbe: probeOf(Liveness), ReadinessProbe: probeOf(Readiness)}
	pod := testPod("p1", c)
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(2)
	now := metav1.NewTime(h.clk.Now())
	pod.DeletionTimestamp = &now
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	h.f.set("c1", Readiness, Failed)
	h.f.set("c1", Liveness, Failed)
	for i := 0; i < 3; i++ {
		h.step(10*time.Second, 1)
	}
	if h.m.Ready("c1") {
		t.Error("readiness did not go on during termination")
	}
	if _, failed := h.m.LivenessFailed("c1"); failed || h.f.count("c1", Liveness) != 1 {
		t.Errorf("liveness ran during termination: %d attempts", h.f.count("c1", Liveness))
	}
}

func TestSidecarsAreProbedInitContainersNot(t *testing.T) {
	h := newHarness(t, false)
	always := v1.ContainerRestartPolicyAlways
	pod := testPod("p1", v1.Container{Name: "app"})
	pod.Spec.InitContainers = []v1.Container{
		{Name: "init", ReadinessProbe: probeOf(Readiness)}, // invalid, and ignored
		{Name: "proxy", RestartPolicy: &always, ReadinessProbe: probeOf(Readiness), LivenessProbe: probeOf(Liveness, thresholds(1, 1))},
	}
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	h.f.set("x1", Liveness, Failed)
	h.m.Sync(pod, "10.0.0.1", []ContainerState{h.running("init", "i1", h.t0), h.running("proxy", "x1", h.t0), h.running("nope", "n1", h.t0)})
	h.idle(1) // proxy readiness; its liveness failed at once
	if h.f.count("i1", Readiness) != 0 || h.m.Started("i1") || h.m.Started("n1") {
		t.Error("a regular init container or an unknown container was taken")
	}
	if !h.m.Ready("x1") {
		t.Error("sidecar not ready")
	}
	if k, failed := h.m.LivenessFailed("x1"); !failed || k.Message != "Container proxy failed liveness probe, will be restarted" {
		t.Errorf("sidecar kill %+v %v: sidecars restart whatever the pod's policy", k, failed)
	}
}

func TestPodIPFollowsSync(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", ReadinessProbe: probeOf(Readiness), Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 80}}}
	pod := testPod("p1", c)
	h.m.Sync(pod, "", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	if tg := h.f.lastTarget("c1", Readiness); tg.podIP != "" || tg.containerID != "c1" || len(tg.container.Ports) != 1 {
		t.Errorf("target %+v", tg)
	}
	h.m.Sync(pod, "10.0.0.9", []ContainerState{h.running("app", "c1", h.t0)})
	h.step(10*time.Second, 1)
	if tg := h.f.lastTarget("c1", Readiness); tg.podIP != "10.0.0.9" {
		t.Errorf("target %+v", tg)
	}
}

func TestJitter(t *testing.T) {
	const pods = 100
	for _, tc := range []struct {
		name    string
		jitter  bool
		adopted bool // the containers started before the manager
		spread  bool
	}{
		{"adopted containers with jitter", true, true, true},
		{"adopted containers without jitter", false, true, false},
		{"new containers get no jitter", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.jitter)
			started := h.t0
			if tc.adopted {
				started = h.t0.Add(-time.Hour)
			}
			c := v1.Container{Name: "app", ReadinessProbe: probeOf(Readiness)}
			for i := range pods {
				id := fmt.Sprintf("c%d", i)
				h.m.Sync(testPod(fmt.Sprintf("p%d", i), c), "10.0.0.1", []ContainerState{h.running("app", id, started)})
			}
			h.idle(pods)
			first := map[int]int{} // second of the first attempt → pods
			seen := map[string]bool{}
			for s := 0; s <= 10; s++ {
				if s > 0 {
					h.step(time.Second, pods)
				}
				for i := range pods {
					id := fmt.Sprintf("c%d", i)
					if !seen[id] && h.f.count(id, Readiness) > 0 {
						seen[id] = true
						first[s]++
					}
				}
			}
			if len(seen) != pods {
				t.Fatalf("%d of %d pods probed within one period", len(seen), pods)
			}
			if tc.spread {
				// Uniform over ten seconds: every pod within one period, none at once, spread out.
				if first[0] > 1 || len(first) < 5 {
					t.Errorf("first attempts per second: %v", first)
				}
			} else if first[0] != pods {
				t.Errorf("first attempts per second: %v, want all at once", first)
			}
		})
	}
}

func TestStop(t *testing.T) {
	h := newHarness(t, false)
	c := v1.Container{Name: "app", StartupProbe: probeOf(Startup), LivenessProbe: probeOf(Liveness), ReadinessProbe: probeOf(Readiness)}
	h.f.set("c1", Startup, Failed)
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c1", h.t0)})
	h.idle(1)
	done := make(chan struct{})
	go func() { h.m.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	h.m.Sync(testPod("p1", c), "10.0.0.1", []ContainerState{h.running("app", "c2", h.t0)})
	if h.clk.Waiters() != 0 || h.m.Started("c2") {
		t.Error("Sync after Stop started workers")
	}
	h.m.Stop() // twice is fine
}

func TestEventText(t *testing.T) {
	e := Event{Kind: Liveness, Outcome: Failed, Output: "HTTP probe failed with statuscode: 500"}
	if e.Reason() != "Unhealthy" || e.Message() != "Liveness probe failed: HTTP probe failed with statuscode: 500" {
		t.Errorf("%s %q", e.Reason(), e.Message())
	}
	e = Event{Kind: Readiness, Outcome: Warned, Output: "Probe terminated redirects, Response body: x"}
	if e.Reason() != "ProbeWarning" || e.Message() != "Readiness probe warning: Probe terminated redirects, Response body: x" {
		t.Errorf("%s %q", e.Reason(), e.Message())
	}
	e = Event{Kind: Startup, Outcome: Errored, Output: "boom"}
	if e.Reason() != "Unhealthy" || e.Message() != "Startup probe errored: boom" {
		t.Errorf("%s %q", e.Reason(), e.Message())
	}
}
