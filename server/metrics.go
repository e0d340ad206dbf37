package server

import (
	"context"
	"net/http"
	"time"

	"github.com/berth-dev/berth/cri"
	berthmetrics "github.com/berth-dev/berth/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// metrics is /metrics: the kubelet's metric names where Berth has the numbers — the running pods
// and containers computed at scrape time from the runtime (only what Berth manages), the runtime
// operation, relist, pod worker and pod start histograms that package metrics records as Berth
// works — plus the Go and process collectors.
type metrics struct {
	reg *prometheus.Registry
}

var (
	descRunningPods = prometheus.NewDesc("kubelet_running_pods",
		"Number of pods that have a running pod sandbox", nil, nil)
	descRunningContainers = prometheus.NewDesc("kubelet_running_containers",
		"Number of containers currently running", []string{"container_state"}, nil)
	descNodeName = prometheus.NewDesc("kubelet_node_name",
		"The node's name. The count is always 1.", []string{"node"}, nil)
)

type runtimeCollector struct {
	rt       Runtime
	nodeName string
}

func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRunningPods
	ch <- descRunningContainers
	ch <- descNodeName
}

func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descNodeName, prometheus.GaugeValue, 1, c.nodeName)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	managed := map[string]string{cri.LabelManagedBy: cri.ManagedByValue}
	if sbs, err := c.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: managed,
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	}); err == nil {
		ch <- prometheus.MustNewConstMetric(descRunningPods, prometheus.GaugeValue, float64(len(sbs)))
	} else {
		ch <- prometheus.NewInvalidMetric(descRunningPods, err)
	}
	cs, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: managed})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRunningContainers, err)
		return
	}
	counts := map[string]int{"created": 0, "running": 0, "exited": 0, "unknown": 0}
	for _, ct := range cs {
		switch ct.State {
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			counts["created"]++
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			counts["running"]++
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			counts["exited"]++
		default:
			counts["unknown"]++
		}
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(descRunningContainers, prometheus.GaugeValue, float64(n), state)
	}
}

func newMetrics(rt Runtime, nodeName string) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&runtimeCollector{rt: rt, nodeName: nodeName})
	reg.MustRegister(berthmetrics.Collectors()...)
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &metrics{reg: reg}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
