// Command bench measures Berth, side by side with the upstream kubelet, on the test environment
// of test/env: a real kube-apiserver (controlplane.sh), the real containerd (runtime.sh) or an
// in-memory CRI server (cri/fakecri) that isolates the agent's own overhead. `make bench` runs
// it; docs/benchmarks.md has the scenarios, the method and the numbers.
//
//	bench [-scenarios a,b] [-agents berth,kubelet] [-results DIR] [-berth bin/berth] ...
//
// Each scenario starts the agent afresh (its Node deleted first), drives the API server as the
// admin — pods bound to the node, created at once, watched until Running with Ready=True, then
// deleted — and measures the agent as a process: CPU (user+sys from /proc), RSS (steady and peak),
// threads and open fds at the start and the end, goroutines at the end (from the dump a SIGQUIT
// makes), and its API requests by verb (it talks to the API server through a counting reverse
// proxy in this process). It prints one table, and writes results.json, table.txt and
// latency.png into the results folder, with the agents' logs under logs/.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type harness struct {
	repo        string
	results     string
	work        string
	berthBin    string
	kubeletBin  string
	cpDir       string
	fakeLatency time.Duration
	fakeEvents  bool
	idle        time.Duration
	cpuProfile  bool
	logWrites   bool
	// directLimits are the sandbox concurrency limits cri-direct-30 also measures (-direct-limits).
	directLimits []int
	quiet        func() // waits for a quiet machine
	round        string // ".r<N>" while -repeat runs round N: in the names of logs and profiles

	cp         *controlPlane
	cd         *containerd
	proxy      *apiProxy
	kubeconfig string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var names []string
	for _, s := range allScenarios {
		names = append(names, s.name)
	}
	h := &harness{}
	begun := time.Now()
	scenarios := flag.String("scenarios", "", "comma-separated scenarios (default all): "+strings.Join(names, ", "))
	agents := flag.String("agents", agentBerth, "comma-separated agents: berth, kubelet")
	flag.StringVar(&h.results, "results", "", "results folder (default bench-results/<timestamp>)")
	flag.StringVar(&h.repo, "repo", ".", "Berth's repository (for test/env)")
	flag.StringVar(&h.berthBin, "berth", "bin/berth", "berth binary")
	flag.StringVar(&h.kubeletBin, "kubelet", "", "kubelet binary (default: test/env/controlplane.sh build kubelet, cached)")
	flag.StringVar(&h.cpDir, "controlplane-dir", "/tmp/berth-bench-cp", "control plane folder (test/env/controlplane.sh)")
	flag.DurationVar(&h.fakeLatency, "fake-latency", 0, "fixed latency of every fake CRI call")
	flag.BoolVar(&h.fakeEvents, "fake-events", true, "the fake CRI streams container events (GetContainerEvents); false answers Unimplemented, as containerd 1.6")
	flag.DurationVar(&h.idle, "idle", time.Minute, "measured window of idle-fake-100 and probes-fake-100")
	flag.BoolVar(&h.cpuProfile, "cpuprofile", false, "run berth with --cpuprofile (profiles/<scenario>-berth.cpu.pprof); goroutines are not counted then")
	flag.IntVar(&apiQPS, "api-qps", apiQPS, "kubeAPIQPS of both agents")
	flag.IntVar(&apiBurst, "api-burst", apiBurst, "kubeAPIBurst of both agents")
	flag.BoolVar(&h.logWrites, "log-writes", false, "log the agents' write requests with their bodies to logs/<scenario>-<agent>.writes.log")
	maxLoad := flag.Float64("max-load", 1.5, "before each scenario, wait (up to -load-wait) until the 1-minute load average is below this")
	loadWait := flag.Duration("load-wait", 5*time.Minute, "longest wait for a quiet machine before a scenario (then it runs anyway, and the load is reported)")
	directLimits := flag.String("direct-limits", "", "cri-direct-30 also starts the pods with at most N sandboxes created at a time, for each N of this comma-separated list")
	repeat := flag.Int("repeat", 3, "run the bursts (burst-*, cri-direct-30) this many times, in rounds that alternate the agents, and report for each the run of median wall (a burst keeps the machine busy, and its times vary from run to run)")
	keepEnv := flag.Bool("keep-env", false, "leave the control plane and containerd running if this run started them")
	replot := flag.String("replot", "", "only redraw DIR/latency.png from DIR/results.json, and exit")
	flag.Parse()
	if *replot != "" {
		b, err := os.ReadFile(filepath.Join(*replot, "results.json"))
		if err != nil {
			return err
		}
		var rs []result
		if err := json.Unmarshal(b, &rs); err != nil {
			return err
		}
		return plotLatencies(rs, filepath.Join(*replot, "latency.png"))
	}

	for _, f := range splitList(*directLimits) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("-direct-limits: %q is not a positive number", f)
		}
		h.directLimits = append(h.directLimits, n)
	}
	var sel []scenario
	want := splitList(*scenarios)
	for _, w := range want {
		if !slices.Contains(names, w) {
			return fmt.Errorf("unknown scenario %q (known: %s)", w, strings.Join(names, ", "))
		}
	}
	for _, s := range allScenarios {
		if len(want) == 0 || slices.Contains(want, s.name) {
			sel = append(sel, s)
		}
	}
	ags := splitList(*agents)
	for _, a := range ags {
		if a != agentBerth && a != agentKubelet {
			return fmt.Errorf("unknown agent %q (berth, kubelet; cri-direct is the scenario cri-direct-30)", a)
		}
	}
	if h.results == "" {
		h.results = filepath.Join("bench-results", time.Now().Format("20060102-150405"))
	}
	var err error
	for _, p := range []*string{&h.repo, &h.results, &h.berthBin, &h.cpDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if h.kubeletBin != "" {
		if h.kubeletBin, err = filepath.Abs(h.kubeletBin); err != nil {
			return err
		}
	}
	for _, d := range []string{"logs", "profiles"} {
		if err := os.MkdirAll(filepath.Join(h.results, d), 0o755); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the agents run pods in containerd")
	}
	if _, err := os.Stat(h.berthBin); err != nil {
		return fmt.Errorf("berth binary: %v (make build)", err)
	}
	h.work, err = os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer removeWork(h.work)

	// Environment, torn down on return and on Ctrl-C.
	cleanup := func() {
		if h.proxy != nil {
			h.proxy.Close()
		}
		if *keepEnv {
			return
		}
		if h.cd != nil {
			h.cd.down()
		}
		if h.cp != nil {
			h.cp.down()
		}
		removeCgroupRoot(berthCgroupRoot)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		logf("interrupted: cleaning up")
		stopChildren()
		cleanup()
		os.Exit(130)
	}()
	defer cleanup()

	if h.cp, err = upControlPlane(h.repo, h.cpDir); err != nil {
		return err
	}
	if h.proxy, err = startAPIProxy(h.cp.env["APISERVER_URL"], h.cp.file("ca.crt"), h.cp.file("ca.key"), h.cp.file("node.crt"), h.cp.file("node.key")); err != nil {
		return err
	}
	if h.kubeconfig, err = writeProxyKubeconfig(h.cp.file("node.kubeconfig"), h.proxy.url, h.work); err != nil {
		return err
	}

	var results []result
	leak := map[string]int{}
	baseSamples := map[string]procSample{}
	for _, a := range ags {
		waitQuiet(*maxLoad, *loadWait)
		g, s, err := h.baselineGoroutines(a)
		if err != nil {
			logf("baseline of %s: %v", a, err)
			continue
		}
		leak[a], baseSamples[a] = g, s
		logf("baseline %s: %d goroutines, %d threads, %d fds, RSS %.1f MiB (%.1f anonymous, %.1f file-backed) (node Ready, no pods)",
			a, g, s.Threads, s.FDs, mib(s.RSS), mib(s.RSSAnon), mib(s.RSSFile))
	}
	quiet := func() { waitQuiet(*maxLoad, *loadWait) }
	h.quiet = quiet
	var group []scenario // the containerd bursts, run -repeat times in rounds
	for _, sc := range sel {
		if *repeat > 1 && repeatable(sc) {
			group = append(group, sc)
		}
	}
	for _, sc := range sel {
		if len(group) > 0 && repeatable(sc) {
			if sc.name == group[0].name {
				results = append(results, h.runRounds(group, ags, *repeat, quiet)...)
			}
			continue
		}
		if sc.kind == "direct" {
			waitQuiet(*maxLoad, *loadWait)
			results = append(results, h.runDirect(sc))
			continue
		}
		for _, a := range ags {
			waitQuiet(*maxLoad, *loadWait)
			results = append(results, h.runAgentScenario(sc, a))
		}
	}

	rep := report{results: results, baseline: leak, baseSamples: baseSamples, command: strings.Join(os.Args, " "), started: begun,
		settings: fmt.Sprintf("both agents: kubeAPIQPS %d, kubeAPIBurst %d, maxPods %d; fake CRI latency per call %s, container events %v; idle window %s", apiQPS, apiBurst, maxPods, h.fakeLatency, h.fakeEvents, h.idle)}
	var out strings.Builder
	rep.print(io.MultiWriter(os.Stdout, &out))
	if err := os.WriteFile(filepath.Join(h.results, "table.txt"), []byte(out.String()), 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.results, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	base := map[string]map[string]float64{}
	for a, g := range leak {
		s := baseSamples[a]
		base[a] = map[string]float64{"goroutines": float64(g), "threads": float64(s.Threads), "fds": float64(s.FDs),
			"rss_mib": mib(s.RSS), "rss_anon_mib": mib(s.RSSAnon), "rss_file_mib": mib(s.RSSFile)}
	}
	if b, err = json.MarshalIndent(base, "", "  "); err == nil {
		err = os.WriteFile(filepath.Join(h.results, "baseline.json"), append(b, '\n'), 0o644)
	}
	if err != nil {
		return err
	}
	if err := plotLatencies(results, filepath.Join(h.results, "latency.png")); err != nil {
		logf("plot: %v", err)
	}
	fmt.Printf("\nresults in %s (table.txt, results.json, baseline.json, latency.png, logs/)\n", h.results)
	for _, r := range results {
		if r.Error != "" {
			return fmt.Errorf("%d scenario(s) failed, see the table", countErrors(results))
		}
	}
	return nil
}

// runtime starts (or joins) the test environment's containerd on first use.
func (h *harness) runtime() (*containerd, error) {
	if h.cd != nil {
		return h.cd, nil
	}
	c, err := upContainerd(h.repo)
	h.cd = c
	return c, err
}

// kubelet is the kubelet binary, built into the tools cache on first use.
func (h *harness) kubelet() (string, error) {
	if h.kubeletBin != "" {
		return h.kubeletBin, nil
	}
	logf("finding the kubelet (test/env/controlplane.sh build kubelet; builds it if not cached)")
	out, err := runScript(filepath.Join(h.repo, "test/env/controlplane.sh"), "build", "kubelet")
	if err != nil {
		return "", err
	}
	h.kubeletBin = lastLine(out)
	return h.kubeletBin, nil
}

// waitQuiet waits until the load average is below max and the integration suite is not running
// (it would share the machine and perhaps the runtime), for at most wait.
func waitQuiet(max float64, wait time.Duration) {
	deadline := time.Now().Add(wait)
	said := false
	idleFor := 0 // consecutive 5 s periods with the CPUs idle and no task in uninterruptible sleep
	b0, a0 := machineCPU()
	for time.Now().Before(deadline) {
		l, suite := load1(), integrationRunning()
		// The load average trails a burst by minutes (it decays with a one-minute time constant
		// from 15-20 after 30 pods); what disturbs the next scenario is work still going on: CPU
		// use, and tasks blocked in the kernel (the teardown of network namespaces, for one). So
		// the CPUs must have been idle for the last 5 s in any case, and for 10 s while the load
		// is still above max.
		if !suite && idleFor >= 1 && (l < max || idleFor >= 2) {
			return
		}
		if !said && (l >= max || suite) {
			logf("waiting for a quieter machine (load %.2f, integration suite running: %v; up to %s)", l, suite, wait)
			said = true
		}
		time.Sleep(5 * time.Second)
		b1, a1 := machineCPU()
		if a1 > a0 && float64(b1-b0)/float64(a1-a0) < 0.10 && uninterruptible() == 0 {
			idleFor++
		} else {
			idleFor = 0
		}
		b0, a0 = b1, a1
	}
	logf("machine still busy (load %.2f): running anyway", load1())
}

// uninterruptible counts the tasks in state D (uninterruptible sleep), kernel threads included.
func uninterruptible() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'D' {
			n++
		}
	}
	return n
}

func integrationRunning() bool {
	return exec.Command("pgrep", "-f", "integration.test").Run() == nil
}

// stopChildren kills the agents still running (each in its own process group).
func stopChildren() {
	out, _ := exec.Command("pgrep", "-P", fmt.Sprint(os.Getpid())).Output()
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	time.Sleep(2 * time.Second)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func countErrors(rs []result) int {
	n := 0
	for _, r := range rs {
		if r.Error != "" {
			n++
		}
	}
	return n
}
