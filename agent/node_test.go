package agent

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/kubeclient/clientset"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// nodeTestRuntime answers Version and Status, as the test sets them; the node side calls nothing
// else (the embedded nil Runtime would panic if it did).
type nodeTestRuntime struct {
	Runtime
	mu        sync.Mutex
	statusErr error
	network   *runtimeapi.RuntimeCondition // nil: NetworkReady=true
}

func (r *nodeTestRuntime) Version(context.Context) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "1.7.24", RuntimeApiVersion: "v1"}, nil
}

func (r *nodeTestRuntime) Status(context.Context) (*runtimeapi.RuntimeStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statusErr != nil {
		return nil, r.statusErr
	}
	network := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if r.network != nil {
		network = r.network
	}
	return &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, network,
	}}, nil
}

func (r *nodeTestRuntime) set(statusErr error, network *runtimeapi.RuntimeCondition) {
	r.mu.Lock()
	r.statusErr, r.network = statusErr, network
	r.mu.Unlock()
}

// nodeLogCounter is a slog handler that keeps every record's level and message.
type nodeLogCounter struct {
	mu      sync.Mutex
	records []string // "LEVEL message"
}

func (c *nodeLogCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *nodeLogCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.records = append(c.records, r.Level.String()+" "+r.Message)
	c.mu.Unlock()
	return nil
}
func (c *nodeLogCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *nodeLogCounter) WithGroup(string) slog.Handler      { return c }

// count is how many records start with prefix ("WARN node lease").
func (c *nodeLogCounter) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.records {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// nodeHarness is a nodeAgent on a fake clientset and a fake clock.
type nodeHarness struct {
	t      *testing.T
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	rt     *nodeTestRuntime
	logs   *nodeLogCounter
	rec    *record.FakeRecorder
	n      *nodeAgent

	mu      sync.Mutex
	failAPI error // when set, every call on nodes and leases fails with it
	uids    int

	cancel context.CancelFunc
	done   chan struct{}
}

var nodeTestStart = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func nodeTestConfig() nodeAgentConfig {
	return nodeAgentConfig{
		Cluster: &ClusterConfig{
			NodeLabels:                map[string]string{"example.com/role": "edge", "node.kubernetes.io/pool": "blue"},
			RegisterWithTaints:        []v1.Taint{{Key: "example.com/dedicated", Value: "edge", Effect: v1.TaintEffectNoSchedule}},
			NodeStatusUpdateFrequency: 10 * time.Second,
			NodeStatusReportFrequency: 5 * time.Minute,
			NodeLeaseDurationSeconds:  40,
			KubeReserved:              v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("1Gi")},
			SystemReserved:            v1.ResourceList{v1.ResourceMemory: resource.MustParse("512Mi")},
			Version:                   "v0.3.0-berth",
			Port:                      10250,
		},
		NodeName: "node-1",
		NodeIPs:  []string{"10.0.0.5", "fd00::5"},
		Hostname: "Node-1.Example",
		MaxPods:  110,
		Machine: machineInfo{
			CPUs: 4, MemoryBytes: 8 << 30, EphemeralStorageBytes: 100 << 30,
			MachineID: "mid", SystemUUID: "suuid", BootID: "bid", KernelVersion: "6.1.0-28-amd64",
			OSImage: "Debian GNU/Linux 12 (bookworm)", OperatingSystem: "linux", Architecture: "amd64",
		},
	}
}

func newNodeHarness(t *testing.T, mutate func(*nodeAgentConfig), objects ...runtime.Object) *nodeHarness {
	t.Helper()
	h := &nodeHarness{
		t:      t,
		client: fake.NewClientset(objects...),
		clock:  clocktesting.NewFakeClock(nodeTestStart),
		rt:     &nodeTestRuntime{},
		logs:   &nodeLogCounter{},
		rec:    record.NewFakeRecorder(1000),
	}
	for _, res := range []string{"nodes", "leases"} {
		h.client.PrependReactor("*", res, func(k8stesting.Action) (bool, runtime.Object, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.failAPI != nil, nil, h.failAPI
		})
	}
	// The fake clientset sets no UID; the API server does.
	h.client.PrependReactor("create", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		node := a.(k8stesting.CreateAction).GetObject().(*v1.Node)
		h.mu.Lock()
		h.uids++
		node.UID = types.UID("node-uid-" + string(rune('0'+h.uids)))
		h.mu.Unlock()
		return false, nil, nil
	})
	cfg := nodeTestConfig()
	cfg.Cluster.Client = clientset.Wrap(h.client)
	cfg.Runtime = h.rt
	cfg.Clock = h.clock
	cfg.Logger = slog.New(h.logs)
	cfg.Recorder = h.rec
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := newNodeAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.n = n
	return h
}

func (h *nodeHarness) setFailAPI(err error) {
	h.mu.Lock()
	h.failAPI = err
	h.mu.Unlock()
}

func (h *nodeHarness) register() {
	h.t.Helper()
	// Registration retries on the fake clock, which register does not move: a failure would
	// hang, so give up after a while and show the logs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.n.Register(ctx); err != nil {
		h.logs.mu.Lock()
		defer h.logs.mu.Unlock()
		h.t.Fatalf("Register: %v; logs: %q", err, h.logs.records)
	}
}

// run registers (if needed) and starts Run, then waits until both loops sleep.
func (h *nodeHarness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { defer close(h.done); h.n.Run(ctx) }()
	h.t.Cleanup(h.stop)
	h.settle(2)
}

func (h *nodeHarness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// settle waits until waiters goroutines sleep on the fake clock: the loops have done all the work
// the last step asked of them.
func (h *nodeHarness) settle(waiters int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.clock.Waiters() != waiters {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %d sleepers on the clock (have %d)", waiters, h.clock.Waiters())
		}
		time.Sleep(time.Millisecond)
	}
}

// step moves the clock and lets the loops catch up.
func (h *nodeHarness) step(d time.Duration) {
	h.t.Helper()
	h.clock.Step(d)
	h.settle(2)
}

// count is the number of API calls with verb on resource ("" subresource: the object itself).
func (h *nodeHarness) count(verb, res, sub string) int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == res && a.GetSubresource() == sub {
			n++
		}
	}
	return n
}

func (h *nodeHarness) node() *v1.Node {
	h.t.Helper()
	node, err := h.client.Tracker().Get(v1.SchemeGroupVersion.WithResource("nodes"), "", "node-1")
	if err != nil {
		h.t.Fatal(err)
	}
	return node.(*v1.Node)
}

func nodeTestLease(t *testing.T, h *nodeHarness) *coordinationv1.Lease {
	t.Helper()
	l, err := h.client.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), "kube-node-lease", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	return l.(*coordinationv1.Lease)
}

// events drains the recorder: "Normal Reason message" each.
func (h *nodeHarness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestNodeRegisterCreatesNode(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.register()

	if got := h.count("create", "nodes", ""); got != 1 {
		t.Fatalf("creates = %d, want 1", got)
	}
	node := h.node()
	if h.n.Node() == nil || h.n.Node().UID != node.UID || node.UID == "" {
		t.Fatalf("Node() = %v, want the created node (uid %q)", h.n.Node(), node.UID)
	}
	wantLabels := map[string]string{
		"kubernetes.io/hostname":  "node-1",
		"kubernetes.io/os":        "linux",
		"kubernetes.io/arch":      "amd64",
		"beta.kubernetes.io/os":   "linux",
		"beta.kubernetes.io/arch": "amd64",
		"example.com/role":        "edge",
		"node.kubernetes.io/pool": "blue",
	}
	if !maps.Equal(node.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", node.Labels, wantLabels)
	}
	if want := []v1.Taint{{Key: "example.com/dedicated", Value: "edge", Effect: v1.TaintEffectNoSchedule}}; !slices.Equal(node.Spec.Taints, want) {
		t.Errorf("taints = %v, want %v", node.Spec.Taints, want)
	}
	wantAddrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeInternalIP, Address: "fd00::5"}, {Type: v1.NodeHostName, Address: "node-1.example"}}
	if !slices.Equal(node.Status.Addresses, wantAddrs) {
		t.Errorf("addresses = %v, want %v", node.Status.Addresses, wantAddrs)
	}

	// 4 CPUs - 500m; 8Gi - 1Gi - 512Mi - 100Mi (memory.available); 100Gi - 10% (nodefs.available).
	checkResources(t, "capacity", node.Status.Capacity, map[v1.ResourceName]string{
		v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110", v1.ResourceEphemeralStorage: "100Gi"})
	checkResources(t, "allocatable", node.Status.Allocatable, map[v1.ResourceName]string{
		v1.ResourceCPU: "3500m", v1.ResourceMemory: "6556Mi", v1.ResourcePods: "110", v1.ResourceEphemeralStorage: "90Gi"})

	wantInfo := v1.NodeSystemInfo{
		MachineID: "mid", SystemUUID: "suuid", BootID: "bid", KernelVersion: "6.1.0-28-amd64",
		OSImage: "Debian GNU/Linux 12 (bookworm)", ContainerRuntimeVersion: "containerd://1.7.24",
		KubeletVersion: "v0.3.0-berth", OperatingSystem: "linux", Architecture: "amd64",
	}
	if node.Status.NodeInfo != wantInfo {
		t.Errorf("nodeInfo = %+v, want %+v", node.Status.NodeInfo, wantInfo)
	}
	if p := node.Status.DaemonEndpoints.KubeletEndpoint.Port; p != 10250 {
		t.Errorf("daemon endpoint port = %d, want 10250", p)
	}

	var condTypes []v1.NodeConditionType
	for _, c := range node.Status.Conditions {
		condTypes = append(condTypes, c.Type)
		if !c.LastHeartbeatTime.Time.Equal(nodeTestStart) || !c.LastTransitionTime.Time.Equal(nodeTestStart) {
			t.Errorf("condition %s: times %v/%v, want %v", c.Type, c.LastHeartbeatTime, c.LastTransitionTime, nodeTestStart)
		}
	}
	if want := []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure, v1.NodeReady}; !slices.Equal(condTypes, want) {
		t.Errorf("conditions = %v, want %v", condTypes, want)
	}
	checkCondition(t, node, v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	checkCondition(t, node, v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
	checkCondition(t, node, v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
	checkCondition(t, node, v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available")

	want := []string{"Normal Starting Starting berth.", "Normal NodeReady Node node-1 status is now: NodeReady", "Normal RegisteredNode Node node-1 event: Registered Node node-1"}
	if got := h.events(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	if got := h.logs.count("INFO node registered"); got != 1 {
		t.Errorf("%d 'node registered' logs, want 1", got)
	}
}

func TestNodeRegisterReconcilesExistingNode(t *testing.T) {
	old := metav1.NewTime(nodeTestStart.Add(-time.Hour))
	existing := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "existing-uid", Labels: map[string]string{
			"kubernetes.io/hostname": "stale", "team": "payments", "node.kubernetes.io/pool": "blue",
		}},
		Spec: v1.NodeSpec{Taints: []v1.Taint{{Key: "admin/maintenance", Effect: v1.TaintEffectNoExecute}}},
		Status: v1.NodeStatus{
			Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.9.9.9"}, {Type: v1.NodeHostName, Address: "node-1"}},
			Capacity:  v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
			Conditions: []v1.NodeCondition{
				{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse, Reason: "RouteCreated", LastTransitionTime: old, LastHeartbeatTime: old},
				{Type: v1.NodeReady, Status: v1.ConditionUnknown, Reason: "NodeStatusUnknown", LastTransitionTime: old, LastHeartbeatTime: old},
			},
		},
	}
	h := newNodeHarness(t, nil, existing)
	h.register()

	if got := h.count("create", "nodes", ""); got != 0 {
		t.Fatalf("creates = %d, want 0 (the node exists)", got)
	}
	node := h.node()
	if node.UID != "existing-uid" || h.n.Node().UID != "existing-uid" {
		t.Fatalf("uid = %q, Node().UID = %q, want the existing node's", node.UID, h.n.Node().UID)
	}
	if node.Labels["team"] != "payments" || node.Labels["kubernetes.io/hostname"] != "node-1" ||
		node.Labels["example.com/role"] != "edge" || node.Labels["kubernetes.io/os"] != "linux" {
		t.Errorf("labels not merged: %v", node.Labels)
	}
	if want := existing.Spec.Taints; !slices.Equal(node.Spec.Taints, want) {
		t.Errorf("taints = %v, want the existing ones %v (registerWithTaints apply on creation only)", node.Spec.Taints, want)
	}
	wantAddrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeInternalIP, Address: "fd00::5"}, {Type: v1.NodeHostName, Address: "node-1.example"}}
	if !slices.Equal(node.Status.Addresses, wantAddrs) {
		t.Errorf("addresses = %v, want %v", node.Status.Addresses, wantAddrs)
	}
	checkResources(t, "capacity", node.Status.Capacity, map[v1.ResourceName]string{
		v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi", v1.ResourcePods: "110", v1.ResourceEphemeralStorage: "100Gi"})
	if c := nodeCondition(node, v1.NodeNetworkUnavailable); c == nil || c.Reason != "RouteCreated" {
		t.Errorf("NetworkUnavailable (not Berth's) = %v, want it kept", c)
	}
	ready := checkCondition(t, node, v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	if ready != nil && !ready.LastTransitionTime.Time.Equal(nodeTestStart) {
		t.Errorf("Ready lastTransitionTime = %v, want now (Unknown → True)", ready.LastTransitionTime)
	}
	if got := h.count("patch", "nodes", ""); got != 1 {
		t.Errorf("label patches = %d, want 1", got)
	}
	want := []string{"Normal Starting Starting berth.", "Normal NodeReady Node node-1 status is now: NodeReady"}
	if got := h.events(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q (no RegisteredNode: it was not created)", got, want)
	}

	// Registering again (a restart) finds nothing to change in the labels.
	h.register()
	if got := h.count("patch", "nodes", ""); got != 1 {
		t.Errorf("label patches after a second registration = %d, want still 1", got)
	}
	if got := h.count("create", "nodes", ""); got != 0 {
		t.Errorf("creates = %d, want 0", got)
	}
}

func TestNodeRegisterRetriesWithBackoff(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.setFailAPI(errors.New("dial tcp 10.0.0.1:6443: connect: connection refused"))
	done := make(chan error, 1)
	go func() { done <- h.n.Register(context.Background()) }()

	h.settle(1)
	for range 60 {
		h.clock.Step(time.Second)
		h.settle(1)
	}
	gets := h.count("get", "nodes", "")
	// 100ms doubling to 7s over a minute: about a dozen attempts, not one per millisecond.
	if gets < 6 || gets > 20 {
		t.Errorf("%d attempts in a minute, want back-off (6..20)", gets)
	}
	if got := h.logs.count("WARN node registration failed"); got != 1 {
		t.Errorf("%d failure logs, want 1 (once per state change)", got)
	}
	h.setFailAPI(nil)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if got := h.logs.count("INFO node registration recovered"); got != 1 {
				t.Errorf("%d recovery logs, want 1", got)
			}
			if got := h.count("create", "nodes", ""); got != 1 {
				t.Errorf("creates = %d, want 1", got)
			}
			return
		default:
		}
		if h.clock.Waiters() == 1 {
			h.clock.Step(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNodeRegisterStopsWithContext(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.setFailAPI(errors.New("connection refused"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.n.Register(ctx) }()
	h.settle(1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Register = %v, want context.Canceled", err)
	}
	if h.n.Node() != nil {
		t.Fatal("Node() is set without a registration")
	}
}

func TestNewNodeAgentValidates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*nodeAgentConfig)
		want   string // "" accepted
	}{
		{"allowed labels", func(c *nodeAgentConfig) {
			c.Cluster.NodeLabels = map[string]string{
				"node.kubernetes.io/pool": "a", "kubelet.kubernetes.io/x": "b", "topology.kubernetes.io/zone": "z1",
				"kubernetes.io/hostname": "node-1", "failure-domain.beta.kubernetes.io/region": "r", "example.com/x": "y", "plain": "v",
				"sub.node.kubernetes.io/y": "c",
			}
		}, ""},
		{"role label", func(c *nodeAgentConfig) {
			c.Cluster.NodeLabels = map[string]string{"node-role.kubernetes.io/worker": ""}
		},
			`label "node-role.kubernetes.io/worker" is not allowed`},
		{"k8s.io label", func(c *nodeAgentConfig) { c.Cluster.NodeLabels = map[string]string{"foo.k8s.io/bar": "x"} },
			`label "foo.k8s.io/bar" is not allowed`},
		{"unknown kubernetes.io label", func(c *nodeAgentConfig) { c.Cluster.NodeLabels = map[string]string{"kubernetes.io/role": "x"} },
			`label "kubernetes.io/role" is not allowed`},
		{"node-restriction label", func(c *nodeAgentConfig) {
			c.Cluster.NodeLabels = map[string]string{"node-restriction.kubernetes.io/secure": "true"}
		}, `label "node-restriction.kubernetes.io/secure": the node-restriction.kubernetes.io domain is reserved`},
		{"bad label value", func(c *nodeAgentConfig) { c.Cluster.NodeLabels = map[string]string{"a": "not ok!"} }, `label "a": value "not ok!"`},
		{"bad taint", func(c *nodeAgentConfig) { c.Cluster.RegisterWithTaints = []v1.Taint{{Key: "k", Effect: "Sometimes"}} },
			`registerWithTaints[0]: taint "k": effect "Sometimes"`},
		{"bad eviction", func(c *nodeAgentConfig) { c.Cluster.EvictionHard = map[string]string{"memory.available": "lots"} },
			`evictionHard: memory.available: "lots"`},
		{"unknown eviction signal", func(c *nodeAgentConfig) { c.Cluster.EvictionHard = map[string]string{"memory.free": "1Gi"} },
			`evictionHard: unknown signal "memory.free"`},
		{"uppercase node name", func(c *nodeAgentConfig) { c.NodeName = "Node-1" }, `node name "Node-1"`},
		{"bad node IP", func(c *nodeAgentConfig) { c.NodeIPs = []string{"10.0.0.300"} }, `node IP "10.0.0.300"`},
		{"no client", func(c *nodeAgentConfig) { c.Cluster.Client = nil }, "no API server client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nodeTestConfig()
			cfg.Cluster.Client = clientset.Wrap(fake.NewClientset())
			cfg.Runtime = &nodeTestRuntime{}
			tc.mutate(&cfg)
			_, err := newNodeAgent(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNodeAllocatable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		eviction map[string]string
		kube     v1.ResourceList
		want     map[v1.ResourceName]string
	}{
		{"defaults", nil, nil, map[v1.ResourceName]string{
			v1.ResourceCPU: "4", v1.ResourceMemory: "8092Mi", v1.ResourceEphemeralStorage: "90Gi", v1.ResourcePods: "110"}},
		{"percentages and quantities", map[string]string{"memory.available": "25%", "nodefs.available": "1Gi", "imagefs.available": "15%"}, nil,
			map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "6Gi", v1.ResourceEphemeralStorage: "99Gi", v1.ResourcePods: "110"}},
		{"no thresholds", map[string]string{}, v1.ResourceList{v1.ResourceEphemeralStorage: resource.MustParse("10Gi")},
			map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "8Gi", v1.ResourceEphemeralStorage: "90Gi", v1.ResourcePods: "110"}},
		{"reserved beyond capacity", map[string]string{}, v1.ResourceList{v1.ResourceCPU: resource.MustParse("8")},
			map[v1.ResourceName]string{v1.ResourceCPU: "0", v1.ResourceMemory: "8Gi", v1.ResourceEphemeralStorage: "100Gi", v1.ResourcePods: "110"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNodeHarness(t, func(c *nodeAgentConfig) {
				c.Cluster.KubeReserved, c.Cluster.SystemReserved, c.Cluster.EvictionHard = tc.kube, nil, tc.eviction
			})
			checkResources(t, "allocatable", h.n.allocatable(h.n.capacity()), tc.want)
		})
	}
}

func TestReadMachineInfo(t *testing.T) {
	if goruntime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	m, err := readMachineInfo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.CPUs < 1 || m.MemoryBytes < 1<<20 || m.EphemeralStorageBytes <= 0 {
		t.Errorf("capacity = %d cpus, %d bytes of memory, %d bytes of storage", m.CPUs, m.MemoryBytes, m.EphemeralStorageBytes)
	}
	if m.BootID == "" || m.KernelVersion == "" || m.OSImage == "" {
		t.Errorf("identity = %+v, want bootID, kernel and OS image", m)
	}
	if m.OperatingSystem != goruntime.GOOS || m.Architecture != goruntime.GOARCH {
		t.Errorf("os/arch = %s/%s", m.OperatingSystem, m.Architecture)
	}
	if _, err := readMachineInfo("/does/not/exist"); err == nil || !strings.Contains(err.Error(), "/does/not/exist") {
		t.Errorf("missing root dir: err = %v, want one naming it", err)
	}
}

func checkResources(t *testing.T, what string, got v1.ResourceList, want map[v1.ResourceName]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	for name, w := range want {
		q, ok := got[name]
		if wq := resource.MustParse(w); !ok || q.Cmp(wq) != 0 {
			t.Errorf("%s[%s] = %s, want %s", what, name, q.String(), w)
		}
	}
}

func checkCondition(t *testing.T, node *v1.Node, typ v1.NodeConditionType, status v1.ConditionStatus, reason, message string) *v1.NodeCondition {
	t.Helper()
	c := nodeCondition(node, typ)
	if c == nil {
		t.Errorf("no %s condition", typ)
		return nil
	}
	if c.Status != status || c.Reason != reason || c.Message != message {
		t.Errorf("%s = %s %s %q, want %s %s %q", typ, c.Status, c.Reason, c.Message, status, reason, message)
	}
	return c
}

func TestNodeRegisterCreateRace(t *testing.T) {
	existing := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "existing-uid"}}
	h := newNodeHarness(t, nil, existing)
	first := true
	// The first Get misses the node (created meanwhile by someone else): Create then finds it.
	h.client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		if first {
			first = false
			return true, nil, apierrors.NewNotFound(v1.Resource("nodes"), "node-1")
		}
		return false, nil, nil
	})
	h.register()
	if h.n.Node().UID != "existing-uid" || h.node().Labels["kubernetes.io/hostname"] != "node-1" {
		t.Errorf("existing node not reconciled: uid %q labels %v", h.n.Node().UID, h.node().Labels)
	}
	if got := h.logs.count("WARN"); got != 0 {
		t.Errorf("%d warnings for a lost create race", got)
	}
}
