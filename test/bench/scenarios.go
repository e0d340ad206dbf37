package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// scenario is one row family of the table.
type scenario struct {
	name    string
	runtime string // "fake" or "containerd"
	kind    string // burst, idle, probes, heal, direct
	pods    int
}

// The scenarios, in the order they run: the fake runtime first, then containerd, with
// cri-direct-30 right after the agents' 30-pod burst it bounds.
var allScenarios = []scenario{
	{"burst-fake-100", "fake", "burst", 100},
	{"burst-fake-500", "fake", "burst", 500},
	{"idle-fake-100", "fake", "idle", 100},
	{"probes-fake-100", "fake", "probes", 100},
	{"heal-fake", "fake", "heal", 20},
	{"burst-containerd-30", "containerd", "burst", 30},
	{"cri-direct-30", "containerd", "direct", 30},
	{"heal-containerd", "containerd", "heal", 20},
}

// result is one row: one scenario run by one agent. The first keys are the stable interface of
// results.json; the rest are details.
type result struct {
	Scenario  string   `json:"scenario"`
	Agent     string   `json:"agent"`
	Pods      int      `json:"pods"`
	P50       *float64 `json:"p50_ms"`
	P99       *float64 `json:"p99_ms"`
	Max       *float64 `json:"max_ms"`
	Wall      float64  `json:"wall_s"`
	CPU       float64  `json:"cpu_s"`
	RSS       float64  `json:"rss_mib"`
	APIWrites int      `json:"api_writes"`

	Error           string             `json:"error,omitempty"`
	PeakRSS         float64            `json:"peak_rss_mib,omitempty"`
	RSSAnon         float64            `json:"rss_anon_mib,omitempty"` // of rss_mib: heap and stacks
	RSSFile         float64            `json:"rss_file_mib,omitempty"` // of rss_mib: mapped files (the binary)
	APIWritesPerPod float64            `json:"api_writes_per_pod,omitempty"`
	APIRequests     map[string]int     `json:"api_requests,omitempty"`         // "verb resource" -> count, whole window
	APIPerPod       map[string]float64 `json:"api_requests_per_pod,omitempty"` // pod-scoped resources only
	CreateWall      float64            `json:"create_wall_s,omitempty"`        // first create sent → last create answered
	DeleteWall      float64            `json:"delete_wall_s,omitempty"`
	APIDrain        float64            `json:"api_drain_s,omitempty"` // last pod-scoped request after the last pod left the API
	CPUPerMin       float64            `json:"cpu_s_per_min,omitempty"`
	WallSequential  float64            `json:"wall_sequential_s,omitempty"`
	RuntimeCPU      float64            `json:"runtime_cpu_s,omitempty"`   // containerd's own CPU in the window
	Machine         *cpuShare          `json:"machine_cpu,omitempty"`     // the whole machine's CPU in the window (bursts)
	Walls           []float64          `json:"walls_s,omitempty"`         // -repeat: every run's wall; the row is the median run
	CPUs            []float64          `json:"cpus_s,omitempty"`          // -repeat: every run's cpu_s, in the order of walls_s (the CPU targets take their median)
	LifecycleCPU    float64            `json:"cpu_lifecycle_s,omitempty"` // bursts: the agent's CPU from the first create until the pods are deleted and it is quiet (the API writes' span)
	LimitWalls      map[string]float64 `json:"limit_walls_s,omitempty"`   // cri-direct with -direct-limits: wall by the most sandboxes created at once
	ProbeHits       int                `json:"probe_hits,omitempty"`
	ThreadsStart    int                `json:"threads_start,omitempty"`
	ThreadsEnd      int                `json:"threads_end,omitempty"`
	FDsStart        int                `json:"fds_start,omitempty"`
	FDsEnd          int                `json:"fds_end,omitempty"`
	GoroutinesEnd   int                `json:"goroutines_end,omitempty"`
	Load1           float64            `json:"load1_at_start"`
	Note            string             `json:"note,omitempty"`
	LatenciesMs     []float64          `json:"latencies_ms,omitempty"`
}

// Timeouts per scenario phase.
const (
	settle       = 3 * time.Second
	readyTimeout = 5 * time.Minute
	goneTimeout  = 3 * time.Minute
)

// runAgentScenario runs one scenario with berth or the kubelet.
func (h *harness) runAgentScenario(sc scenario, agent string) (res result) {
	res = result{Scenario: sc.name, Agent: agent, Pods: sc.pods, Load1: load1()}
	fail := func(err error) result {
		res.Error = err.Error()
		logf("%s/%s: FAILED: %v", sc.name, agent, err)
		return res
	}
	work := filepath.Join(h.work, sc.name+"-"+agent)
	_ = os.RemoveAll(work)
	defer removeWork(work)

	// The runtime.
	var endpoint string
	var rt *cri.Client
	var fake *fakecri.Server
	var runtimePid int
	switch sc.runtime {
	case "fake":
		fake = fakecri.New(fakecri.Config{Latency: h.fakeLatency, Images: []string{benchImage, sandboxImage}, CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
			NoContainerEvents: !h.fakeEvents})
		sock := filepath.Join(work, "fakecri.sock")
		if err := fake.Serve(sock); err != nil {
			return fail(err)
		}
		defer fake.Stop()
		endpoint = fake.Endpoint()
		var err error
		if rt, err = cri.NewClient(cri.ClientConfig{Endpoint: endpoint, Timeout: time.Minute}); err != nil {
			return fail(err)
		}
		defer rt.Close()
	case "containerd":
		c, err := h.runtime()
		if err != nil {
			return fail(err)
		}
		endpoint, rt = c.endpoint, c.rt
		if err := removeBenchPods(rt); err != nil {
			return fail(fmt.Errorf("cleaning the runtime: %w", err))
		}
		runtimePid = containerdPid()
	}
	defer func() {
		forceDeleteAll(context.Background(), h.cp.admin)
		if err := removeBenchPods(rt); err != nil {
			logf("cleaning the runtime after %s/%s: %v", sc.name, agent, err)
		}
		h.cp.forgetNode()
		if agent == agentKubelet {
			cleanKubeletCgroups()
		}
	}()

	// The agent.
	bin := h.berthBin
	if agent == agentKubelet {
		var err error
		if bin, err = h.kubelet(); err != nil {
			return fail(err)
		}
	}
	spec := agentSpec{kind: agent, bin: bin, endpoint: endpoint, kubeconfig: h.kubeconfig, cp: h.cp, work: work,
		logPath: filepath.Join(h.results, "logs", h.outName(sc, agent)+".log")}
	// -cpuprofile: the whole process for bursts and heals (--cpuprofile), the measured window
	// only for idle and probes (read from /debug/pprof), where startup and the burst would hide
	// the steady state.
	profilePath := ""
	if h.cpuProfile && agent == agentBerth {
		profilePath = filepath.Join(h.results, "profiles", h.outName(sc, agentBerth)+".cpu.pprof")
		if sc.kind != "idle" && sc.kind != "probes" && !(sc.kind == "burst" && sc.runtime == "containerd") {
			spec.cpuProfile = profilePath
		}
	}
	if h.logWrites {
		wl, err := os.Create(filepath.Join(h.results, "logs", h.outName(sc, agent)+".writes.log"))
		if err != nil {
			return fail(err)
		}
		h.proxy.logWrites(wl)
		defer func() { h.proxy.logWrites(nil); wl.Close() }()
	}
	logf("%s/%s: starting %s on %s (load %.2f)", sc.name, agent, agent, sc.runtime, res.Load1)
	a, err := startAgent(spec)
	if err != nil {
		return fail(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			a.stop(false)
		}
	}()
	time.Sleep(settle)
	s0 := a.sample()
	res.ThreadsStart, res.FDsStart = s0.Threads, s0.FDs

	run := fmt.Sprintf("%s-%s-%d", sc.name, agent, time.Now().Unix())
	ctx := context.Background()
	tr, err := newTracker(ctx, h.cp.admin, run)
	if err != nil {
		return fail(err)
	}
	defer tr.Close()

	var probeHits atomic.Int64
	opts := podOpts{}
	if sc.kind == "probes" {
		port, stop, err := probeTarget(&probeHits)
		if err != nil {
			return fail(err)
		}
		defer stop()
		opts.livenessPort = port
	}
	pods := make([]*v1.Pod, sc.pods)
	names := make([]string, sc.pods)
	for i := range pods {
		names[i] = fmt.Sprintf("%s-%03d", strings.TrimSuffix(sc.name, "-"+strconv.Itoa(sc.pods)), i)
		pods[i] = benchPod(names[i], h.cp.nodeName(), run, opts)
	}

	// Create the pods; the window (CPU, API requests) opens just before.
	a.rss.Reset()
	var rtProfiled, agentProfiled <-chan error
	if h.cpuProfile && sc.runtime == "containerd" && sc.kind == "burst" {
		// The burst's window for containerd and, for Berth, Berth itself (its whole-process
		// profile would be mostly startup and deletion next to a 30-pod burst).
		rtProfiled = profileContainerd(containerdProfileWindow, filepath.Join(h.results, "profiles", h.outName(sc, agent)+".containerd.pprof"))
		if profilePath != "" {
			agentProfiled = a.windowProfile(containerdProfileWindow, profilePath)
		}
	}
	cpu0, meter := a.sample().CPU, startCPUMeter(runtimePid, h.cp.pids())
	t0, err := createPods(ctx, h.cp.admin, tr, pods)
	if err != nil {
		return fail(err)
	}
	res.CreateWall = time.Since(t0).Seconds()
	if missing := tr.waitAll(names, readyTimeout, func(s *podState) bool { return !s.ready.IsZero() }); len(missing) > 0 {
		return fail(fmt.Errorf("%d of %d pods not Running+Ready within %s (first: %s)", len(missing), len(names), readyTimeout, missing[0]))
	}
	var lat []float64
	var last time.Time
	for _, n := range names {
		s := tr.get(n)
		lat = append(lat, ms(s.ready.Sub(s.created)))
		if s.ready.After(last) {
			last = s.ready
		}
	}
	burstCPU, share := a.sample().CPU-cpu0, meter.stop()
	if rtProfiled != nil {
		if err := <-rtProfiled; err != nil {
			logf("%s/%s: no containerd profile: %v", sc.name, agent, err)
		}
	}
	if agentProfiled != nil {
		if err := <-agentProfiled; err != nil {
			logf("%s/%s: no window profile: %v", sc.name, agent, err)
		}
	}
	burstWall := last.Sub(t0)
	afterBurst, peakBurst := a.sample(), a.rss.Peak()
	logf("%s/%s: %d pods Running+Ready in %.2fs", sc.name, agent, len(names), burstWall.Seconds())

	if agent == agentBerth && sc.kind == "burst" {
		// The runtime calls Berth made for the burst, by operation (count and time), from its own
		// kubelet_runtime_operations_* metrics: what the burst asked of the runtime.
		if err := a.debugPath("metrics", filepath.Join(h.results, "logs", h.outName(sc, agentBerth)+".metrics.txt")); err != nil {
			logf("%s/%s: no metrics: %v", sc.name, agent, err)
		}
	}
	switch sc.kind {
	case "burst":
		setLatencies(&res, lat)
		res.Wall, res.CPU, res.PeakRSS = burstWall.Seconds(), burstCPU.Seconds(), mib(peakBurst)
		setRSS(&res, afterBurst)
		if runtimePid != 0 {
			res.RuntimeCPU = share.Runtime
		}
		res.Machine = &share
	case "idle", "probes":
		// Let the burst's tail (status writes, events queued behind the rate limiter) pass.
		h.proxy.waitPodQuiet(3*time.Second, 2*time.Minute)
		time.Sleep(2 * time.Second)
		a.rss.Reset()
		hits0 := probeHits.Load()
		var profiled <-chan error
		if profilePath != "" {
			// The heap as the window opens (no forced collection): go tool pprof -base it against
			// the .heap.pprof of the end for what the window allocated (-sample_index=alloc_space).
			if err := a.debugPath("debug/pprof/heap", strings.TrimSuffix(profilePath, ".cpu.pprof")+".heap-start.pprof"); err != nil {
				logf("%s/%s: no heap profile at the start: %v", sc.name, agent, err)
			}
			profiled = a.windowProfile(h.idle, profilePath)
		}
		w0, c0 := time.Now(), a.sample().CPU
		time.Sleep(h.idle)
		end := a.sample()
		w1, c1 := time.Now(), end.CPU
		// RSS as the window leaves it, before the heap profile below forces a collection.
		setRSS(&res, end)
		res.PeakRSS = mib(a.rss.Peak())
		if profiled != nil {
			if err := <-profiled; err != nil {
				logf("%s/%s: no profile of the window: %v", sc.name, agent, err)
			}
			base := strings.TrimSuffix(profilePath, ".cpu.pprof")
			// The Go runtime's own account of that memory (runtime.MemStats, at the end of the
			// text), then what the live heap holds (go tool pprof -sample_index=inuse_space).
			if err := a.debugPath("debug/pprof/heap?debug=1", base+".memstats.txt"); err != nil {
				logf("%s/%s: no memstats: %v", sc.name, agent, err)
			}
			if err := a.debugPath("debug/pprof/heap?gc=1", base+".heap.pprof"); err != nil {
				logf("%s/%s: no heap profile: %v", sc.name, agent, err)
			}
		}
		res.Wall, res.CPU = w1.Sub(w0).Seconds(), (c1 - c0).Seconds()
		res.CPUPerMin = res.CPU / w1.Sub(w0).Minutes()
		res.ProbeHits = int(probeHits.Load() - hits0)
		reqs := h.proxy.Between(w0, w1)
		res.APIRequests = countByVerb(reqs)
		for _, r := range reqs {
			if isWrite(r.verb) {
				res.APIWrites++
			}
		}
		res.Note = fmt.Sprintf("window %.0f s after %d pods started (%.2f s); cpu_s is for the window", res.Wall, len(names), burstWall.Seconds())
	case "heal":
		time.Sleep(2 * time.Second)
		a.rss.Reset()
		w0, c0 := time.Now(), a.sample().CPU
		var hl []float64
		for i, n := range names {
			s := tr.get(n)
			if s.cid == "" {
				return fail(fmt.Errorf("pod %s: no container ID in the API", n))
			}
			want := s.restarts + 1
			tk := time.Now()
			if fake != nil {
				err = fake.SetContainerExited(s.cid, 137, "Error")
			} else {
				err = killContainer(rt, s.cid)
			}
			if err != nil {
				return fail(fmt.Errorf("trial %d: killing %s of pod %s: %w", i+1, s.cid, n, err))
			}
			if m := tr.waitAll([]string{n}, time.Minute, func(s *podState) bool { return !s.restartedAt[want].IsZero() }); len(m) > 0 {
				return fail(fmt.Errorf("trial %d: pod %s not restarted (restartCount %d, running) within 1m", i+1, n, want))
			}
			hl = append(hl, ms(tr.get(n).restartedAt[want].Sub(tk)))
			// A random gap, so that kills fall anywhere in the agent's relist period.
			time.Sleep(300*time.Millisecond + rand.N(time.Second))
		}
		w1, c1 := time.Now(), a.sample().CPU
		setLatencies(&res, hl)
		res.Pods = len(hl)
		res.Wall, res.CPU = w1.Sub(w0).Seconds(), (c1 - c0).Seconds()
		setRSS(&res, a.sample())
		res.PeakRSS = mib(a.rss.Peak())
		for _, r := range h.proxy.Between(w0, w1) {
			if isWrite(r.verb) {
				res.APIWrites++
			}
		}
		res.Note = fmt.Sprintf("%d trials, one pod each (no crash back-off); wall and CPU cover the trials", len(hl))
	}

	// Delete and wait until the pods are gone from the API and, for Berth, from the runtime.
	td := time.Now()
	if err := deletePods(ctx, h.cp.admin, names); err != nil {
		return fail(err)
	}
	if missing := tr.waitAll(names, goneTimeout, func(s *podState) bool { return !s.gone.IsZero() }); len(missing) > 0 {
		return fail(fmt.Errorf("%d pods not gone from the API within %s after deletion", len(missing), goneTimeout))
	}
	var lastGone time.Time
	for _, n := range names {
		if g := tr.get(n).gone; g.After(lastGone) {
			lastGone = g
		}
	}
	res.DeleteWall = lastGone.Sub(td).Seconds()
	// The runtime empties behind the API: Berth removes what it stopped; the kubelet's garbage
	// collection removes sandboxes of deleted pods a minute or so later, which is not waited for.
	if agent == agentBerth {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if n, err := benchSandboxes(rt); err == nil && n == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The lifecycle ends when the agent stops talking about the pods: events and deletions can
	// queue behind its client-side rate limiter.
	lastPod := h.proxy.waitPodQuiet(3*time.Second, 3*time.Minute)
	if lastPod.After(lastGone) {
		res.APIDrain = lastPod.Sub(lastGone).Seconds()
	}
	time.Sleep(2 * time.Second)
	tEnd := time.Now()
	if sc.kind == "burst" {
		reqs := h.proxy.Between(t0.Add(-time.Millisecond), tEnd)
		res.APIRequests = countByVerb(reqs)
		perPod := map[string]float64{}
		podWrites := 0
		for _, r := range reqs {
			if isWrite(r.verb) {
				res.APIWrites++
			}
			if podScoped(r.resource) {
				perPod[r.verb+" "+r.resource] += 1 / float64(len(names))
				if r.code >= 300 {
					perPod[fmt.Sprintf("%s %s -> %d", r.verb, r.resource, r.code)] += 1 / float64(len(names))
				}
				if isWrite(r.verb) {
					podWrites++
				}
			}
		}
		res.APIPerPod = perPod
		res.APIWritesPerPod = float64(podWrites) / float64(len(names))
	}
	s1 := a.sample()
	res.ThreadsEnd, res.FDsEnd = s1.Threads, s1.FDs
	if sc.kind == "burst" {
		res.LifecycleCPU = (s1.CPU - cpu0).Seconds()
	}
	stopped = true
	a.stop(spec.cpuProfile == "")
	res.GoroutinesEnd = a.goroutines()
	logf("%s/%s: done: wall %.2fs, CPU %.2fs, RSS %.1f MiB, threads %d→%d, fds %d→%d, goroutines at the end %d",
		sc.name, agent, res.Wall, res.CPU, res.RSS, res.ThreadsStart, res.ThreadsEnd, res.FDsStart, res.FDsEnd, res.GoroutinesEnd)
	return res
}

// baselineGoroutines starts the agent on the fake runtime with no pods, waits, and counts its
// goroutines: the level every scenario's end is compared to.
func (h *harness) baselineGoroutines(agent string) (int, procSample, error) {
	work := filepath.Join(h.work, "baseline-"+agent)
	_ = os.RemoveAll(work)
	defer removeWork(work)
	fake := fakecri.New(fakecri.Config{Images: []string{benchImage, sandboxImage}, CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS})
	if err := fake.Serve(filepath.Join(work, "fakecri.sock")); err != nil {
		return 0, procSample{}, err
	}
	defer fake.Stop()
	defer h.cp.forgetNode()
	bin := h.berthBin
	if agent == agentKubelet {
		var err error
		if bin, err = h.kubelet(); err != nil {
			return 0, procSample{}, err
		}
		defer cleanKubeletCgroups()
	}
	a, err := startAgent(agentSpec{kind: agent, bin: bin, endpoint: fake.Endpoint(), kubeconfig: h.kubeconfig, cp: h.cp,
		work: work, logPath: filepath.Join(h.results, "logs", "baseline-"+agent+".log")})
	if err != nil {
		return 0, procSample{}, err
	}
	time.Sleep(10 * time.Second)
	s := a.sample()
	a.stop(true)
	return a.goroutines(), s, nil
}

func setRSS(r *result, s procSample) {
	r.RSS, r.RSSAnon, r.RSSFile = mib(s.RSS), mib(s.RSSAnon), mib(s.RSSFile)
}

func setLatencies(r *result, lat []float64) {
	if len(lat) == 0 {
		return
	}
	p50, p99, mx := percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	r.P50, r.P99, r.Max = &p50, &p99, &mx
	r.LatenciesMs = lat
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// killContainer sends SIGKILL to a container's process, found through the runtime's verbose
// status (containerd's info.pid).
func killContainer(rt *cri.Client, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(rt.Conn()).ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return err
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		return fmt.Errorf("no pid in the runtime's verbose status of %s (%v)", id, err)
	}
	return syscall.Kill(info.Pid, syscall.SIGKILL)
}

// probeTarget serves /healthz on a free loopback port and counts the requests.
func probeTarget(hits *atomic.Int64) (int, func(), error) {
	port, err := freePort()
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok"))
	})}
	go func() { _ = srv.ListenAndServe() }()
	// Wait until it listens.
	for range 100 {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port)); err == nil {
			resp.Body.Close()
			hits.Add(-1)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return port, func() { _ = srv.Close() }, nil
}

// containerdPid is the pid of the test environment's containerd (0 if unknown).
func containerdPid() int {
	dir := os.Getenv("BERTH_RUNTIME_DIR")
	if dir == "" {
		dir = "/var/lib/berth-test/runtime"
	}
	b, err := os.ReadFile(filepath.Join(dir, "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	s, err := readProc(pid)
	if err != nil {
		return 0
	}
	return s.CPU
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// removeWork removes a scenario's work folder, after unmounting what an agent left mounted under
// it (the kubelet bind-mounts its root dir onto itself to make it shared).
func removeWork(dir string) {
	b, _ := os.ReadFile("/proc/self/mounts")
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- { // innermost (mounted last) first
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			logf("leaving %s: cannot unmount %s: %v", dir, mounts[i], err)
			return
		}
	}
	_ = os.RemoveAll(dir)
}

// repeatable is whether -repeat applies to a scenario: the bursts and cri-direct, whose windows
// keep the whole machine busy (the runtime, kube-apiserver and etcd, the agent) and so vary from run
// to run of the same thing on a shared 2-core machine by more than the targets' margins.
func repeatable(sc scenario) bool {
	return sc.kind == "burst" || sc.kind == "direct"
}

// runRounds runs each (scenario, agent) of group n times, in rounds, starting each round with the
// next one so that no agent always follows the same other (a burst's teardown can outlast the quiet
// wait), and returns per (scenario, agent) the run of median wall, with every wall in Walls and
// the note. A failed run is returned as it is: a failure is never hidden behind a median.
func (h *harness) runRounds(group []scenario, agents []string, n int, quiet func()) []result {
	type job struct {
		sc    scenario
		agent string
	}
	var jobs []job
	for _, sc := range group {
		if sc.kind == "direct" {
			jobs = append(jobs, job{sc, agentCRIDirect})
			continue
		}
		for _, a := range agents {
			jobs = append(jobs, job{sc, a})
		}
	}
	runs := make([][]result, len(jobs))
	for r := range n {
		for k := range jobs {
			i := (k + r) % len(jobs)
			j := jobs[i]
			quiet()
			logf("round %d of %d: %s/%s", r+1, n, j.sc.name, j.agent)
			h.round = fmt.Sprintf(".r%d", r+1) // each round's logs and profiles are kept
			var res result
			if j.sc.kind == "direct" {
				res = h.runDirect(j.sc)
			} else {
				res = h.runAgentScenario(j.sc, j.agent)
			}
			runs[i] = append(runs[i], res)
		}
	}
	h.round = ""
	var out []result
	for _, rs := range runs {
		out = append(out, medianRun(rs))
	}
	return out
}

// medianRun is the run of median wall among rs (the lower middle one for an even count), or the
// first failed run; Walls and CPUs hold every run's wall and CPU in run order.
func medianRun(rs []result) result {
	var walls, cpus []float64
	for _, r := range rs {
		if r.Error != "" {
			return r
		}
		walls, cpus = append(walls, r.Wall), append(cpus, r.CPU)
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b result) int { return cmp.Compare(a.Wall, b.Wall) })
	m := sorted[(len(sorted)-1)/2]
	m.Walls, m.CPUs = walls, cpus
	ws, cs := make([]string, len(walls)), make([]string, len(cpus))
	for i := range walls {
		ws[i], cs[i] = fmt.Sprintf("%.2f", walls[i]), fmt.Sprintf("%.2f", cpus[i])
	}
	note := fmt.Sprintf("%d runs, wall s: %s; CPU s: %s; the run of median wall is shown", len(rs), strings.Join(ws, ", "), strings.Join(cs, ", "))
	if m.Note != "" {
		note = m.Note + "; " + note
	}
	m.Note = note
	return m
}

// medianCPU is the median of r's runs' CPU (the lower middle one for an even count), or r's own
// CPU for a single run. A run's CPU and its wall vary apart (a slow API server stretches the
// window and adds idle CPU to it), so a CPU target compares the median CPU of the runs, as the
// issue's anchors give the median of each measure, not the CPU of the run of median wall.
func medianCPU(r *result) float64 {
	if len(r.CPUs) == 0 {
		return r.CPU
	}
	c := slices.Clone(r.CPUs)
	slices.Sort(c)
	return c[(len(c)-1)/2]
}

// outName names a run's logs and profiles: <scenario>-<agent>, and .r<round> under -repeat.
func (h *harness) outName(sc scenario, agent string) string {
	return sc.name + "-" + agent + h.round
}
