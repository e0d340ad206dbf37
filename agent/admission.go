package agent

import (
	"fmt"

	"github.com/berth-dev/berth/eviction"
	"github.com/go-logr/logr"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// admissionError is why a pod cannot run on this node, with the kubelet's reason; the pod goes
// Failed with it and is never retried (as with the kubelet).
type admissionError struct{ reason, message string }

func (e *admissionError) Error() string { return e.reason + ": " + e.message }

// admitter decides whether a new pod may run, against the pods already admitted and the Node.
type admitter struct {
	maxPods  int
	node     func() *v1.Node // nil in standalone mode or before registration
	admitted map[types.UID]*v1.Pod
	// pressure refuses pods while the node is under pressure (the eviction manager); nil admits.
	pressure func(*v1.Pod) *eviction.AdmitError
}

func newAdmitter(maxPods int, node func() *v1.Node) *admitter {
	return &admitter{maxPods: maxPods, node: node, admitted: map[types.UID]*v1.Pod{}}
}

func (a *admitter) forget(uid types.UID) { delete(a.admitted, uid) }

func (a *admitter) isAdmitted(uid types.UID) bool { return a.admitted[uid] != nil }

// refresh keeps the latest version of an admitted pod, so that one gone terminal takes no room.
func (a *admitter) refresh(p *v1.Pod) {
	if a.admitted[p.UID] != nil {
		a.admitted[p.UID] = p
	}
}

// admit checks p and, if it fits, counts it in.
func (a *admitter) admit(p *v1.Pod) *admissionError {
	if err := a.check(p); err != nil {
		return err
	}
	a.admitted[p.UID] = p
	return nil
}

func (a *admitter) check(p *v1.Pod) *admissionError {
	if p.Annotations[annotationConfigSource] != SourceFile {
		// Static pods were checked by their source; API pods are checked here: Berth refuses what it
		// cannot honour instead of running the pod without it.
		// Only the spec asks for features: metadata such as managedFields or resourceVersion is the
		// API server's, not a request.
		if errs := unsupportedAPIPodFields(&v1.Pod{Spec: p.Spec}); len(errs) > 0 {
			return &admissionError{"UnsupportedPodSpec", errs.ToAggregate().Error()}
		}
	}
	if terminal(p) {
		return nil // a finished pod takes no room
	}
	// Node pressure first, as the kubelet's eviction admit handler comes before its resource
	// checks.
	if a.pressure != nil {
		if err := a.pressure(p); err != nil {
			return &admissionError{err.Reason, err.Message}
		}
	}
	active := 0
	for _, q := range a.admitted {
		if !terminal(q) {
			active++
		}
	}
	if active >= a.maxPods {
		return &admissionError{"OutOfpods", fmt.Sprintf("Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", active, a.maxPods)}
	}
	node := a.node()
	if node == nil {
		return nil
	}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		alloc, ok := node.Status.Allocatable[name]
		if !ok {
			continue
		}
		want := podRequest(p, name)
		if want.IsZero() {
			continue
		}
		var used resource.Quantity
		for _, q := range a.admitted {
			if !terminal(q) {
				r := podRequest(q, name)
				used.Add(r)
			}
		}
		total := used.DeepCopy()
		total.Add(want)
		if total.Cmp(alloc) > 0 {
			return &admissionError{"OutOf" + string(name), fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
				name, amount(name, want), amount(name, used), amount(name, alloc))}
		}
	}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(p).Match(node); !ok {
		return &admissionError{"NodeAffinity", "Predicate NodeAffinity failed: the node's labels do not match the pod's nodeSelector or required node affinity"}
	}
	// As the kubelet: only NoExecute taints are checked here (NoSchedule is the scheduler's
	// business, and a pod bound by nodeName bypasses it), and never for static pods.
	if taint, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, p.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoExecute
	}, false); untolerated && p.Annotations[annotationConfigSource] != SourceFile {
		return &admissionError{"Taint", fmt.Sprintf("Predicate TaintToleration failed: the pod does not tolerate the node's taint %s", taint.ToString())}
	}
	if port := hostPortConflict(p, a.admitted); port != "" {
		return &admissionError{"NodePorts", fmt.Sprintf("Predicate NodePorts failed: host port %s is already used by another pod on this node", port)}
	}
	return nil
}

func terminal(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// podRequest is the pod's effective request of a resource, the kubelet's rule: sidecars run beside
// everything started after them, so the larger of (app containers + all sidecars) and, for each
// regular init container, (it + the sidecars started before it); plus overhead.
func podRequest(p *v1.Pod, name v1.ResourceName) resource.Quantity {
	var sum, sidecars resource.Quantity
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[name]; ok {
			sum.Add(q)
		}
	}
	var initMax resource.Quantity
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		q := c.Resources.Requests[name]
		if isSidecar(c) {
			sidecars.Add(q)
			continue
		}
		peak := q.DeepCopy()
		peak.Add(sidecars)
		if peak.Cmp(initMax) > 0 {
			initMax = peak
		}
	}
	sum.Add(sidecars)
	if initMax.Cmp(sum) > 0 {
		sum = initMax
	}
	if q, ok := p.Spec.Overhead[name]; ok {
		sum.Add(q)
	}
	return sum
}

func amount(name v1.ResourceName, q resource.Quantity) int64 {
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// hostPortConflict returns "TCP/8080" when p wants a host port an admitted pod holds.
func hostPortConflict(p *v1.Pod, admitted map[types.UID]*v1.Pod) string {
	wanted := hostPorts(p)
	if len(wanted) == 0 {
		return "" // most pods: no scan of every admitted pod (it made admitting n pods O(n²))
	}
	used := map[string]bool{}
	for _, q := range admitted {
		if terminal(q) {
			continue
		}
		for _, k := range hostPorts(q) {
			used[k] = true
		}
	}
	for _, k := range wanted {
		if used[k] {
			return k
		}
	}
	return ""
}

func hostPorts(p *v1.Pod) []string {
	var out []string
	for _, cs := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.HostPort == 0 {
					continue
				}
				proto := string(port.Protocol)
				if proto == "" {
					proto = "TCP"
				}
				// Keyed by protocol and port alone: a pod on 0.0.0.0:8080 and one on 10.0.0.1:8080 clash.
				out = append(out, fmt.Sprintf("%s/%d", proto, port.HostPort))
			}
		}
	}
	return out
}
