// Package metrics holds the kubelet's own metrics that Berth measures as it works: runtime
// operations (recorded by package cri around every CRI call), the relist (PLEG), pod worker syncs
// and the pod start SLI (recorded by package agent). Names, types, labels and buckets are the
// kubelet's, so dashboards and alerts written for the kubelet work unchanged. The node server
// (package server) registers Collectors() into its /metrics registry.
//
// The metrics are process-wide, as the kubelet's are: one Berth per process.
package metrics

import (
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
)

// podStartSLIBuckets are the kubelet's buckets for pod_start_sli_duration_seconds.
var podStartSLIBuckets = []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}

var (
	// PodStartSLIDuration is the time from a pod's creation to all its containers running, minus
	// the time spent pulling images, observed once per pod.
	PodStartSLIDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kubelet_pod_start_sli_duration_seconds",
		Help:    "[ALPHA] Duration in seconds to start a pod, excluding time to pull images and run init containers, measured from pod creation timestamp to when all its containers are reported as started and observed via watch",
		Buckets: podStartSLIBuckets,
	})
	// PLEGRelistDuration is the duration of one relist of the runtime.
	PLEGRelistDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kubelet_pleg_relist_duration_seconds",
		Help:    "[ALPHA] Duration in seconds for relisting pods in PLEG.",
		Buckets: prometheus.DefBuckets,
	})
	// PodWorkerDuration is the duration of one pod sync, by operation_type: create (the worker's
	// first sync), update (the pod changed since the last sync) or sync.
	PodWorkerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubelet_pod_worker_duration_seconds",
		Help:    "[ALPHA] Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
		Buckets: prometheus.DefBuckets,
	}, []string{"operation_type"})
	// RuntimeOperations counts CRI calls by operation_type.
	RuntimeOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubelet_runtime_operations_total",
		Help: "[ALPHA] Cumulative number of runtime operations by operation type.",
	}, []string{"operation_type"})
	// RuntimeOperationsDuration is the duration of CRI calls by operation_type.
	RuntimeOperationsDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubelet_runtime_operations_duration_seconds",
		Help:    "[ALPHA] Duration in seconds of runtime operations. Broken down by operation type.",
		Buckets: prometheus.ExponentialBuckets(.005, 2.5, 14),
	}, []string{"operation_type"})
	// RuntimeOperationsErrors counts failed CRI calls by operation_type.
	RuntimeOperationsErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubelet_runtime_operations_errors_total",
		Help: "[ALPHA] Cumulative number of runtime operation errors by operation type.",
	}, []string{"operation_type"})
)

// Collectors are the metrics above, for a registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{PodStartSLIDuration, PLEGRelistDuration, PodWorkerDuration,
		RuntimeOperations, RuntimeOperationsDuration, RuntimeOperationsErrors}
}

// ObserveRuntimeOperation records one CRI call.
func ObserveRuntimeOperation(operation string, took time.Duration, err error) {
	RuntimeOperations.WithLabelValues(operation).Inc()
	RuntimeOperationsDuration.WithLabelValues(operation).Observe(took.Seconds())
	if err != nil {
		RuntimeOperationsErrors.WithLabelValues(operation).Inc()
	}
}

// OperationType names a CRI method as the kubelet's operation_type label does:
// "/runtime.v1.RuntimeService/ListContainers" → "list_containers", "RunPodSandbox" →
// "run_podsandbox", "PodSandboxStatus" → "podsandbox_status", "ImageFsInfo" → "image_fs_info".
func OperationType(fullMethod string) string {
	m := fullMethod[strings.LastIndex(fullMethod, "/")+1:]
	m = strings.ReplaceAll(m, "PodSandbox", "Podsandbox")
	var b strings.Builder
	for i, r := range m {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
