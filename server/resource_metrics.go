package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// /metrics/resource: the kubelet's resource metrics, what metrics-server scrapes for `kubectl top`.
// Containers come from the runtime's ListContainerStats (running containers Berth manages); a pod's
// figures are the sums of its containers' (the kubelet reads the pod cgroup, which also counts the
// sandbox); the node's come from /proc/stat and /proc/meminfo.
var (
	descNodeCPU = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	descNodeMemory = prometheus.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", nil, nil)
	descContainerCPU = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	descContainerMemory = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	descPodCPU = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	descPodMemory = prometheus.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	descContainerStart = prometheus.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	descScrapeError = prometheus.NewDesc("scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

type resourceCollector struct {
	rt   Runtime
	proc string // /proc, or a test's folder
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodeCPU, descNodeMemory, descContainerCPU, descContainerMemory, descPodCPU, descPodMemory, descContainerStart, descScrapeError} {
		ch <- d
	}
}

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	failed := 0.0
	if cpu, err := nodeCPUSeconds(c.proc); err == nil {
		ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(descNodeCPU, prometheus.CounterValue, cpu))
	} else {
		failed = 1
	}
	if mem, err := nodeWorkingSet(c.proc); err == nil {
		ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(descNodeMemory, prometheus.GaugeValue, mem))
	} else {
		failed = 1
	}
	if err := c.collectContainers(ch); err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, failed)
}

func (c *resourceCollector) collectContainers(ch chan<- prometheus.Metric) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	managed := map[string]string{cri.LabelManagedBy: cri.ManagedByValue}
	cs, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: managed,
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return err
	}
	running := map[string]*runtimeapi.Container{}
	for _, ct := range cs {
		running[ct.Id] = ct
	}
	stats, err := c.rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: managed})
	if err != nil {
		return err
	}
	type podKey struct{ ns, name string }
	type podSum struct {
		cpu, mem       float64
		cpuTS, memTS   time.Time
		hasCPU, hasMem bool
	}
	pods := map[podKey]*podSum{}
	for _, st := range stats {
		ct := running[st.GetAttributes().GetId()]
		if ct == nil {
			continue
		}
		name, pod, ns := ct.Labels[cri.LabelContainerName], ct.Labels[cri.LabelPodName], ct.Labels[cri.LabelPodNamespace]
		k := podKey{ns, pod}
		sum := pods[k]
		if sum == nil {
			sum = &podSum{}
			pods[k] = sum
		}
		// As the kubelet's CRI stats: the container's creation time (Berth starts it right after).
		ch <- prometheus.MustNewConstMetric(descContainerStart, prometheus.GaugeValue, float64(ct.CreatedAt)/1e9, name, pod, ns)
		if cpu := st.GetCpu(); cpu != nil && cpu.UsageCoreNanoSeconds != nil {
			v, ts := float64(cpu.UsageCoreNanoSeconds.Value)/1e9, time.Unix(0, cpu.Timestamp)
			ch <- prometheus.NewMetricWithTimestamp(ts, prometheus.MustNewConstMetric(descContainerCPU, prometheus.CounterValue, v, name, pod, ns))
			sum.cpu, sum.hasCPU = sum.cpu+v, true
			if ts.After(sum.cpuTS) {
				sum.cpuTS = ts
			}
		}
		if mem := st.GetMemory(); mem != nil && mem.WorkingSetBytes != nil {
			v, ts := float64(mem.WorkingSetBytes.Value), time.Unix(0, mem.Timestamp)
			ch <- prometheus.NewMetricWithTimestamp(ts, prometheus.MustNewConstMetric(descContainerMemory, prometheus.GaugeValue, v, name, pod, ns))
			sum.mem, sum.hasMem = sum.mem+v, true
			if ts.After(sum.memTS) {
				sum.memTS = ts
			}
		}
	}
	for k, s := range pods {
		if s.hasCPU {
			ch <- prometheus.NewMetricWithTimestamp(s.cpuTS, prometheus.MustNewConstMetric(descPodCPU, prometheus.CounterValue, s.cpu, k.name, k.ns))
		}
		if s.hasMem {
			ch <- prometheus.NewMetricWithTimestamp(s.memTS, prometheus.MustNewConstMetric(descPodMemory, prometheus.GaugeValue, s.mem, k.name, k.ns))
		}
	}
	return nil
}

// userHZ is the unit of /proc/stat (USER_HZ, 100 on every Linux architecture Berth runs on).
const userHZ = 100

// nodeCPUSeconds is the node's busy CPU time: the first line of /proc/stat without idle and iowait.
func nodeCPUSeconds(proc string) (float64, error) {
	data, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("%s/stat: unexpected first line %q", proc, line)
	}
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/stat: %v", proc, err)
		}
		busy += n
	}
	return float64(busy) / userHZ, nil
}

// nodeWorkingSet is the node's memory in use less its inactive file pages, from /proc/meminfo
// (MemTotal − MemFree − Inactive(file)), as cAdvisor computes the root's working set.
func nodeWorkingSet(proc string) (float64, error) {
	f, err := os.Open(proc + "/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		v[k] = n * 1024 // kB
	}
	total, ok := v["MemTotal"]
	if !ok {
		return 0, fmt.Errorf("%s/meminfo: no MemTotal", proc)
	}
	ws := total - v["MemFree"] - v["Inactive(file)"]
	if ws < 0 {
		ws = 0
	}
	return ws, nil
}

func newResourceMetrics(rt Runtime) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&resourceCollector{rt: rt, proc: "/proc"})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
