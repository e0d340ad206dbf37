package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var nodeTestNetworkDown = &runtimeapi.RuntimeCondition{
	Type: runtimeapi.NetworkReady, Status: false,
	Reason: "NetworkPluginNotReady", Message: "Network plugin returns error: cni plugin not initialized",
}

const nodeTestNetworkMessage = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"

func TestNodeReadyCondition(t *testing.T) {
	const pleg = "pleg was last seen active 3m10s ago; threshold is 3m0s"
	for _, tc := range []struct {
		name       string
		statusErr  error
		network    *runtimeapi.RuntimeCondition
		relist     error
		notReady   string
		wantStatus v1.ConditionStatus
		wantReason string
		wantMsg    string
	}{
		{name: "ready", wantStatus: v1.ConditionTrue, wantReason: "KubeletReady", wantMsg: "kubelet is posting ready status"},
		{name: "runtime down", statusErr: errors.New("rpc error: code = Unavailable"),
			wantStatus: v1.ConditionFalse, wantReason: "KubeletNotReady", wantMsg: "container runtime is down"},
		{name: "network not ready", network: nodeTestNetworkDown,
			wantStatus: v1.ConditionFalse, wantReason: "KubeletNotReady", wantMsg: nodeTestNetworkMessage},
		{name: "relist unhealthy", relist: errors.New(pleg),
			wantStatus: v1.ConditionFalse, wantReason: "KubeletNotReady", wantMsg: "PLEG is not healthy: " + pleg},
		{name: "runtime down and relist unhealthy", statusErr: errors.New("down"), relist: errors.New(pleg),
			wantStatus: v1.ConditionFalse, wantReason: "KubeletNotReady", wantMsg: "[container runtime is down, PLEG is not healthy: " + pleg + "]"},
		{name: "shutting down", notReady: "node is shutting down",
			wantStatus: v1.ConditionFalse, wantReason: "KubeletNotReady", wantMsg: "node is shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNodeHarness(t, func(c *nodeAgentConfig) {
				c.RelistHealthy = func() error { return tc.relist }
			})
			h.rt.set(tc.statusErr, tc.network)
			h.n.SetNotReady(tc.notReady)
			node := h.n.computeStatus(context.Background(), &v1.Node{})
			checkCondition(t, node, v1.NodeReady, tc.wantStatus, tc.wantReason, tc.wantMsg)
			// No pressure (no Pressure func): False with the kubelet's reasons.
			checkCondition(t, node, v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
		})
	}
}

func TestNodeStatusWrittenOnChangeOrReportFrequency(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.register()
	h.run()
	statusPatches := func() int { return h.count("patch", "nodes", "status") }

	for range 5 {
		h.step(10 * time.Second)
	}
	if got := statusPatches(); got != 0 {
		t.Fatalf("status patches = %d with nothing changed, want 0", got)
	}
	if got := h.count("get", "nodes", ""); got < 5 {
		t.Fatalf("node gets = %d, want one per update period (5)", got)
	}
	h.events()

	// A change is written at the next update.
	h.rt.set(nil, nodeTestNetworkDown)
	h.step(10 * time.Second)
	if got := statusPatches(); got != 1 {
		t.Fatalf("status patches = %d after the network went down, want 1", got)
	}
	down := h.clock.Now()
	c := checkCondition(t, h.node(), v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", nodeTestNetworkMessage)
	if c != nil && (!c.LastTransitionTime.Time.Equal(down) || !c.LastHeartbeatTime.Time.Equal(down)) {
		t.Errorf("Ready times = %v/%v, want both %v", c.LastTransitionTime, c.LastHeartbeatTime, down)
	}
	if got, want := h.events(), []string{"Normal NodeNotReady Node node-1 status is now: NodeNotReady"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	h.step(10 * time.Second)
	if got := statusPatches(); got != 1 {
		t.Fatalf("status patches = %d, want still 1 (unchanged)", got)
	}

	h.rt.set(nil, nil)
	h.step(10 * time.Second)
	if got := statusPatches(); got != 2 {
		t.Fatalf("status patches = %d after the network came back, want 2", got)
	}
	up := h.clock.Now()
	checkCondition(t, h.node(), v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	if got, want := h.events(), []string{"Normal NodeReady Node node-1 status is now: NodeReady"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}

	// Unchanged, it is written again once NodeStatusReportFrequency (5m) has passed.
	for range 29 {
		h.step(10 * time.Second)
	}
	if got := statusPatches(); got != 2 {
		t.Fatalf("status patches = %d after 4m50s unchanged, want still 2", got)
	}
	h.step(10 * time.Second)
	if got := statusPatches(); got != 3 {
		t.Fatalf("status patches = %d after 5m unchanged, want 3", got)
	}
	c = nodeCondition(h.node(), v1.NodeReady)
	if !c.LastHeartbeatTime.Time.Equal(h.clock.Now()) || !c.LastTransitionTime.Time.Equal(up) {
		t.Errorf("Ready heartbeat/transition = %v/%v, want %v/%v", c.LastHeartbeatTime, c.LastTransitionTime, h.clock.Now(), up)
	}
	if m := nodeCondition(h.node(), v1.NodeMemoryPressure); !m.LastTransitionTime.Time.Equal(nodeTestStart) || !m.LastHeartbeatTime.Time.Equal(h.clock.Now()) {
		t.Errorf("MemoryPressure heartbeat/transition = %v/%v, want %v/%v", m.LastHeartbeatTime, m.LastTransitionTime, h.clock.Now(), nodeTestStart)
	}
	if got := h.events(); len(got) != 0 {
		t.Errorf("events = %q, want none (no transition)", got)
	}
}

func TestNodeAPIOutage(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.register()
	h.run()
	h.step(10 * time.Second)

	h.setFailAPI(errors.New(`Patch "https://10.0.0.1:6443/api/v1/nodes/node-1/status": dial tcp 10.0.0.1:6443: connect: connection refused`))
	h.rt.set(nil, nodeTestNetworkDown) // something to write once it is back
	leaseUpdates, statusGets := h.count("update", "leases", ""), h.count("get", "nodes", "")
	for range 120 {
		h.step(time.Second)
	}
	leaseUpdates, statusGets = h.count("update", "leases", "")-leaseUpdates, h.count("get", "nodes", "")-statusGets
	// A back-off from 200ms doubling to the 10s period: about 17 attempts in 2 minutes each.
	if leaseUpdates < 10 || leaseUpdates > 30 || statusGets < 10 || statusGets > 30 {
		t.Errorf("attempts in a 2 minute outage: %d lease updates, %d node gets; want back-off (10..30)", leaseUpdates, statusGets)
	}
	if got := h.logs.count("WARN node lease renewal failed"); got != 1 {
		t.Errorf("%d lease failure logs, want 1", got)
	}
	if got := h.logs.count("WARN node status update failed"); got != 1 {
		t.Errorf("%d status failure logs, want 1", got)
	}
	if got := h.logs.count("INFO node lease renewal recovered") + h.logs.count("INFO node status update recovered"); got != 0 {
		t.Errorf("%d recovery logs during the outage", got)
	}

	h.setFailAPI(nil)
	back := h.clock.Now()
	for range 10 {
		h.step(time.Second)
	}
	lease := nodeTestLease(t, h)
	if age := h.clock.Since(lease.Spec.RenewTime.Time); lease.Spec.RenewTime.Time.Before(back) {
		t.Errorf("lease renewed %s ago, not since the API server came back", age)
	}
	checkCondition(t, h.node(), v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", nodeTestNetworkMessage)
	if got := h.logs.count("INFO node lease renewal recovered"); got != 1 {
		t.Errorf("%d lease recovery logs, want 1", got)
	}
	if got := h.logs.count("INFO node status update recovered"); got != 1 {
		t.Errorf("%d status recovery logs, want 1", got)
	}
	// And back to the normal period.
	updates := h.count("update", "leases", "")
	for range 3 {
		h.step(10 * time.Second)
	}
	if got := h.count("update", "leases", "") - updates; got != 3 {
		t.Errorf("%d lease updates in 30s after recovery, want 3", got)
	}
}

func TestNodeDeletedIsRegisteredAgain(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.register()
	h.run()
	first := h.n.Node().UID
	h.events()

	if err := h.client.Tracker().Delete(v1.SchemeGroupVersion.WithResource("nodes"), "", "node-1"); err != nil {
		t.Fatal(err)
	}
	h.step(10 * time.Second)
	if got := h.count("create", "nodes", ""); got != 2 {
		t.Fatalf("creates = %d, want 2 (registered again)", got)
	}
	node := h.node()
	if node.UID == first || h.n.Node().UID != node.UID {
		t.Fatalf("uid %q (Node() %q), want a new node, not %q", node.UID, h.n.Node().UID, first)
	}
	if node.Labels["example.com/role"] != "edge" || len(node.Spec.Taints) != 1 {
		t.Errorf("node registered again without its labels or taints: %v %v", node.Labels, node.Spec.Taints)
	}
	if got := h.logs.count("WARN node was deleted"); got != 1 {
		t.Errorf("%d deletion logs, want 1", got)
	}
	want := []string{"Normal NodeReady Node node-1 status is now: NodeReady", "Normal RegisteredNode Node node-1 event: Registered Node node-1"}
	if got := h.events(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q (Starting only once)", got, want)
	}
	h.step(10 * time.Second)
	if refs := nodeTestLease(t, h).OwnerReferences; len(refs) != 1 || refs[0].UID != node.UID {
		t.Errorf("lease owners = %v, want the new node %q", refs, node.UID)
	}
}

func TestNodeSetNotReady(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.register()
	h.run()
	h.events()

	waitPatches := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for h.count("patch", "nodes", "status") < n {
			if time.Now().After(deadline) {
				t.Fatalf("no status write %d without the clock moving", n)
			}
			time.Sleep(time.Millisecond)
		}
		h.settle(2)
	}
	h.n.SetNotReady("node is shutting down")
	waitPatches(1)
	checkCondition(t, h.node(), v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", "node is shutting down")
	if got, want := h.events(), []string{"Normal NodeNotReady Node node-1 status is now: NodeNotReady"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	h.n.SetNotReady("")
	waitPatches(2)
	checkCondition(t, h.node(), v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
}

// TestNodePressureConditions: the eviction manager's conditions are written at once (poke), True
// with the kubelet's reasons and messages, with an event for each flip.
func TestNodePressureConditions(t *testing.T) {
	var mu sync.Mutex
	var pressure []v1.NodeConditionType
	h := newNodeHarness(t, func(c *nodeAgentConfig) {
		c.Pressure = func() []v1.NodeConditionType {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(pressure)
		}
	})
	h.register()
	h.run()
	h.events()
	set := func(p ...v1.NodeConditionType) {
		mu.Lock()
		pressure = p
		mu.Unlock()
	}
	waitPatches := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for h.count("patch", "nodes", "status") < n {
			if time.Now().After(deadline) {
				t.Fatalf("no status write %d without the clock moving", n)
			}
			time.Sleep(time.Millisecond)
		}
		h.settle(2)
	}
	set(v1.NodeMemoryPressure, v1.NodePIDPressure)
	h.n.poke()
	waitPatches(1)
	node := h.node()
	checkCondition(t, node, v1.NodeMemoryPressure, v1.ConditionTrue, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
	checkCondition(t, node, v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
	checkCondition(t, node, v1.NodePIDPressure, v1.ConditionTrue, "KubeletHasInsufficientPID", "kubelet has insufficient PID available")
	checkCondition(t, node, v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	got := h.events()
	slices.Sort(got)
	if want := []string{"Normal NodeHasInsufficientMemory Node node-1 status is now: NodeHasInsufficientMemory",
		"Normal NodeHasInsufficientPID Node node-1 status is now: NodeHasInsufficientPID"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	set(v1.NodeDiskPressure)
	h.n.poke()
	waitPatches(2)
	node = h.node()
	checkCondition(t, node, v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
	checkCondition(t, node, v1.NodeDiskPressure, v1.ConditionTrue, "KubeletHasDiskPressure", "kubelet has disk pressure")
	checkCondition(t, node, v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available")
	got = h.events()
	slices.Sort(got)
	if want := []string{"Normal NodeHasDiskPressure Node node-1 status is now: NodeHasDiskPressure",
		"Normal NodeHasSufficientMemory Node node-1 status is now: NodeHasSufficientMemory",
		"Normal NodeHasSufficientPID Node node-1 status is now: NodeHasSufficientPID"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

func TestNodeStatusPatchReplacesAddresses(t *testing.T) {
	old := &v1.Node{Status: v1.NodeStatus{
		Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.1"}, {Type: v1.NodeInternalIP, Address: "10.0.0.2"}, {Type: v1.NodeHostName, Address: "a"}},
		Conditions: []v1.NodeCondition{
			{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse},
			{Type: v1.NodeReady, Status: v1.ConditionFalse},
		},
	}}
	updated := old.DeepCopy()
	updated.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.2"}, {Type: v1.NodeInternalIP, Address: "fd00::2"}, {Type: v1.NodeHostName, Address: "a"}}
	updated.Status.Conditions[1].Status = v1.ConditionTrue
	patch, err := nodeStatusPatch(old, updated)
	if err != nil {
		t.Fatal(err)
	}
	// The API server holds old plus a condition someone else added meanwhile.
	server := old.DeepCopy()
	server.Status.Conditions = append(server.Status.Conditions, v1.NodeCondition{Type: "FrequentKubeletRestart", Status: v1.ConditionFalse})
	serverJSON, _ := json.Marshal(server)
	merged, err := strategicpatch.StrategicMergePatch(serverJSON, patch, v1.Node{})
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	var got v1.Node
	if err := json.Unmarshal(merged, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Status.Addresses, updated.Status.Addresses) {
		t.Errorf("addresses = %v, want %v (patch %s)", got.Status.Addresses, updated.Status.Addresses, patch)
	}
	if len(got.Status.Conditions) != 3 || nodeCondition(&got, v1.NodeReady).Status != v1.ConditionTrue {
		t.Errorf("conditions = %v, want all three kept and Ready True (patch %s)", got.Status.Conditions, patch)
	}
}

func TestNodeTurnsReadyAsSoonAsItIsAtStartup(t *testing.T) {
	var mu sync.Mutex
	relist := errors.New("the runtime has not been listed yet")
	h := newNodeHarness(t, func(c *nodeAgentConfig) {
		c.RelistHealthy = func() error { mu.Lock(); defer mu.Unlock(); return relist }
	})
	h.register()
	checkCondition(t, h.node(), v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", "PLEG is not healthy: the runtime has not been listed yet")
	h.run()
	h.events()

	// Not ready yet: readiness is checked locally, the API server is asked once per update period.
	gets := h.count("get", "nodes", "")
	for range 100 {
		h.step(100 * time.Millisecond)
	}
	if got := h.count("get", "nodes", "") - gets; got != 1 {
		t.Errorf("node gets in 10s while not ready = %d, want 1", got)
	}
	if got := h.count("patch", "nodes", "status"); got != 0 {
		t.Errorf("status patches = %d while nothing changed, want 0", got)
	}

	mu.Lock()
	relist = nil
	mu.Unlock()
	h.step(100 * time.Millisecond)
	if got := h.count("patch", "nodes", "status"); got != 1 {
		t.Fatalf("status patches = %d within 100ms of the node being ready, want 1", got)
	}
	checkCondition(t, h.node(), v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	if got, want := h.events(), []string{"Normal NodeReady Node node-1 status is now: NodeReady"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}

	// Once reported Ready, back to the update period.
	gets = h.count("get", "nodes", "")
	for range 50 {
		h.step(100 * time.Millisecond)
	}
	if got := h.count("get", "nodes", "") - gets; got != 0 {
		t.Errorf("node gets = %d in the 5s after turning ready, want 0", got)
	}
}
