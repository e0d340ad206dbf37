package agent

// The node side of cluster mode: the Node object (this file), its status (node_status.go) and its
// Lease (lease.go).
//
// Register creates the Node, or reconciles the one of the same name that is already there, before
// anything else talks to the API server about this node. Run then keeps two loops going, each
// with its own back-off, so that a slow or failing one never starves the other:
//
//	lease loop   every NodeLeaseDurationSeconds/4 (10 s): renew kube-node-lease/<node> — the heartbeat
//	status loop  every NodeStatusUpdateFrequency (10 s): read the Node, compute its status, PATCH
//	             the status subresource when something changed or NodeStatusReportFrequency (5 m)
//	             passed since the last write; a Node deleted under us is registered again. Until
//	             the node is first reported Ready, readiness is also checked locally every 100 ms
//	             so that the Node turns Ready as soon as it is.
//
// While the API server cannot be reached, each loop retries with a back-off capped at its period
// (so it converges within one period of the API server coming back) and logs once when it starts
// failing and once when it recovers, never once per attempt.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// Well-known names the node side writes.
const (
	// nodeLabelBetaOS and nodeLabelBetaArch are the pre-1.14 OS and architecture labels. They are
	// deprecated but the kubelet still sets them, and so does Berth: selectors written against them
	// keep working.
	nodeLabelBetaOS   = "beta.kubernetes.io/os"
	nodeLabelBetaArch = "beta.kubernetes.io/arch"

	// Event reasons on the Node, named as the kubelet's.
	nodeEventStarting       = "Starting"
	nodeEventRegisteredNode = "RegisteredNode"
	nodeEventNodeReady      = "NodeReady"
	nodeEventNodeNotReady   = "NodeNotReady"

	// nodeRegisterBackoffInitial/Max bound the wait between registration attempts.
	nodeRegisterBackoffInitial = 100 * time.Millisecond
	nodeRegisterBackoffMax     = 7 * time.Second
)

// nodeAgentConfig is what the node side runs with; the agent wiring fills it.
type nodeAgentConfig struct {
	Cluster  *ClusterConfig
	NodeName string
	NodeIPs  []string
	// Hostname is reported as the node's Hostname address ("" means NodeName).
	Hostname string
	// Runtime gives containerRuntimeVersion (Version) and the RuntimeReady/NetworkReady conditions
	// (Status) that feed the Ready condition.
	Runtime Runtime
	// RelistHealthy returns nil while the pod lifecycle relist is healthy, and why not otherwise;
	// the Ready condition then says "PLEG is not healthy: <why>". nil: always healthy.
	RelistHealthy func() error
	MaxPods       int
	// Machine is the node's capacity and identity, from readMachineInfo.
	Machine  machineInfo
	Clock    clock.WithTicker
	Logger   *slog.Logger
	Recorder record.EventRecorder // nil: no events
	// Pressure are the node pressure conditions in force (the eviction manager); nil: none.
	Pressure func() []v1.NodeConditionType
}

// machineInfo is what the node reports about the machine itself.
type machineInfo struct {
	CPUs                  int64 // cores
	MemoryBytes           int64
	EphemeralStorageBytes int64 // size of the filesystem holding the root dir
	MachineID             string
	SystemUUID            string
	BootID                string
	KernelVersion         string
	OSImage               string
	OperatingSystem       string
	Architecture          string
}

// readMachineInfo reads the machine's capacity and identity from the running system. Only the
// capacity is required; identity files that cannot be read (product_uuid is root-only, containers
// often lack machine-id) are left empty.
func readMachineInfo(rootDir string) (machineInfo, error) {
	m := machineInfo{OperatingSystem: goruntime.GOOS, Architecture: goruntime.GOARCH}
	m.CPUs = nodeCountCPUs("/proc/cpuinfo")
	mem, err := nodeMemTotal("/proc/meminfo")
	if err != nil {
		return m, err
	}
	m.MemoryBytes = mem
	var st syscall.Statfs_t
	if err := syscall.Statfs(rootDir, &st); err != nil {
		return m, fmt.Errorf("size of the filesystem of root dir %s: %w", rootDir, err)
	}
	m.EphemeralStorageBytes = int64(st.Blocks) * int64(st.Bsize)
	m.MachineID = nodeReadFirst("/etc/machine-id", "/var/lib/dbus/machine-id")
	m.SystemUUID = nodeReadFirst("/sys/class/dmi/id/product_uuid")
	m.BootID = nodeReadFirst("/proc/sys/kernel/random/boot_id")
	m.KernelVersion = nodeReadFirst("/proc/sys/kernel/osrelease") // what uname -r says
	m.OSImage = nodeOSImage("/etc/os-release")
	return m, nil
}

// nodeCountCPUs counts the logical CPUs in /proc/cpuinfo, or falls back to runtime.NumCPU.
func nodeCountCPUs(path string) int64 {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		var n int64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, _, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "processor" {
				n++
			}
		}
		if n > 0 {
			return n
		}
	}
	return int64(goruntime.NumCPU())
}

func nodeMemTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("memory capacity: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("memory capacity: %s: MemTotal %q: %w", path, fields[1], err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("memory capacity: %s has no MemTotal", path)
}

// nodeReadFirst returns the trimmed content of the first of paths that can be read, or "".
func nodeReadFirst(paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				return s
			}
		}
	}
	return ""
}

// nodeOSImage is PRETTY_NAME of os-release, or "Linux" without one (as cAdvisor reports).
func nodeOSImage(path string) string {
	b, err := os.ReadFile(path)
	if err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				} else {
					v = strings.Trim(v, `'"`)
				}
				if v != "" {
					return v
				}
			}
		}
	}
	return "Linux"
}

// nodeAgent registers this node and keeps its Lease and status fresh.
type nodeAgent struct {
	cfg      nodeAgentConfig
	client   kubeclient.Interface
	log      *slog.Logger
	hostname string
	labels   map[string]string // the labels Berth owns on the Node: well-known ones and --node-labels

	// Derived from the config once.
	leaseDuration     time.Duration
	renewInterval     time.Duration
	updateFrequency   time.Duration
	reportFrequency   time.Duration
	memoryEviction    nodeThreshold // memory.available
	nodefsEviction    nodeThreshold // nodefs.available
	startingEventOnce sync.Once

	// wake asks the status loop for an immediate update (SetNotReady).
	wake chan struct{}

	mu             sync.Mutex
	node           *v1.Node // last seen or written; never modified once stored
	notReady       string   // SetNotReady's message, "" when not forced
	runtimeVersion string   // last container runtime version read
	lastReport     time.Time
	reportedReady  bool // a status write said Ready since this Berth started

	lease *coordinationv1.Lease // last lease written; the lease loop's alone
}

// newNodeAgent checks cfg and prepares the node side; nothing talks to the API server until
// Register.
func newNodeAgent(cfg nodeAgentConfig) (*nodeAgent, error) {
	c := cfg.Cluster
	if c == nil || c.Client == nil {
		return nil, errors.New("node: no API server client (cluster mode needs ClusterConfig.Client)")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("node: node name is empty")
	}
	if errs := validation.IsDNS1123Subdomain(cfg.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("node name %q: %s (node names are lowercased host names)", cfg.NodeName, strings.Join(errs, "; "))
	}
	if cfg.Runtime == nil {
		return nil, errors.New("node: no container runtime")
	}
	if cfg.Machine.CPUs <= 0 || cfg.Machine.MemoryBytes <= 0 {
		return nil, fmt.Errorf("node: machine capacity unknown (cpu %d, memory %d bytes)", cfg.Machine.CPUs, cfg.Machine.MemoryBytes)
	}
	for _, ip := range cfg.NodeIPs {
		if errs := validation.IsValidIP(nil, ip); len(errs) > 0 {
			return nil, fmt.Errorf("node IP %q: %s", ip, errs.ToAggregate())
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPods <= 0 {
		cfg.MaxPods = 110
	}
	n := &nodeAgent{
		cfg:             cfg,
		client:          c.Client,
		log:             cfg.Logger.With("component", "node", "node", cfg.NodeName),
		hostname:        strings.ToLower(cfg.Hostname),
		updateFrequency: c.NodeStatusUpdateFrequency,
		reportFrequency: c.NodeStatusReportFrequency,
		wake:            make(chan struct{}, 1),
	}
	if n.hostname == "" {
		n.hostname = cfg.NodeName
	}
	if n.updateFrequency <= 0 {
		n.updateFrequency = 10 * time.Second
	}
	if n.reportFrequency <= 0 {
		n.reportFrequency = 5 * time.Minute
	}
	leaseSeconds := c.NodeLeaseDurationSeconds
	if leaseSeconds <= 0 {
		leaseSeconds = 40
	}
	n.leaseDuration = time.Duration(leaseSeconds) * time.Second
	n.renewInterval = n.leaseDuration / 4

	if err := validateNodeLabels(c.NodeLabels); err != nil {
		return nil, err
	}
	for i, t := range c.RegisterWithTaints {
		if err := validateRegisterTaint(t); err != nil {
			return nil, fmt.Errorf("registerWithTaints[%d]: %w", i, err)
		}
	}
	var err error
	if n.memoryEviction, n.nodefsEviction, err = parseEvictionHard(c.EvictionHard); err != nil {
		return nil, err
	}
	for name, list := range map[string]v1.ResourceList{"kubeReserved": c.KubeReserved, "systemReserved": c.SystemReserved} {
		for r, q := range list {
			if q.Sign() < 0 {
				return nil, fmt.Errorf("%s: %s: negative quantity %s", name, r, q.String())
			}
		}
	}

	n.labels = map[string]string{
		v1.LabelHostname:   n.cfg.NodeName,
		v1.LabelOSStable:   goruntime.GOOS,
		v1.LabelArchStable: goruntime.GOARCH,
		nodeLabelBetaOS:    goruntime.GOOS,
		nodeLabelBetaArch:  goruntime.GOARCH,
	}
	if cfg.Machine.OperatingSystem != "" {
		n.labels[v1.LabelOSStable], n.labels[nodeLabelBetaOS] = cfg.Machine.OperatingSystem, cfg.Machine.OperatingSystem
	}
	if cfg.Machine.Architecture != "" {
		n.labels[v1.LabelArchStable], n.labels[nodeLabelBetaArch] = cfg.Machine.Architecture, cfg.Machine.Architecture
	}
	for k, v := range c.NodeLabels { // --node-labels win over the defaults, as with the kubelet
		n.labels[k] = v
	}
	return n, nil
}

// nodeRestrictionLabels are the kubernetes.io and k8s.io labels NodeRestriction lets a node set on
// itself; nodeRestrictionDomains are the label domains (and their subdomains) it may set freely.
var (
	nodeRestrictionLabels = []string{
		v1.LabelHostname, v1.LabelOSStable, v1.LabelArchStable, nodeLabelBetaOS, nodeLabelBetaArch,
		v1.LabelInstanceType, v1.LabelInstanceTypeStable,
		v1.LabelTopologyRegion, v1.LabelTopologyZone,
		v1.LabelFailureDomainBetaRegion, v1.LabelFailureDomainBetaZone,
	}
	nodeRestrictionDomains = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}
)

// validateNodeLabels checks --node-labels: valid keys and values, and, in the kubernetes.io and
// k8s.io domains, only the labels NodeRestriction lets a node set on itself — the API server would
// refuse the Node otherwise, so say which label, and why, before trying.
func validateNodeLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("--node-labels: label %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			return fmt.Errorf("--node-labels: label %q: value %q: %s", k, labels[k], strings.Join(errs, "; "))
		}
		domain, _, ok := strings.Cut(k, "/")
		if !ok || !nodeIsKubernetesDomain(domain) || slices.Contains(nodeRestrictionLabels, k) {
			continue
		}
		if nodeInDomain(domain, v1.LabelNamespaceNodeRestriction) {
			return fmt.Errorf("--node-labels: label %q: the %s domain is reserved for labels set by administrators, a node may not set it on itself (NodeRestriction)", k, v1.LabelNamespaceNodeRestriction)
		}
		if slices.ContainsFunc(nodeRestrictionDomains, func(d string) bool { return nodeInDomain(domain, d) }) {
			continue
		}
		return fmt.Errorf("--node-labels: label %q is not allowed: in the kubernetes.io and k8s.io domains a node may only set on itself (NodeRestriction) labels under %s or one of %s",
			k, strings.Join(nodeRestrictionDomains, ", "), strings.Join(nodeRestrictionLabels, ", "))
	}
	return nil
}

func nodeIsKubernetesDomain(domain string) bool {
	return nodeInDomain(domain, "kubernetes.io") || nodeInDomain(domain, "k8s.io")
}

// nodeInDomain reports whether domain is d or a subdomain of it.
func nodeInDomain(domain, d string) bool {
	return domain == d || strings.HasSuffix(domain, "."+d)
}

func validateRegisterTaint(t v1.Taint) error {
	if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
		return fmt.Errorf("taint key %q: %s", t.Key, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
		return fmt.Errorf("taint %q: value %q: %s", t.Key, t.Value, strings.Join(errs, "; "))
	}
	switch t.Effect {
	case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
		return nil
	}
	return fmt.Errorf("taint %q: effect %q: must be NoSchedule, PreferNoSchedule or NoExecute", t.Key, t.Effect)
}

// Node returns the last Node seen or written (labels, taints, allocatable for admission); nil
// before Register. The object is shared: callers must not modify it.
func (n *nodeAgent) Node() *v1.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.node
}

func (n *nodeAgent) setNode(node *v1.Node) {
	n.mu.Lock()
	n.node = node
	n.mu.Unlock()
}

// nodeRef is what node events are about. Before the Node's UID is known the node name stands in
// for it, as with the kubelet (kubectl describe node finds both).
func (n *nodeAgent) nodeRef() *v1.ObjectReference {
	uid := types.UID(n.cfg.NodeName)
	if node := n.Node(); node != nil && node.UID != "" {
		uid = node.UID
	}
	return &v1.ObjectReference{Kind: "Node", Name: n.cfg.NodeName, UID: uid}
}

func (n *nodeAgent) event(reason, format string, args ...any) {
	if n.cfg.Recorder != nil {
		n.cfg.Recorder.Eventf(n.nodeRef(), v1.EventTypeNormal, reason, format, args...)
	}
}

// Register creates the Node, or reconciles the one already there (the labels Berth owns,
// addresses, capacity and the rest of the status), retrying with back-off until it succeeds or
// ctx ends.
func (n *nodeAgent) Register(ctx context.Context) error {
	n.startingEventOnce.Do(func() { n.event(nodeEventStarting, "Starting berth.") })
	health := nodeAPIHealth{log: n.log, what: "node registration"}
	delay := nodeRegisterBackoffInitial
	for {
		node, created, err := n.registerOnce(ctx)
		if err == nil {
			health.ok()
			n.setNode(node)
			if created {
				n.log.Info("node registered", "uid", string(node.UID))
				n.event(nodeEventRegisteredNode, "Node %s event: Registered Node %s", n.cfg.NodeName, n.cfg.NodeName)
			} else {
				n.log.Info("node already registered; reconciled", "uid", string(node.UID))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		health.failed(err, delay)
		if !nodeSleep(ctx, n.cfg.Clock, delay, nil) {
			return ctx.Err()
		}
		delay = min(2*delay, nodeRegisterBackoffMax)
	}
}

// Run keeps the Lease and the node status fresh until ctx ends, registering the Node first if
// Register was not called.
func (n *nodeAgent) Run(ctx context.Context) {
	if n.Node() == nil {
		if err := n.Register(ctx); err != nil {
			return
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.runLease(ctx) }()
	go func() { defer wg.Done(); n.runStatus(ctx) }()
	wg.Wait()
}

// registerOnce makes one attempt: create the Node, or bring the existing one in line.
func (n *nodeAgent) registerOnce(ctx context.Context) (*v1.Node, bool, error) {
	nodes := n.client.CoreV1().Nodes()
	existing, err := nodes.Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node := n.computeStatus(ctx, n.initialNode())
		created, cerr := nodes.Create(ctx, node, metav1.CreateOptions{})
		if cerr == nil {
			n.noteReport(created)
			n.readyEvent(nil, created)
			return created, true, nil
		}
		if !apierrors.IsAlreadyExists(cerr) {
			return nil, false, fmt.Errorf("create node %s: %w", n.cfg.NodeName, cerr)
		}
		// Created since the Get (by a previous Berth whose request timed out): reconcile it.
		existing, err = nodes.Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, false, fmt.Errorf("get node %s: %w", n.cfg.NodeName, err)
	}
	node := existing
	if patch := n.labelsPatch(existing); patch != nil {
		node, err = nodes.Patch(ctx, n.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return nil, false, fmt.Errorf("set labels of node %s: %w", n.cfg.NodeName, err)
		}
	}
	if node, err = n.writeStatus(ctx, node, true); err != nil {
		return nil, false, err
	}
	return node, false, nil
}

// initialNode is the Node Berth creates: its labels, taints and (filled by setStatus) status.
func (n *nodeAgent) initialNode() *v1.Node {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.cfg.NodeName, Labels: make(map[string]string, len(n.labels))},
	}
	for k, v := range n.labels {
		node.Labels[k] = v
	}
	for _, t := range n.cfg.Cluster.RegisterWithTaints {
		node.Spec.Taints = append(node.Spec.Taints, *t.DeepCopy())
	}
	return node
}

// labelsPatch is the strategic merge patch that sets the labels Berth owns on an existing Node,
// leaving every other label alone; nil when they are already right. Taints are only set on
// creation (registerWithTaints), as with the kubelet: an administrator may have removed them since.
func (n *nodeAgent) labelsPatch(node *v1.Node) []byte {
	changed := map[string]string{}
	for k, v := range n.labels {
		if cur, ok := node.Labels[k]; !ok || cur != v {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return nil
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": changed}})
	if err != nil {
		panic(err) // strings only
	}
	return b
}

// nodeAPIHealth logs the state changes of one loop's calls to the API server: once when they start
// failing, once when they work again — never once per attempt.
type nodeAPIHealth struct {
	log     *slog.Logger
	what    string
	failing bool
	tries   int
}

func (h *nodeAPIHealth) failed(err error, retry time.Duration) {
	h.tries++
	if h.failing {
		return
	}
	h.failing = true
	h.log.Warn(h.what+" failed; retrying with back-off (logged again when it recovers)", "err", err, "retryIn", retry)
}

func (h *nodeAPIHealth) ok() {
	if h.failing {
		h.log.Info(h.what+" recovered", "failedAttempts", h.tries)
	}
	h.failing, h.tries = false, 0
}

// nodeSleep waits d on c, or until wake fires or ctx ends; it reports false when ctx ended.
func nodeSleep(ctx context.Context, c clock.WithTicker, d time.Duration, wake <-chan struct{}) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
	case <-wake:
	}
	return true
}

// nodeCPUQuantity and friends build the quantities in the kubelet's formats (cpu in DecimalSI,
// bytes in BinarySI).
func nodeCPUQuantity(cores int64) resource.Quantity {
	return *resource.NewMilliQuantity(cores*1000, resource.DecimalSI)
}

func nodeBytesQuantity(b int64) resource.Quantity { return *resource.NewQuantity(b, resource.BinarySI) }

// MachineCapacity is what the machine has, read as the Node's capacity is: cpu (logical CPUs),
// memory (MemTotal), ephemeral-storage (the filesystem of rootDir) and pid (kernel.pid_max). The
// kubepods cgroup's limits are computed from it with the same kubeReserved and systemReserved as
// the Node's allocatable, so the two agree (docs/cgroups.md).
func MachineCapacity(rootDir string) (v1.ResourceList, error) {
	m, err := readMachineInfo(rootDir)
	if err != nil {
		return nil, err
	}
	c := v1.ResourceList{
		v1.ResourceCPU:    nodeCPUQuantity(m.CPUs),
		v1.ResourceMemory: nodeBytesQuantity(m.MemoryBytes),
	}
	if m.EphemeralStorageBytes > 0 {
		c[v1.ResourceEphemeralStorage] = nodeBytesQuantity(m.EphemeralStorageBytes)
	}
	if s := nodeReadFirst("/proc/sys/kernel/pid_max"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			c["pid"] = *resource.NewQuantity(n, resource.DecimalSI)
		}
	}
	return c, nil
}
