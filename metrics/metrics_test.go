package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestOperationType(t *testing.T) {
	for in, want := range map[string]string{
		"/runtime.v1.RuntimeService/ListContainers":     "list_containers",
		"/runtime.v1.RuntimeService/RunPodSandbox":      "run_podsandbox",
		"/runtime.v1.RuntimeService/ListPodSandbox":     "list_podsandbox",
		"/runtime.v1.RuntimeService/PodSandboxStatus":   "podsandbox_status",
		"/runtime.v1.RuntimeService/StopPodSandbox":     "stop_podsandbox",
		"/runtime.v1.RuntimeService/ContainerStatus":    "container_status",
		"/runtime.v1.RuntimeService/ExecSync":           "exec_sync",
		"/runtime.v1.RuntimeService/ListContainerStats": "list_container_stats",
		"/runtime.v1.RuntimeService/ReopenContainerLog": "reopen_container_log",
		"/runtime.v1.RuntimeService/Version":            "version",
		"/runtime.v1.RuntimeService/Status":             "status",
		"/runtime.v1.ImageService/PullImage":            "pull_image",
		"/runtime.v1.ImageService/ImageFsInfo":          "image_fs_info",
	} {
		if got := OperationType(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestObserveRuntimeOperation(t *testing.T) {
	before := counterValue(t, RuntimeOperationsErrors.WithLabelValues("test_op"))
	ObserveRuntimeOperation("test_op", 10*time.Millisecond, nil)
	ObserveRuntimeOperation("test_op", 20*time.Millisecond, errors.New("boom"))
	if got := counterValue(t, RuntimeOperations.WithLabelValues("test_op")); got != 2 {
		t.Errorf("operations = %v, want 2", got)
	}
	if got := counterValue(t, RuntimeOperationsErrors.WithLabelValues("test_op")) - before; got != 1 {
		t.Errorf("errors = %v, want 1", got)
	}
}
