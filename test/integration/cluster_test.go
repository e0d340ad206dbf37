//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clusterNode is the node name the control plane's node identity is issued for.
const clusterNode = "berth-node"

// cluster is a Berth in cluster mode against the real kube-apiserver of test/env/controlplane.sh,
// with the node identity only (Node authorizer + NodeRestriction), and an admin client for the test.
type cluster struct {
	*env
	dir   string
	admin kubernetes.Interface
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := os.Getenv("BERTH_CONTROLPLANE_DIR")
	if dir == "" {
		t.Fatal("BERTH_CONTROLPLANE_DIR must be set: run the suite with `make integration`")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{env: newEnv(t), dir: dir, admin: admin}
	c.nodeName = clusterNode
	c.extraArgs = []string{"--kubeconfig", filepath.Join(dir, "node.kubeconfig")}
	c.serverDefaults()
	c.cleanAPI()
	// Cleanups run last-in first-out: stop Berth before cleaning the API, or it would recreate
	// the mirror pods of its static pods.
	t.Cleanup(func() { c.stop(); c.cleanAPI() })
	return c
}

// cleanAPI removes what earlier tests left: pods in the test namespace, and the Node.
func (c *cluster) cleanAPI() {
	ctx := context.Background()
	zero := int64(0)
	_ = c.admin.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	_ = c.admin.CoreV1().Nodes().Delete(ctx, clusterNode, metav1.DeleteOptions{})
	if _, err := c.admin.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		_, _ = c.admin.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	}
	waitFor(c.t, "test pods gone from the API", 20*time.Second, func() bool {
		l, err := c.admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
}

// apiPod is a busybox pod bound to the node.
func apiPod(name, policy string, cmd ...string) *v1.Pod {
	f := false
	grace := int64(2)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"test": "berth"}},
		Spec: v1.PodSpec{
			NodeName:                      clusterNode,
			RestartPolicy:                 v1.RestartPolicy(policy),
			AutomountServiceAccountToken:  &f,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name: "main", Image: "localhost/busybox:latest", ImagePullPolicy: v1.PullIfNotPresent, Command: cmd,
			}},
		},
	}
}

func webAPIPod(name string) *v1.Pod {
	p := apiPod(name, "Always", "sh", "-c", "mkdir -p /www && echo "+name+" > /www/index.html && exec httpd -f -p 80 -h /www")
	p.Spec.Containers[0].Ports = []v1.ContainerPort{{Name: "http", ContainerPort: 80}}
	p.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m"), v1.ResourceMemory: resource.MustParse("16Mi")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m"), v1.ResourceMemory: resource.MustParse("16Mi")},
	}
	// Ready means serving: the readiness probe checks the page over the pod network.
	p.Spec.Containers[0].ReadinessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
		PeriodSeconds: 1,
	}
	return p
}

func (c *cluster) create(p *v1.Pod) *v1.Pod {
	c.t.Helper()
	out, err := c.admin.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("create pod %s: %v", p.Name, err)
	}
	return out
}

func (c *cluster) get(name string) *v1.Pod {
	p, err := c.admin.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

// waitPod waits until the API's pod satisfies cond.
func (c *cluster) waitPod(name, what string, timeout time.Duration, cond func(*v1.Pod) bool) *v1.Pod {
	c.t.Helper()
	var p *v1.Pod
	waitFor(c.t, name+" "+what, timeout, func() bool {
		p = c.get(name)
		return p != nil && cond(p)
	})
	return p
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func (c *cluster) waitNodeReady(timeout time.Duration) *v1.Node {
	c.t.Helper()
	var n *v1.Node
	waitFor(c.t, "Node Ready", timeout, func() bool {
		var err error
		n, err = c.admin.CoreV1().Nodes().Get(context.Background(), clusterNode, metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
	return n
}

// TestClusterNodeRegistration: the Node is Ready within 5 s of Berth starting, with the kubelet's
// fields, and its Lease is renewed.
func TestClusterNodeRegistration(t *testing.T) {
	c := newCluster(t)
	start := time.Now()
	c.start("--node-labels", "example.com/pool=blue")
	n := c.waitNodeReady(5 * time.Second)
	t.Logf("Node Ready %s after start", time.Since(start).Round(time.Millisecond))

	for k, want := range map[string]string{
		"kubernetes.io/hostname": clusterNode, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "example.com/pool": "blue",
	} {
		if n.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], want)
		}
	}
	var internal, hostname bool
	for _, a := range n.Status.Addresses {
		internal = internal || a.Type == v1.NodeInternalIP && a.Address != ""
		hostname = hostname || a.Type == v1.NodeHostName && a.Address != ""
	}
	if !internal || !hostname {
		t.Errorf("addresses: %v", n.Status.Addresses)
	}
	for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourcePods, v1.ResourceEphemeralStorage} {
		capQ, alloc := n.Status.Capacity[r], n.Status.Allocatable[r]
		if capQ.IsZero() || alloc.IsZero() || alloc.Cmp(capQ) > 0 {
			t.Errorf("%s: capacity %s allocatable %s", r, capQ.String(), alloc.String())
		}
	}
	mem, memAlloc := n.Status.Capacity[v1.ResourceMemory], n.Status.Allocatable[v1.ResourceMemory]
	if diff := mem.Value() - memAlloc.Value(); diff != 100<<20 {
		t.Errorf("memory capacity - allocatable = %d, want the 100Mi eviction threshold", diff)
	}
	info := n.Status.NodeInfo
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || info.KubeletVersion == "" || info.BootID == "" ||
		info.KernelVersion == "" || info.OSImage == "" || info.Architecture != "amd64" || info.OperatingSystem != "linux" {
		t.Errorf("nodeInfo: %+v", info)
	}
	for _, typ := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		found := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == typ {
				found = cond.Status == v1.ConditionFalse
			}
		}
		if !found {
			t.Errorf("condition %s missing or not False: %v", typ, n.Status.Conditions)
		}
	}

	// The Lease: owned by the Node, renewed every 10 s.
	ctx := context.Background()
	lease, err := c.admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, clusterNode, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	if len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].Kind != "Node" || lease.OwnerReferences[0].UID != n.UID {
		t.Errorf("lease owner: %v", lease.OwnerReferences)
	}
	if lease.Spec.LeaseDurationSeconds == nil || *lease.Spec.LeaseDurationSeconds != 40 {
		t.Errorf("lease duration: %v", lease.Spec.LeaseDurationSeconds)
	}
	first := lease.Spec.RenewTime.Time
	waitFor(t, "a lease renewal", 13*time.Second, func() bool {
		l, err := c.admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, clusterNode, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.Time.After(first)
	})

	// A restarted Berth reconciles the same Node object.
	uid := n.UID
	c.stop()
	c.start()
	n = c.waitNodeReady(10 * time.Second)
	if n.UID != uid {
		t.Errorf("Node recreated by the restart: uid %s, was %s", n.UID, uid)
	}
}

// TestClusterPods: 20 pods created by the admin reach the right phase and status; the web servers
// answer on their pod IPs; deleting pods removes them.
func TestClusterPods(t *testing.T) {
	c := newCluster(t)
	c.start()
	c.waitNodeReady(10 * time.Second)
	var webs, oks, fails []string
	for i := range 20 {
		switch i % 4 {
		case 0, 1:
			p := c.create(webAPIPod(fmt.Sprintf("web-%02d", i)))
			webs = append(webs, p.Name)
		case 2:
			p := c.create(apiPod(fmt.Sprintf("ok-%02d", i), "Never", "sh", "-c", "exit 0"))
			oks = append(oks, p.Name)
		case 3:
			p := c.create(apiPod(fmt.Sprintf("fail-%02d", i), "Never", "sh", "-c", "echo bye; exit 1"))
			fails = append(fails, p.Name)
		}
	}
	for _, name := range webs {
		p := c.waitPod(name, "Running and Ready", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
		checkRunningStatus(t, p)
		body, err := httpGet(p.Status.PodIP, 80, "/")
		if err != nil || strings.TrimSpace(body) != name {
			t.Errorf("%s on %s: %q %v", name, p.Status.PodIP, body, err)
		}
	}
	for _, name := range oks {
		p := c.waitPod(name, "Succeeded", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
		term := p.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 0 || term.Reason != "Completed" || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("%s: %+v", name, p.Status.ContainerStatuses[0])
		}
	}
	for _, name := range fails {
		p := c.waitPod(name, "Failed", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		term := p.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 1 || term.Reason != "Error" {
			t.Errorf("%s: %+v", name, p.Status.ContainerStatuses[0])
		}
	}

	// Deleting terminates and removes them from the API.
	ctx := context.Background()
	for _, name := range append(webs[:3], oks[0], fails[0]) {
		if err := c.admin.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range append(webs[:3], oks[0], fails[0]) {
		waitFor(t, name+" gone from the API", 15*time.Second, func() bool { return c.get(name) == nil })
	}
	waitFor(t, "their sandboxes removed", 10*time.Second, func() bool { return len(c.sandboxes("")) == 15 })
}

func checkRunningStatus(t *testing.T, p *v1.Pod) {
	t.Helper()
	st := p.Status
	if st.PodIP == "" || len(st.PodIPs) == 0 || st.HostIP == "" || st.StartTime == nil || st.QOSClass != v1.PodQOSGuaranteed {
		t.Errorf("%s: podIP %q hostIP %q startTime %v qos %s", p.Name, st.PodIP, st.HostIP, st.StartTime, st.QOSClass)
	}
	want := map[v1.PodConditionType]bool{v1.PodScheduled: true, v1.PodReadyToStartContainers: true, v1.PodInitialized: true, v1.ContainersReady: true, v1.PodReady: true}
	for _, cond := range st.Conditions {
		if want[cond.Type] && cond.Status == v1.ConditionTrue {
			delete(want, cond.Type)
		}
	}
	if len(want) > 0 {
		t.Errorf("%s: conditions not True: %v (all: %v)", p.Name, want, st.Conditions)
	}
	cs := st.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Running == nil || !cs[0].Ready || cs[0].Started == nil || !*cs[0].Started ||
		!strings.HasPrefix(cs[0].ContainerID, "containerd://") || cs[0].ImageID == "" || cs[0].Image == "" {
		t.Errorf("%s: container status %+v", p.Name, cs)
	}
}

// TestClusterBerthDown: a pod created while Berth is down runs when it comes back; one deleted while
// it is down is cleaned up.
func TestClusterBerthDown(t *testing.T) {
	c := newCluster(t)
	c.start()
	c.waitNodeReady(10 * time.Second)
	keep := c.create(webAPIPod("keep"))
	c.create(webAPIPod("gone"))
	c.waitPod("keep", "Running", 20*time.Second, podReady)
	gonePod := c.waitPod("gone", "Running", 20*time.Second, podReady)
	keepID := c.get("keep").Status.ContainerStatuses[0].ContainerID

	c.stop()
	ctx := context.Background()
	zero := int64(0)
	if err := c.admin.CoreV1().Pods("default").Delete(ctx, "gone", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	c.create(webAPIPod("late"))
	c.start()
	c.waitPod("late", "Running", 20*time.Second, podReady)
	waitFor(t, "gone's sandbox removed", 15*time.Second, func() bool { return len(c.sandboxes(string(gonePod.UID))) == 0 })
	p := c.get("keep")
	if p.Status.ContainerStatuses[0].ContainerID != keepID || p.Status.ContainerStatuses[0].RestartCount != 0 || p.UID != keep.UID {
		t.Errorf("keep was disturbed by the restart: %+v", p.Status.ContainerStatuses[0])
	}
}

// TestClusterMirrorPods: a static pod has a mirror pod with the kubelet's annotations and an owner
// reference to the Node; deleting the mirror recreates it; editing the manifest replaces both.
func TestClusterMirrorPods(t *testing.T) {
	c := newCluster(t)
	c.writeManifest("static-web.yaml", webPod("static-web", "one"))
	c.start()
	node := c.waitNodeReady(10 * time.Second)
	name := "static-web-" + clusterNode
	mp := c.waitPod(name, "mirror Running", 20*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	l := c.pods()
	static := findPod(l, "static-web")
	if static == nil {
		t.Fatalf("static pod not in the local view: %+v", l)
	}
	for k, want := range map[string]string{"kubernetes.io/config.mirror": static.UID, "kubernetes.io/config.hash": static.UID, "kubernetes.io/config.source": "file"} {
		if mp.Annotations[k] != want {
			t.Errorf("mirror annotation %s = %q, want %q", k, mp.Annotations[k], want)
		}
	}
	if len(mp.OwnerReferences) != 1 || mp.OwnerReferences[0].Kind != "Node" || mp.OwnerReferences[0].UID != node.UID {
		t.Errorf("mirror owner: %v", mp.OwnerReferences)
	}

	// Deleted by someone: recreated, the static pod untouched.
	ctx := context.Background()
	if err := c.admin.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitPod(name, "mirror recreated", 15*time.Second, func(p *v1.Pod) bool { return p.UID != mp.UID && p.Status.Phase == v1.PodRunning })
	if after := findPod(c.pods(), "static-web"); after == nil || after.UID != static.UID || after.Restarts != 0 {
		t.Errorf("static pod disturbed by the mirror's deletion: %+v", after)
	}

	// Edited: the static pod and its mirror are replaced.
	c.writeManifest("static-web.yaml", webPod("static-web", "two"))
	newMirror := c.waitPod(name, "mirror replaced", 25*time.Second, func(p *v1.Pod) bool {
		return p.Annotations["kubernetes.io/config.mirror"] != static.UID && p.Status.Phase == v1.PodRunning
	})
	body, err := httpGet(newMirror.Status.PodIP, 80, "/")
	if err != nil || strings.TrimSpace(body) != "two" {
		t.Errorf("replaced static pod serves %q (%v)", body, err)
	}
}

// TestClusterAdmission: pods that do not fit go Failed with the kubelet's reason; the others run.
func TestClusterAdmission(t *testing.T) {
	c := newCluster(t)
	c.start()
	c.waitNodeReady(10 * time.Second)
	huge := webAPIPod("too-big")
	huge.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1000")}}
	c.create(huge)
	sel := webAPIPod("wrong-labels")
	sel.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	c.create(sel)
	port := webAPIPod("port-a")
	port.Spec.Containers[0].Ports[0].HostPort = 18081
	c.create(port)
	c.waitPod("port-a", "Running", 20*time.Second, podReady)
	port2 := webAPIPod("port-b")
	port2.Spec.Containers[0].Ports[0].HostPort = 18081
	c.create(port2)
	fine := c.create(webAPIPod("fine"))

	for name, reason := range map[string]string{"too-big": "OutOfcpu", "wrong-labels": "NodeAffinity", "port-b": "NodePorts"} {
		p := c.waitPod(name, "Failed", 15*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if p.Status.Reason != reason || p.Status.Message == "" {
			t.Errorf("%s: reason %q message %q, want %s", name, p.Status.Reason, p.Status.Message, reason)
		}
	}
	c.waitPod("fine", "Running", 20*time.Second, podReady)
	if p := c.get("port-a"); p.Status.ContainerStatuses[0].RestartCount != 0 || p.Status.Phase != v1.PodRunning {
		t.Errorf("port-a disturbed: %+v", p.Status)
	}
	_ = fine
}

// TestClusterAPIServerOutage: kube-apiserver stopped for 60 s and restarted: no pod restarts, the
// Node is Ready again and statuses are right within 15 s.
func TestClusterAPIServerOutage(t *testing.T) {
	c := newCluster(t)
	c.start()
	c.waitNodeReady(10 * time.Second)
	for i := range 3 {
		c.create(webAPIPod(fmt.Sprintf("steady-%d", i)))
	}
	for i := range 3 {
		c.waitPod(fmt.Sprintf("steady-%d", i), "Running", 20*time.Second, podReady)
	}
	before := runtimeIDs(c.env)

	controlplane(t, "stop-apiserver", c.dir)
	time.Sleep(60 * time.Second)
	controlplane(t, "start-apiserver", c.dir)
	back := time.Now()

	// Nothing marks the node NotReady during the outage here (no controller-manager), so "Ready
	// again" is shown by a fresh heartbeat: the Lease renewed after the API server came back.
	waitFor(t, "the Lease renewed after the outage", 15*time.Second, func() bool {
		l, err := c.admin.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), clusterNode, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.Time.After(back)
	})
	c.waitNodeReady(15 * time.Second)
	for i := range 3 {
		p := c.waitPod(fmt.Sprintf("steady-%d", i), "Running", 15*time.Second-time.Since(back), podReady)
		if p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("%s restarted during the outage", p.Name)
		}
	}
	t.Logf("converged %s after the API server came back", time.Since(back).Round(time.Millisecond))
	after := runtimeIDs(c.env)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("runtime objects changed during the outage:\n before %v\n after %v", before, after)
	}
	log, _ := os.ReadFile(c.logPath)
	if n := strings.Count(string(log), "API server calls are failing"); n > 3 {
		t.Errorf("the outage was logged %d times; want once per state change", n)
	}
}

func controlplane(t *testing.T, verb, dir string) {
	t.Helper()
	script := os.Getenv("BERTH_CONTROLPLANE_SCRIPT")
	if script == "" {
		t.Fatal("BERTH_CONTROLPLANE_SCRIPT must be set: run the suite with `make integration`")
	}
	if out, err := exec.Command(script, verb, dir).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, verb, err, out)
	}
}

// TestClusterEvents: the kubelet's events reach the API server: Pulled, Created and Started for a
// pod; Unhealthy and Killing when its liveness probe fails; Starting and RegisteredNode for the node.
func TestClusterEvents(t *testing.T) {
	c := newCluster(t)
	c.start()
	c.waitNodeReady(10 * time.Second)
	p := apiPod("sick", "Always", "sleep", "3600")
	p.Spec.Containers[0].LivenessProbe = &v1.Probe{
		ProbeHandler:        v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo not well; exit 1"}}},
		InitialDelaySeconds: 2, PeriodSeconds: 1, FailureThreshold: 2,
	}
	created := c.create(p)
	c.waitPod("sick", "restarted by its liveness probe", 20*time.Second, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	want := map[string]string{"Pulled": "", "Created": "", "Started": "", "Unhealthy": "Liveness probe failed", "Killing": "failed liveness probe"}
	waitFor(t, "the pod's events", 15*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(created.UID)})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if msg, ok := want[ev.Reason]; ok && strings.Contains(ev.Message, msg) && ev.Source.Host == clusterNode {
				delete(want, ev.Reason)
			}
		}
		return len(want) == 0
	})
	nodeEvents := map[string]bool{"Starting": false, "RegisteredNode": false}
	waitFor(t, "the node's events", 10*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + clusterNode})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if _, ok := nodeEvents[ev.Reason]; ok {
				nodeEvents[ev.Reason] = true
			}
		}
		return nodeEvents["Starting"] && nodeEvents["RegisteredNode"]
	})
}

// TestClusterEnvFromConfigMapsAndSecrets: env from a ConfigMap and a Secret, read with the node's
// identity (the Node authorizer allows only objects its pods reference); a missing ConfigMap is
// CreateContainerConfigError until it is created.
func TestClusterEnvFromConfigMapsAndSecrets(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cms, secrets := c.admin.CoreV1().ConfigMaps("default"), c.admin.CoreV1().Secrets("default")
	for _, name := range []string{"settings", "late"} {
		_ = cms.Delete(ctx, name, metav1.DeleteOptions{})
	}
	_ = secrets.Delete(ctx, "creds", metav1.DeleteOptions{})
	t.Cleanup(func() {
		_ = cms.Delete(ctx, "settings", metav1.DeleteOptions{})
		_ = cms.Delete(ctx, "late", metav1.DeleteOptions{})
		_ = secrets.Delete(ctx, "creds", metav1.DeleteOptions{})
	})
	if _, err := cms.Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"color": "blue", "size": "L"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.start()
	c.waitNodeReady(10 * time.Second)

	p := apiPod("env", "Always", "sleep", "3600")
	p.Spec.Containers[0].Env = []v1.EnvVar{
		{Name: "COLOR", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Key: "color"}}},
		{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "MAYBE", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "x", Optional: new(true)}}},
	}
	p.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}}}
	c.create(p)
	late := apiPod("late", "Always", "sleep", "3600")
	late.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "late"}, Key: "x"}}}}
	c.create(late)

	running := c.waitPod("env", "Running", 20*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	id := strings.TrimPrefix(running.Status.ContainerStatuses[0].ContainerID, "containerd://")
	env := c.exec(id, "env")
	for _, want := range []string{"COLOR=blue", "PASSWORD=s3cret", "CFG_color=blue", "CFG_size=L"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "MAYBE=") {
		t.Errorf("an optional missing reference set MAYBE")
	}
	c.waitPod("late", "CreateContainerConfigError", 15*time.Second, func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CreateContainerConfigError" &&
			strings.Contains(cs[0].State.Waiting.Message, `"late"`)
	})
	if _, err := cms.Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}, Data: map[string]string{"x": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitPod("late", "Running once its ConfigMap exists", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
}
