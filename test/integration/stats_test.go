//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// nodeGet GETs a node server path as the API server's kubelet client does (system:kubelet-api-admin).
func (c *cluster) nodeGet(port int, path string) []byte {
	c.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(c.t, filepath.Join(c.dir, "ca.crt")))
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.dir, "apiserver-kubelet-client.crt"), filepath.Join(c.dir, "apiserver-kubelet-client.key"))
	if err != nil {
		c.t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}, Timeout: 10 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d%s", port, path))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("%s: %d %.300s", path, resp.StatusCode, b)
	}
	return b
}

// cgroupDir is the directory of a process's cgroup for a v1 controller (or the v2 unified one),
// from /proc/<pid>/cgroup: wherever the container's cgroup is (k8s.io/<id>, or a pod cgroup).
func cgroupDir(t *testing.T, pid int, controller string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	unified := ""
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			unified = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", parts[1], parts[2])
			}
		}
	}
	if unified != "" {
		return filepath.Join("/sys/fs/cgroup", unified)
	}
	t.Fatalf("no %s cgroup for pid %d", controller, pid)
	return ""
}

func readUint(t *testing.T, path string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(string(mustRead(t, path))), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cgroupWorkingSet is the kubelet's (cAdvisor's) working set: usage less inactive file pages.
func cgroupWorkingSet(t *testing.T, pid int) uint64 {
	t.Helper()
	dir := cgroupDir(t, pid, "memory")
	usageFile, inactiveKey := "memory.usage_in_bytes", "total_inactive_file"
	if _, err := os.Stat(filepath.Join(dir, usageFile)); err != nil { // cgroup v2
		usageFile, inactiveKey = "memory.current", "inactive_file"
	}
	usage := readUint(t, filepath.Join(dir, usageFile))
	for _, l := range strings.Split(string(mustRead(t, filepath.Join(dir, "memory.stat"))), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok && k == inactiveKey {
			n, _ := strconv.ParseUint(v, 10, 64)
			if n < usage {
				return usage - n
			}
			return 0
		}
	}
	return usage
}

// cgroupCPU is the cgroup's CPU time in nanoseconds.
func cgroupCPU(t *testing.T, pid int) uint64 {
	t.Helper()
	dir := cgroupDir(t, pid, "cpuacct")
	if _, err := os.Stat(filepath.Join(dir, "cpuacct.usage")); err == nil {
		return readUint(t, filepath.Join(dir, "cpuacct.usage"))
	}
	for _, l := range strings.Split(string(mustRead(t, filepath.Join(dir, "cpu.stat"))), "\n") { // v2
		if k, v, ok := strings.Cut(l, " "); ok && k == "usage_usec" {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n * 1000
		}
	}
	t.Fatalf("no CPU usage in %s", dir)
	return 0
}

type summaryFs struct {
	CapacityBytes  uint64 `json:"capacityBytes"`
	AvailableBytes uint64 `json:"availableBytes"`
	UsedBytes      uint64 `json:"usedBytes"`
	InodesUsed     uint64 `json:"inodesUsed"`
}

type summaryJSON struct {
	Node struct {
		Fs      *summaryFs `json:"fs"`
		Runtime struct {
			ImageFs *summaryFs `json:"imageFs"`
		} `json:"runtime"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name string `json:"name"`
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
			CPU  struct {
				UsageCoreNanoSeconds uint64 `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory struct {
				WorkingSetBytes uint64 `json:"workingSetBytes"`
			} `json:"memory"`
			Rootfs *summaryFs `json:"rootfs"`
			Logs   *summaryFs `json:"logs"`
		} `json:"containers"`
		EphemeralStorage *summaryFs `json:"ephemeral-storage"`
	} `json:"pods"`
}

func within(got, want uint64, frac float64) bool {
	return math.Abs(float64(got)-float64(want)) <= frac*float64(want)
}

// TestNodeMetricsAndStats: after pods ran, /metrics has the kubelet's runtime operation, relist,
// pod worker and pod start SLI metrics with sensible counts; /stats/summary's container CPU and
// memory match the container's cgroup files within 10%, and it reports the node's filesystems and
// each container's writable layer and logs.
func TestNodeMetricsAndStats(t *testing.T) {
	c := newCluster(t)
	port, _ := c.serveNode()
	c.start("--node-ip", "127.0.0.1")
	c.waitNodeReady(10 * time.Second)

	// burner: a CPU-bound loop limited to 0.2 CPU, 20 MB held in a shell variable, 5 MB written
	// to its writable layer, some output to its log.
	burner := apiPod("burner", "Always", "sh", "-c",
		`head -c 5000000 /dev/urandom > /big.bin; echo logged-line; x=$(head -c 20000000 /dev/zero | tr '\0' a); while :; do :; done`)
	burner.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("200m"), v1.ResourceMemory: resource.MustParse("200Mi")},
	}
	c.create(burner)
	c.create(apiPod("idle-1", "Always", "sleep", "3600"))
	c.create(apiPod("idle-2", "Always", "sleep", "3600"))
	bad := apiPod("no-image", "Always", "sleep", "1")
	bad.Spec.Containers[0].Image = "localhost/berth-no-such-image:1"
	c.create(bad)
	for _, name := range []string{"burner", "idle-1", "idle-2"} {
		c.waitPod(name, "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	}
	c.waitPod("no-image", "ErrImagePull", 30*time.Second, func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && strings.Contains(cs[0].State.Waiting.Reason, "ImagePull")
	})
	time.Sleep(4 * time.Second) // the burner allocates and burns a while

	t.Run("metrics", func(t *testing.T) {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mf, err := parser.TextToMetricFamilies(bytes.NewReader(c.nodeGet(port, "/metrics")))
		if err != nil {
			t.Fatal(err)
		}
		byOp := func(family string) map[string]*dto.Metric {
			out := map[string]*dto.Metric{}
			for _, m := range mf[family].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "operation_type" {
						out[l.GetValue()] = m
					}
				}
			}
			return out
		}
		checkType := func(family string, want dto.MetricType) {
			if f := mf[family]; f == nil || f.GetType() != want {
				t.Errorf("%s: %v, want a %v", family, f, want)
			}
		}
		checkType("kubelet_runtime_operations_total", dto.MetricType_COUNTER)
		checkType("kubelet_runtime_operations_duration_seconds", dto.MetricType_HISTOGRAM)
		checkType("kubelet_runtime_operations_errors_total", dto.MetricType_COUNTER)
		checkType("kubelet_pleg_relist_duration_seconds", dto.MetricType_HISTOGRAM)
		checkType("kubelet_pod_worker_duration_seconds", dto.MetricType_HISTOGRAM)
		checkType("kubelet_pod_start_sli_duration_seconds", dto.MetricType_HISTOGRAM)

		ops := byOp("kubelet_runtime_operations_total")
		for op, min := range map[string]float64{"run_podsandbox": 4, "create_container": 3, "start_container": 3, "list_containers": 5, "list_podsandbox": 5, "pull_image": 1, "version": 1} {
			if got := ops[op].GetCounter().GetValue(); got < min {
				t.Errorf("kubelet_runtime_operations_total{operation_type=%q} = %v, want at least %v", op, got, min)
			}
		}
		durations := byOp("kubelet_runtime_operations_duration_seconds")
		h := durations["list_containers"].GetHistogram()
		// The exposition lists +Inf as a bucket of its own: 14 + 1.
		if h.GetSampleCount() < 5 || len(h.GetBucket()) != 15 || h.GetBucket()[0].GetUpperBound() != 0.005 || h.GetBucket()[13].GetUpperBound() != 0.005*math.Pow(2.5, 13) {
			t.Fatalf("list_containers duration: %d samples, buckets %v, want the kubelet's 14 from 0.005", h.GetSampleCount(), h.GetBucket())
		}
		if uint64(ops["list_containers"].GetCounter().GetValue()) < h.GetSampleCount() {
			t.Errorf("list_containers: %v operations but %d timed", ops["list_containers"].GetCounter().GetValue(), h.GetSampleCount())
		}
		if got := byOp("kubelet_runtime_operations_errors_total")["pull_image"].GetCounter().GetValue(); got < 1 {
			t.Errorf("kubelet_runtime_operations_errors_total{operation_type=pull_image} = %v, want the failed pull", got)
		}
		only := func(family string) *dto.Histogram {
			if ms := mf[family].GetMetric(); len(ms) == 1 {
				return ms[0].GetHistogram()
			}
			t.Fatalf("%s: %v", family, mf[family])
			return nil
		}
		relist := only("kubelet_pleg_relist_duration_seconds")
		if relist.GetSampleCount() < 5 || relist.GetSampleSum() <= 0 || relist.GetSampleSum()/float64(relist.GetSampleCount()) > 1 {
			t.Errorf("relist: %d samples, sum %vs", relist.GetSampleCount(), relist.GetSampleSum())
		}
		workers := byOp("kubelet_pod_worker_duration_seconds")
		if n := workers["create"].GetHistogram().GetSampleCount(); n < 4 {
			t.Errorf("pod worker create syncs: %d, want one per pod (4)", n)
		}
		if n := workers["sync"].GetHistogram().GetSampleCount(); n < 1 {
			t.Errorf("pod worker syncs: %d", n)
		}
		start := only("kubelet_pod_start_sli_duration_seconds")
		// The three pods that run, each once; the one without an image never started.
		if start.GetSampleCount() != 3 || start.GetSampleSum() <= 0 || start.GetSampleSum()/3 > 30 {
			t.Errorf("pod start SLI: %d samples, sum %vs; want 3, each under 30 s", start.GetSampleCount(), start.GetSampleSum())
		}
		if b := start.GetBucket(); len(b) != 26 || b[0].GetUpperBound() != 0.5 || b[24].GetUpperBound() != 3600 {
			t.Errorf("pod start SLI buckets: %v, want the kubelet's 25 from 0.5 to 3600 (and +Inf)", b)
		}
	})

	t.Run("stats-summary", func(t *testing.T) {
		var id string
		for _, ct := range c.containersOf("burner") {
			id = ct
		}
		pid := c.containerPid(id)
		// containerd measures writable layers every 10 s (its stats_collect_period): wait for a
		// measurement after the 5 MB were written.
		waitFor(t, "the burner's writable layer measured with its 5 MB", 30*time.Second, func() bool {
			var sum summaryJSON
			_ = json.Unmarshal(c.nodeGet(port, "/stats/summary"), &sum)
			for _, p := range sum.Pods {
				if p.PodRef.Name == "burner" && len(p.Containers) == 1 && p.Containers[0].Rootfs != nil {
					return p.Containers[0].Rootfs.UsedBytes >= 5e6
				}
			}
			return false
		})
		// CPU grows while we look: read the cgroup just before and after the summary.
		cpuBefore := cgroupCPU(t, pid)
		memBefore := cgroupWorkingSet(t, pid)
		b := c.nodeGet(port, "/stats/summary")
		cpuAfter := cgroupCPU(t, pid)
		memAfter := cgroupWorkingSet(t, pid)
		var sum summaryJSON
		if err := json.Unmarshal(b, &sum); err != nil {
			t.Fatal(err)
		}
		if fs := sum.Node.Fs; fs == nil || fs.CapacityBytes == 0 || fs.UsedBytes == 0 || fs.AvailableBytes > fs.CapacityBytes {
			t.Errorf("node fs: %+v", fs)
		}
		if fs := sum.Node.Runtime.ImageFs; fs == nil || fs.CapacityBytes == 0 || fs.UsedBytes == 0 {
			t.Errorf("runtime imageFs: %+v", fs)
		}
		found := false
		for _, p := range sum.Pods {
			if p.PodRef.Name != "burner" {
				continue
			}
			if len(p.Containers) != 1 {
				t.Fatalf("burner containers: %+v", p.Containers)
			}
			found = true
			ct := p.Containers[0]
			t.Logf("cpu: summary %d, cgroup %d..%d; memory: summary %d, cgroup %d..%d",
				ct.CPU.UsageCoreNanoSeconds, cpuBefore, cpuAfter, ct.Memory.WorkingSetBytes, memBefore, memAfter)
			if ct.CPU.UsageCoreNanoSeconds < cpuBefore*9/10 || ct.CPU.UsageCoreNanoSeconds > cpuAfter*11/10 || cpuBefore < 5e8 {
				t.Errorf("cpu usageCoreNanoSeconds %d, cgroup %d..%d: not within 10%%", ct.CPU.UsageCoreNanoSeconds, cpuBefore, cpuAfter)
			}
			if !within(ct.Memory.WorkingSetBytes, memBefore, 0.1) && !within(ct.Memory.WorkingSetBytes, memAfter, 0.1) || memBefore < 10e6 {
				t.Errorf("memory workingSetBytes %d, cgroup %d / %d: not within 10%%", ct.Memory.WorkingSetBytes, memBefore, memAfter)
			}
			if ct.Rootfs == nil || ct.Rootfs.UsedBytes < 5e6 || ct.Rootfs.CapacityBytes == 0 {
				t.Errorf("rootfs: %+v, want the 5 MB written", ct.Rootfs)
			}
			if ct.Logs == nil || ct.Logs.UsedBytes == 0 || ct.Logs.InodesUsed == 0 || ct.Logs.CapacityBytes == 0 {
				t.Errorf("logs: %+v", ct.Logs)
			}
			if es := p.EphemeralStorage; es == nil || ct.Rootfs == nil || ct.Logs == nil || es.UsedBytes != ct.Rootfs.UsedBytes+ct.Logs.UsedBytes {
				t.Errorf("ephemeral-storage: %+v, want rootfs + logs", es)
			}
		}
		if !found {
			t.Errorf("no burner pod in %.500s", b)
		}
	})
}

// containersOf lists the IDs of a pod's running containers in the runtime.
func (c *cluster) containersOf(pod string) []string {
	c.t.Helper()
	p := c.get(pod)
	if p == nil {
		c.t.Fatalf("pod %s not found", pod)
	}
	var out []string
	for _, ct := range c.containers(string(p.UID)) {
		if ct.State.String() == "CONTAINER_RUNNING" {
			out = append(out, ct.Id)
		}
	}
	return out
}
