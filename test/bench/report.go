package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

type report struct {
	results  []result
	baseline map[string]int // goroutines of each agent with its node Ready and no pods
	// baseSamples: the same agents, same moment, from /proc.
	baseSamples map[string]procSample
	command     string
	settings    string
	started     time.Time
}

func (r *report) find(scenario, agent string) *result {
	for i := range r.results {
		if x := &r.results[i]; x.Scenario == scenario && x.Agent == agent && x.Error == "" {
			return x
		}
	}
	return nil
}

func (r *report) print(w io.Writer) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "berth bench — %s — %s, %d cores\n%s\n%s\n\n", r.started.Format(time.RFC3339), host, numCPU(), r.command, r.settings)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tagent\tpods\tp50 ms\tp99 ms\tmax ms\twall s\tCPU s\tRSS MiB\tAPI writes\twrites/pod\tload\t")
	for _, x := range r.results {
		if x.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%d\tFAILED: %s\t\t\t\t\t\t\t\t\t\n", x.Scenario, x.Agent, x.Pods, firstLine(x.Error))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%.2f\t%.2f\t%.1f\t%d\t%s\t%.2f\t\n", x.Scenario, x.Agent, x.Pods,
			optMs(x.P50), optMs(x.P99), optMs(x.Max), x.Wall, x.CPU, x.RSS, x.APIWrites, optF(x.APIWritesPerPod), x.Load1)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nburst: latency = create request sent → Running+Ready seen in the API; wall = first create → last Ready; CPU = agent's user+sys over that; RSS after it.")
	fmt.Fprintln(w, "idle/probes: wall = the measured window, CPU over it (= CPU-s/min for 60 s), RSS at its end. heal: latency = kill → restartCount+1 and running seen in the API.")
	fmt.Fprintln(w, "API writes: every write the agent made in the window (bursts: create → Running → deleted → settled); writes/pod: pods, pods/status and events writes per pod.")
	for _, x := range r.results {
		if x.Error == "" && x.Note != "" {
			fmt.Fprintf(w, "  %s/%s: %s\n", x.Scenario, x.Agent, x.Note)
		}
		if x.Error == "" && x.ProbeHits > 0 {
			fmt.Fprintf(w, "  %s/%s: %d probe requests served in the window\n", x.Scenario, x.Agent, x.ProbeHits)
		}
		if m := x.Machine; x.Error == "" && m != nil && m.All > 0 {
			// Where the machine's CPU went: on containerd the burst is bound by it (docs/benchmarks.md).
			agentCPU := x.CPU
			fmt.Fprintf(w, "  %s/%s: machine CPU in the window %.2f of %.2f CPU-s busy (%.0f%%): containerd %.2f (shims, runc and the kernel's work for them not counted), kube-apiserver + etcd %.2f, agent %.2f, this harness %.2f, the rest %.2f\n",
				x.Scenario, x.Agent, m.Busy, m.All, 100*m.Busy/m.All, m.Runtime, m.ControlPlane, agentCPU, m.Bench, m.Busy-m.Runtime-m.ControlPlane-agentCPU-m.Bench)
		}
		if x.Error == "" && x.CreateWall > 0 && strings.HasPrefix(x.Scenario, "burst") {
			fmt.Fprintf(w, "  %s/%s: the API server answered all creates %.2f s after the first was sent\n", x.Scenario, x.Agent, x.CreateWall)
		}
		if x.Error == "" && x.DeleteWall > 0 {
			fmt.Fprintf(w, "  %s/%s: delete all → gone from the API %.2f s, last pod request %.2f s later; RSS %.1f MiB = %.1f anonymous + %.1f file-backed; peak RSS %.1f MiB\n",
				x.Scenario, x.Agent, x.DeleteWall, x.APIDrain, x.RSS, x.RSSAnon, x.RSSFile, x.PeakRSS)
		}
	}

	r.printAPI(w)
	r.printLeaks(w)
	r.printRatios(w)
	r.printTargets(w)
}

// printAPI: requests per pod lifecycle, by verb, for the bursts.
func (r *report) printAPI(w io.Writer) {
	var cols []*result
	keys := map[string]bool{}
	for i := range r.results {
		x := &r.results[i]
		if x.Error == "" && x.APIPerPod != nil {
			cols = append(cols, x)
			for k := range x.APIPerPod {
				keys[k] = true
			}
		}
	}
	if len(cols) == 0 {
		return
	}
	fmt.Fprintln(w, "\nAPI requests per pod lifecycle (create → Running → deleted), pod-scoped resources, by verb:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "verb resource\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s/%s\t", c.Scenario, c.Agent)
	}
	fmt.Fprintln(tw)
	for _, k := range sortedKeys(keys) {
		fmt.Fprintf(tw, "%s\t", k)
		for _, c := range cols {
			fmt.Fprintf(tw, "%.2f\t", c.APIPerPod[k])
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "writes per pod\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%.2f\t", c.APIWritesPerPod)
	}
	fmt.Fprintln(tw)
	tw.Flush()
	fmt.Fprintln(w, "all requests in the window (node and lease included):")
	for _, c := range cols {
		var parts []string
		for _, k := range sortedKeys(c.APIRequests) {
			parts = append(parts, fmt.Sprintf("%s %d", k, c.APIRequests[k]))
		}
		fmt.Fprintf(w, "  %s/%s: %s\n", c.Scenario, c.Agent, strings.Join(parts, ", "))
	}
}

func (r *report) printLeaks(w io.Writer) {
	fmt.Fprintln(w, "\nLeak check (threads and open fds at the start and the end of each run; goroutines at the end, from a SIGQUIT dump, against the agent's baseline with its node Ready and no pods):")
	for _, a := range sortedKeys(r.baseline) {
		s := r.baseSamples[a]
		fmt.Fprintf(w, "  baseline %s: %d goroutines, %d threads, %d fds, RSS %.1f MiB (%.1f anonymous + %.1f file-backed)\n",
			a, r.baseline[a], s.Threads, s.FDs, mib(s.RSS), mib(s.RSSAnon), mib(s.RSSFile))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tagent\tthreads\tfds\tgoroutines at end\t")
	for _, x := range r.results {
		if x.Error != "" || x.Agent == agentCRIDirect {
			continue
		}
		g := "-"
		if x.GoroutinesEnd > 0 {
			g = fmt.Sprint(x.GoroutinesEnd)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d → %d\t%d → %d\t%s\t\n", x.Scenario, x.Agent, x.ThreadsStart, x.ThreadsEnd, x.FDsStart, x.FDsEnd, g)
	}
	tw.Flush()
}

func (r *report) printRatios(w io.Writer) {
	var lines []string
	for _, x := range r.results {
		if x.Agent != agentBerth || x.Error != "" {
			continue
		}
		k := r.find(x.Scenario, agentKubelet)
		if k == nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t", x.Scenario,
			ratio(x.Wall, k.Wall), ratioP(x.P50, k.P50), ratioP(x.P99, k.P99), ratio(x.CPU, k.CPU), ratio(x.RSS, k.RSS), ratio(x.APIWritesPerPod, k.APIWritesPerPod)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nBerth / kubelet (same run, same API server and runtime; < 1 means Berth is lower):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\twall\tp50\tp99\tCPU\tRSS\twrites/pod\t")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	tw.Flush()
}

// printTargets checks issue 8's targets against what this run measured.
func (r *report) printTargets(w io.Writer) {
	type target struct {
		name string
		got  string
		ok   bool
	}
	var ts []target
	add := func(name string, ok bool, got string, args ...any) {
		ts = append(ts, target{name, fmt.Sprintf(got, args...), ok})
	}
	b30, d30, k30 := r.find("burst-containerd-30", agentBerth), r.find("cri-direct-30", agentCRIDirect), r.find("burst-containerd-30", agentKubelet)
	if b30 != nil && d30 != nil {
		add("containerd 30 pods: wall ≤ 1.15× cri-direct-30 (parallel)", b30.Wall <= 1.15*d30.Wall, "%.2f s vs %.2f s = %.2f×", b30.Wall, d30.Wall, b30.Wall/d30.Wall)
	}
	if b30 != nil && k30 != nil {
		add("containerd 30 pods: wall ≤ 0.75× the kubelet's", b30.Wall <= 0.75*k30.Wall, "%.2f s vs %.2f s = %.2f×", b30.Wall, k30.Wall, b30.Wall/k30.Wall)
		bc, kc := medianCPU(b30), medianCPU(k30)
		add("containerd 30 pods: CPU ≤ ⅓ of the kubelet's", bc <= kc/3, "%.2f vs %.2f CPU-s = %.2f×%s", bc, kc, bc/kc, runsNote(b30, k30))
		add("API writes per pod lifecycle ≤ the kubelet's (containerd 30)", b30.APIWritesPerPod <= k30.APIWritesPerPod, "%.2f vs %.2f", b30.APIWritesPerPod, k30.APIWritesPerPod)
	}
	if f := r.find("burst-fake-100", agentBerth); f != nil {
		add("fake 100-pod burst: p99 ≤ 1 s", *f.P99 <= 1000, "p99 %.0f ms", *f.P99)
		fc := medianCPU(f)
		add("fake 100-pod burst: CPU ≤ 2 CPU-s", fc <= 2, "%.2f CPU-s%s", fc, runsNote(f))
		if g := r.find("burst-fake-500", agentBerth); g != nil {
			gc := medianCPU(g)
			add("fake 500 pods cost ≤ 5.5× 100 pods (CPU)", gc <= 5.5*fc, "%.2f vs %.2f CPU-s = %.2f×%s (wall %.2f×; over the whole lifecycle of the runs of median wall, create → deleted: %.2f vs %.2f CPU-s = %.2f×)",
				gc, fc, gc/fc, runsNote(g, f), g.Wall/f.Wall, g.LifecycleCPU, f.LifecycleCPU, g.LifecycleCPU/f.LifecycleCPU)
		}
	}
	if i := r.find("idle-fake-100", agentBerth); i != nil {
		add("steady state, 100 pods: ≤ 0.5 CPU-s/min", i.CPUPerMin <= 0.5, "%.3f CPU-s/min", i.CPUPerMin)
		add("steady state, 100 pods: RSS ≤ 50 MiB", i.RSS <= 50, "%.1f MiB (peak in window %.1f)", i.RSS, i.PeakRSS)
	}
	if hc := r.find("heal-containerd", agentBerth); hc != nil {
		add("self-healing on containerd: p99 ≤ 0.5 s", *hc.P99 <= 500, "p50 %.0f ms, p99 %.0f ms", *hc.P50, *hc.P99)
	}
	var fdGrowth, grGrowth []string
	for _, x := range r.results {
		if x.Agent != agentBerth || x.Error != "" {
			continue
		}
		if x.FDsEnd > x.FDsStart {
			fdGrowth = append(fdGrowth, fmt.Sprintf("%s %d→%d", x.Scenario, x.FDsStart, x.FDsEnd))
		}
		// A leak grows with the pods; a goroutine or two more than the baseline (a timer, an
		// HTTP/2 connection being replaced) is noise.
		if b, ok := r.baseline[agentBerth]; ok && x.GoroutinesEnd > b+goroutineSlack {
			grGrowth = append(grGrowth, fmt.Sprintf("%s %d (baseline %d)", x.Scenario, x.GoroutinesEnd, b))
		}
	}
	if len(r.results) > 0 {
		add("no fd growth (berth)", len(fdGrowth) == 0, "%s", orNone(fdGrowth))
		if _, ok := r.baseline[agentBerth]; ok {
			add(fmt.Sprintf("no goroutine growth over the baseline (berth; ±%d)", goroutineSlack), len(grGrowth) == 0, "%s", orNone(grGrowth))
		}
	}
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTargets (issue 8), as measured in this run:")
	for _, t := range ts {
		m := "MET   "
		if !t.ok {
			m = "MISSED"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", m, t.name, t.got)
	}
}

// goroutineSlack is how many goroutines above the baseline still count as no growth.
const goroutineSlack = 5

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

func optMs(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", *p)
}

func optF(f float64) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", f)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func ratioP(a, b *float64) string {
	if a == nil || b == nil {
		return "-"
	}
	return ratio(*a, *b)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// percentile by the nearest-rank method (p = 100 is the maximum).
func percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// plotLatencies draws one panel per scenario with latencies: the distribution (ECDF) of each
// agent's latencies, cri-direct's parallel starts drawn over the containerd burst too.
func plotLatencies(results []result, path string) error {
	var panels []string
	for _, x := range results {
		if len(x.LatenciesMs) > 0 && !slices.Contains(panels, x.Scenario) {
			panels = append(panels, x.Scenario)
		}
	}
	if len(panels) == 0 {
		return nil
	}
	colors := map[string]color.Color{
		agentBerth:     color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		agentKubelet:   color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		agentCRIDirect: color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	}
	cols := 2
	rows := (len(panels) + cols - 1) / cols
	const pw, ph = 6 * vg.Inch, 3.6 * vg.Inch
	img := vgimg.New(pw*vg.Length(cols), ph*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 2, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	for i, name := range panels {
		p := plot.New()
		p.Title.Text = name
		p.X.Label.Text = "latency (s)"
		p.Y.Label.Text = "fraction of pods"
		if strings.HasPrefix(name, "heal") {
			p.Y.Label.Text = "fraction of trials"
		}
		// The y axis goes past 1 to leave a band at the top for the legend, clear of the curves.
		p.Y.Min, p.Y.Max = 0, 1.32
		p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
		p.X.Min = 0
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Millimeter * 2
		p.Legend.YOffs = -vg.Millimeter
		for _, x := range results {
			over := name == "burst-containerd-30" && x.Scenario == "cri-direct-30"
			if len(x.LatenciesMs) == 0 || (x.Scenario != name && !over) {
				continue
			}
			s := slices.Clone(x.LatenciesMs)
			slices.Sort(s)
			pts := make(plotter.XYs, 0, 2*len(s)+1)
			pts = append(pts, plotter.XY{X: s[0] / 1000, Y: 0})
			for j, v := range s {
				pts = append(pts, plotter.XY{X: v / 1000, Y: float64(j) / float64(len(s))}, plotter.XY{X: v / 1000, Y: float64(j+1) / float64(len(s))})
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			l.Color = colors[x.Agent]
			l.Width = vg.Points(1.5)
			label := x.Agent
			if over {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				label = "cri-direct (parallel)"
			}
			if x.Agent == agentCRIDirect && !over {
				label = "cri-direct (parallel)"
			}
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s: p50 %.2f s, p99 %.2f s", label, *x.P50/1000, *x.P99/1000), l)
		}
		plots[i/cols][i%cols] = p
	}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		for j := range plots[i] {
			if plots[i][j] != nil {
				plots[i][j].Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}

func numCPU() int { return runtime.NumCPU() }

// runsNote says, for CPU targets under -repeat, that the figures are medians and of which runs.
func runsNote(rs ...*result) string {
	var parts []string
	for _, r := range rs {
		if len(r.CPUs) < 2 {
			return ""
		}
		cs := make([]string, len(r.CPUs))
		for i, c := range r.CPUs {
			cs[i] = fmt.Sprintf("%.2f", c)
		}
		parts = append(parts, strings.Join(cs, "/"))
	}
	return ", medians of the runs' CPU (" + strings.Join(parts, "; ") + ")"
}
