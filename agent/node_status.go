package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/berth-dev/berth/eviction"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Condition reasons and messages, as the kubelet reports them.
const (
	nodeReasonReady        = "KubeletReady"
	nodeReasonNotReady     = "KubeletNotReady"
	nodeMessageReady       = "kubelet is posting ready status"
	nodeMessageRuntimeDown = "container runtime is down"
	nodeReasonMemory       = "KubeletHasSufficientMemory"
	nodeMessageMemory      = "kubelet has sufficient memory available"
	nodeReasonDisk         = "KubeletHasNoDiskPressure"
	nodeMessageDisk        = "kubelet has no disk pressure"
	nodeReasonPID          = "KubeletHasSufficientPID"
	nodeMessagePID         = "kubelet has sufficient PID available"
	// Under pressure.
	nodeReasonMemoryPressure  = "KubeletHasInsufficientMemory"
	nodeMessageMemoryPressure = "kubelet has insufficient memory available"
	nodeReasonDiskPressure    = "KubeletHasDiskPressure"
	nodeMessageDiskPressure   = "kubelet has disk pressure"
	nodeReasonPIDPressure     = "KubeletHasInsufficientPID"
	nodeMessagePIDPressure    = "kubelet has insufficient PID available"
	nodeRuntimeCallTimeout    = 5 * time.Second

	// Until the node is first reported Ready, its readiness is checked this often (for at most
	// nodeFastStatusWindow after Run starts), so that it turns Ready as soon as it is.
	nodeFastStatusInterval = 100 * time.Millisecond
	nodeFastStatusWindow   = 2 * time.Minute

	// nodeStatusRetryInitial is the first wait after a failed status update; it doubles up to the
	// update frequency.
	nodeStatusRetryInitial = 200 * time.Millisecond
)

// nodeThreshold is a hard eviction threshold (the zero value: none).
type nodeThreshold = eviction.Threshold

// parseEvictionHard reads the thresholds that allocatable subtracts: memory.available (from
// memory) and nodefs.available (from ephemeral-storage), with the eviction manager's parser. A nil
// map means the kubelet's defaults; a given map is taken as it is, so a signal it leaves out has
// no threshold.
func parseEvictionHard(m map[string]string) (memory, nodefs nodeThreshold, err error) {
	ts, err := eviction.ParseThresholds(m)
	if err != nil {
		return memory, nodefs, err
	}
	for _, t := range ts {
		switch t.Signal {
		case eviction.SignalMemoryAvailable:
			memory = t
		case eviction.SignalNodeFsAvailable:
			nodefs = t
		}
	}
	return memory, nodefs, nil
}

// capacity is what the machine has: cpu, memory, pods and ephemeral-storage.
func (n *nodeAgent) capacity() v1.ResourceList {
	m := n.cfg.Machine
	c := v1.ResourceList{
		v1.ResourceCPU:    nodeCPUQuantity(m.CPUs),
		v1.ResourceMemory: nodeBytesQuantity(m.MemoryBytes),
		v1.ResourcePods:   *resource.NewQuantity(int64(n.cfg.MaxPods), resource.DecimalSI),
	}
	if m.EphemeralStorageBytes > 0 {
		c[v1.ResourceEphemeralStorage] = nodeBytesQuantity(m.EphemeralStorageBytes)
	}
	return c
}

// allocatable is capacity minus kubeReserved, systemReserved and the hard eviction threshold of the
// resource (memory.available for memory, nodefs.available for ephemeral-storage), never below zero.
func (n *nodeAgent) allocatable(capacity v1.ResourceList) v1.ResourceList {
	a := v1.ResourceList{}
	for name, c := range capacity {
		v := c.DeepCopy()
		for _, reserved := range []v1.ResourceList{n.cfg.Cluster.KubeReserved, n.cfg.Cluster.SystemReserved} {
			if r, ok := reserved[name]; ok {
				v.Sub(r)
			}
		}
		switch name {
		case v1.ResourceMemory:
			v.Sub(n.memoryEviction.Value(c))
		case v1.ResourceEphemeralStorage:
			v.Sub(n.nodefsEviction.Value(c))
		}
		if v.Sign() < 0 {
			v = *resource.NewQuantity(0, c.Format)
		}
		a[name] = v
	}
	return a
}

// addresses are the node IPs as InternalIP, then the Hostname.
func (n *nodeAgent) addresses() []v1.NodeAddress {
	var a []v1.NodeAddress
	for _, ip := range n.cfg.NodeIPs {
		a = append(a, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
	}
	return append(a, v1.NodeAddress{Type: v1.NodeHostName, Address: n.hostname})
}

// runtimeVersionString is containerRuntimeVersion, "<name>://<version>"; when the runtime cannot be
// asked, the last version read.
func (n *nodeAgent) runtimeVersionString(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, nodeRuntimeCallTimeout)
	v, err := n.cfg.Runtime.Version(ctx)
	cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil && v != nil {
		n.runtimeVersion = v.RuntimeName + "://" + v.RuntimeVersion
	}
	return n.runtimeVersion
}

// readiness says whether the node is Ready and, when not, why — the kubelet's message: each
// problem, one of them as it is or several as "[a, b]".
func (n *nodeAgent) readiness(ctx context.Context) (bool, string) {
	var errs []error
	n.mu.Lock()
	if n.notReady != "" {
		errs = append(errs, errors.New(n.notReady))
	}
	n.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, nodeRuntimeCallTimeout)
	st, err := n.cfg.Runtime.Status(sctx)
	cancel()
	if err != nil || st == nil {
		errs = append(errs, errors.New(nodeMessageRuntimeDown))
	}
	if n.cfg.RelistHealthy != nil {
		if err := n.cfg.RelistHealthy(); err != nil {
			errs = append(errs, fmt.Errorf("PLEG is not healthy: %v", err))
		}
	}
	if err == nil && st != nil {
		if c := nodeRuntimeCondition(st, runtimeapi.RuntimeReady); c == nil || !c.Status {
			errs = append(errs, fmt.Errorf("container runtime not ready: %s", nodeConditionText(runtimeapi.RuntimeReady, c)))
		}
		if c := nodeRuntimeCondition(st, runtimeapi.NetworkReady); c == nil || !c.Status {
			errs = append(errs, fmt.Errorf("container runtime network not ready: %s", nodeConditionText(runtimeapi.NetworkReady, c)))
		}
	}
	if len(errs) == 0 {
		return true, nodeMessageReady
	}
	return false, utilerrors.NewAggregate(errs).Error()
}

func nodeRuntimeCondition(st *runtimeapi.RuntimeStatus, t string) *runtimeapi.RuntimeCondition {
	for _, c := range st.GetConditions() {
		if c.GetType() == t {
			return c
		}
	}
	return nil
}

func nodeConditionText(t string, c *runtimeapi.RuntimeCondition) string {
	if c == nil {
		return t + "=false reason:Unknown message:the runtime does not report " + t
	}
	return fmt.Sprintf("%s=false reason:%s message:%s", t, c.GetReason(), c.GetMessage())
}

// computeStatus returns a copy of base with the status Berth owns set as of now: addresses,
// capacity, allocatable, nodeInfo, daemon endpoint and the MemoryPressure, DiskPressure,
// PIDPressure and Ready conditions. Conditions others own (NetworkUnavailable, node problem
// detector's) are left alone. Every owned condition gets lastHeartbeatTime now; lastTransitionTime
// moves only when its status flips.
func (n *nodeAgent) computeStatus(ctx context.Context, base *v1.Node) *v1.Node {
	now := metav1.NewTime(n.cfg.Clock.Now())
	node := base.DeepCopy()
	s := &node.Status
	s.Addresses = n.addresses()
	s.Capacity = n.capacity()
	s.Allocatable = n.allocatable(s.Capacity)
	s.DaemonEndpoints.KubeletEndpoint.Port = n.cfg.Cluster.Port

	m := n.cfg.Machine
	info := &s.NodeInfo
	info.MachineID, info.SystemUUID, info.BootID = m.MachineID, m.SystemUUID, m.BootID
	info.KernelVersion, info.OSImage = m.KernelVersion, m.OSImage
	info.OperatingSystem, info.Architecture = n.labels[v1.LabelOSStable], n.labels[v1.LabelArchStable]
	if m.OperatingSystem != "" {
		info.OperatingSystem = m.OperatingSystem
	}
	if m.Architecture != "" {
		info.Architecture = m.Architecture
	}
	info.ContainerRuntimeVersion = n.runtimeVersionString(ctx)
	info.KubeletVersion = n.cfg.Cluster.Version
	info.KubeProxyVersion = "" // deprecated: a node agent does not know kube-proxy's version

	ready, message := n.readiness(ctx)
	readyCond := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: nodeReasonReady, Message: message}
	if !ready {
		readyCond.Status, readyCond.Reason = v1.ConditionFalse, nodeReasonNotReady
	}
	// Pressure is the eviction manager's to compute.
	var pressure []v1.NodeConditionType
	if n.cfg.Pressure != nil {
		pressure = n.cfg.Pressure()
	}
	for _, c := range append(nodePressureConditions(pressure), readyCond) {
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		i := nodeConditionIndex(s.Conditions, c.Type)
		if i < 0 {
			s.Conditions = append(s.Conditions, c)
			continue
		}
		if s.Conditions[i].Status == c.Status {
			c.LastTransitionTime = s.Conditions[i].LastTransitionTime
		}
		s.Conditions[i] = c
	}
	return node
}

// nodePressureConditions are the MemoryPressure, DiskPressure and PIDPressure conditions, True
// for those under pressure, with the kubelet's reasons and messages.
func nodePressureConditions(pressure []v1.NodeConditionType) []v1.NodeCondition {
	out := []v1.NodeCondition{
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: nodeReasonMemory, Message: nodeMessageMemory},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: nodeReasonDisk, Message: nodeMessageDisk},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: nodeReasonPID, Message: nodeMessagePID},
	}
	under := map[v1.NodeConditionType][2]string{
		v1.NodeMemoryPressure: {nodeReasonMemoryPressure, nodeMessageMemoryPressure},
		v1.NodeDiskPressure:   {nodeReasonDiskPressure, nodeMessageDiskPressure},
		v1.NodePIDPressure:    {nodeReasonPIDPressure, nodeMessagePIDPressure},
	}
	for i := range out {
		if slices.Contains(pressure, out[i].Type) {
			rm := under[out[i].Type]
			out[i].Status, out[i].Reason, out[i].Message = v1.ConditionTrue, rm[0], rm[1]
		}
	}
	return out
}

// nodePressureEvents are the kubelet's node events when a pressure condition flips: the reason for
// True, then for False.
var nodePressureEvents = map[v1.NodeConditionType][2]string{
	v1.NodeMemoryPressure: {"NodeHasInsufficientMemory", "NodeHasSufficientMemory"},
	v1.NodeDiskPressure:   {"NodeHasDiskPressure", "NodeHasNoDiskPressure"},
	v1.NodePIDPressure:    {"NodeHasInsufficientPID", "NodeHasSufficientPID"},
}

// pressureEvents records an event for each pressure condition whose status changed between old and
// written (none for a new Node).
func (n *nodeAgent) pressureEvents(old, written *v1.Node) {
	for t, reasons := range nodePressureEvents {
		c, prev := nodeCondition(written, t), nodeCondition(old, t)
		if c == nil || prev == nil || prev.Status == c.Status {
			continue
		}
		reason := reasons[1]
		if c.Status == v1.ConditionTrue {
			reason = reasons[0]
			n.log.Warn("node under pressure", "condition", string(t))
		} else {
			n.log.Info("node pressure cleared", "condition", string(t))
		}
		n.event(reason, "Node %s status is now: %s", n.cfg.NodeName, reason)
	}
}

// poke has the status written at once (a pressure condition changed).
func (n *nodeAgent) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func nodeConditionIndex(cs []v1.NodeCondition, t v1.NodeConditionType) int {
	for i := range cs {
		if cs[i].Type == t {
			return i
		}
	}
	return -1
}

func nodeCondition(node *v1.Node, t v1.NodeConditionType) *v1.NodeCondition {
	if node == nil {
		return nil
	}
	if i := nodeConditionIndex(node.Status.Conditions, t); i >= 0 {
		return &node.Status.Conditions[i]
	}
	return nil
}

// nodeStatusChanged reports whether the status Berth writes differs between two nodes, heartbeat
// times aside.
func nodeStatusChanged(old, updated *v1.Node) bool {
	a, b := old.Status, updated.Status
	if !apiequality.Semantic.DeepEqual(a.Addresses, b.Addresses) ||
		!apiequality.Semantic.DeepEqual(a.Capacity, b.Capacity) ||
		!apiequality.Semantic.DeepEqual(a.Allocatable, b.Allocatable) ||
		!apiequality.Semantic.DeepEqual(a.NodeInfo, b.NodeInfo) ||
		!apiequality.Semantic.DeepEqual(a.DaemonEndpoints, b.DaemonEndpoints) ||
		len(a.Conditions) != len(b.Conditions) {
		return true
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		x.LastHeartbeatTime, y.LastHeartbeatTime = metav1.Time{}, metav1.Time{}
		if !apiequality.Semantic.DeepEqual(x, y) {
			return true
		}
	}
	return false
}

// nodeStatusPatch is the strategic merge patch from old to updated, which differ in status only.
// Conditions merge by type, so conditions others own are untouched. Addresses are declared to merge
// by type too, which cannot express two InternalIPs or one that changed: when they differ, the
// patch replaces the whole list instead ($patch: replace).
func nodeStatusPatch(old, updated *v1.Node) ([]byte, error) {
	oldJSON, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	newJSON, err := json.Marshal(updated)
	if err != nil {
		return nil, err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Node{})
	if err != nil {
		return nil, fmt.Errorf("node status patch: %w", err)
	}
	if apiequality.Semantic.DeepEqual(old.Status.Addresses, updated.Status.Addresses) {
		return patch, nil
	}
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	status, _ := p["status"].(map[string]any)
	if status == nil {
		status = map[string]any{}
		p["status"] = status
	}
	addrs := make([]any, 0, len(updated.Status.Addresses)+1)
	for _, a := range updated.Status.Addresses {
		addrs = append(addrs, map[string]any{"type": string(a.Type), "address": a.Address})
	}
	status["addresses"] = append(addrs, map[string]any{"$patch": "replace"})
	delete(status, "$setElementOrder/addresses")
	return json.Marshal(p)
}

// writeStatus computes the status on base (the Node as last read) and patches the status
// subresource when it changed, when force is set, or when NodeStatusReportFrequency passed since
// the last write. It returns the Node as written (base when nothing was).
func (n *nodeAgent) writeStatus(ctx context.Context, base *v1.Node, force bool) (*v1.Node, error) {
	updated := n.computeStatus(ctx, base)
	if !force && !nodeStatusChanged(base, updated) {
		n.mu.Lock()
		due := n.cfg.Clock.Since(n.lastReport) >= n.reportFrequency
		n.mu.Unlock()
		if !due {
			return base, nil
		}
	}
	patch, err := nodeStatusPatch(base, updated)
	if err != nil {
		return nil, err
	}
	written, err := n.client.CoreV1().Nodes().Patch(ctx, n.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, fmt.Errorf("update status of node %s: %w", n.cfg.NodeName, err)
	}
	n.noteReport(written)
	n.readyEvent(base, written)
	n.pressureEvents(base, written)
	return written, nil
}

// noteReport notes a status write: when, and whether it said Ready.
func (n *nodeAgent) noteReport(written *v1.Node) {
	n.mu.Lock()
	n.lastReport = n.cfg.Clock.Now()
	if c := nodeCondition(written, v1.NodeReady); c != nil && c.Status == v1.ConditionTrue {
		n.reportedReady = true
	}
	n.mu.Unlock()
}

// readyEvent records NodeReady or NodeNotReady when the Ready condition's status changed between
// old (nil for a new Node) and written.
func (n *nodeAgent) readyEvent(old, written *v1.Node) {
	c := nodeCondition(written, v1.NodeReady)
	if c == nil {
		return
	}
	if prev := nodeCondition(old, v1.NodeReady); prev != nil && prev.Status == c.Status {
		return
	}
	reason := nodeEventNodeNotReady
	if c.Status == v1.ConditionTrue {
		reason = nodeEventNodeReady
		n.log.Info("node is ready")
	} else {
		n.log.Warn("node is not ready", "message", c.Message)
	}
	n.event(reason, "Node %s status is now: %s", n.cfg.NodeName, reason)
}

// syncStatus is one turn of the status loop: read the Node (from the API server's cache), keep it
// for Node(), write its status if needed; register it again when it was deleted.
func (n *nodeAgent) syncStatus(ctx context.Context) error {
	nodes := n.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.cfg.NodeName, metav1.GetOptions{ResourceVersion: "0"})
	if err == nil {
		n.setNode(node)
		node, err = n.writeStatus(ctx, node, false)
	}
	if apierrors.IsNotFound(err) {
		n.log.Warn("node was deleted from the API server; registering it again")
		return n.Register(ctx)
	}
	if err != nil {
		return err
	}
	n.setNode(node)
	return nil
}

// runStatus computes the node status every NodeStatusUpdateFrequency (or at once after
// SetNotReady) until ctx ends. After a failure it retries sooner, with a back-off that never
// exceeds the update frequency.
func (n *nodeAgent) runStatus(ctx context.Context) {
	health := nodeAPIHealth{log: n.log, what: "node status update"}
	delay, retry := n.updateFrequency, time.Duration(0)
	fastUntil := n.cfg.Clock.Now().Add(nodeFastStatusWindow)
	for n.waitStatusSync(ctx, delay, retry == 0 && n.cfg.Clock.Now().Before(fastUntil)) {
		err := n.syncStatus(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			retry = min(max(2*retry, nodeStatusRetryInitial), n.updateFrequency)
			health.failed(err, retry)
			delay = retry
			continue
		}
		health.ok()
		delay, retry = n.updateFrequency, 0
	}
}

// waitStatusSync waits delay before the next status sync, or less when woken (SetNotReady). With
// fast set, and until this Berth has reported the node Ready once, it also checks the node's
// readiness locally every nodeFastStatusInterval and syncs as soon as it is Ready: a starting node
// turns Ready in the API within a fraction of a second of being so, not up to a whole update
// period later (the kubelet does the same at startup). It reports false when ctx ended.
func (n *nodeAgent) waitStatusSync(ctx context.Context, delay time.Duration, fast bool) bool {
	due := n.cfg.Clock.Now().Add(delay)
	for {
		wait := due.Sub(n.cfg.Clock.Now())
		if wait <= 0 {
			return true
		}
		poll := fast && !n.wasReported()
		if poll {
			wait = min(wait, nodeFastStatusInterval)
		}
		t := n.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-n.wake:
			t.Stop()
			return true
		case <-t.C():
		}
		if poll {
			if ready, _ := n.readiness(ctx); ready {
				return true
			}
		}
	}
}

// wasReported reports whether this Berth has written the node Ready at least once.
func (n *nodeAgent) wasReported() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reportedReady
}

// SetNotReady forces the Ready condition to False (reason KubeletNotReady) with message among its
// reasons — "node is shutting down" during a graceful shutdown — and has the status written at
// once. An empty message lifts it.
func (n *nodeAgent) SetNotReady(message string) {
	n.mu.Lock()
	n.notReady = message
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}
