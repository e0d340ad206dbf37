package cri

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Termination message defaults, as the API server would default them.
const (
	DefaultTerminationMessagePath   = "/dev/termination-log"
	DefaultTerminationMessagePolicy = string(v1.TerminationMessageReadFile)
)

// ContainerOptions carries what the translation of a container cannot read from the pod.
type ContainerOptions struct {
	RestartCount int
	PodIPs       []string            // from the sandbox status, first is the primary; may be empty (host network)
	HostIPs      []string            // the node's IPs, first is the primary
	Mounts       []*runtimeapi.Mount // added by the volume code; appended as is
	Type         string              // ContainerTypeInit or ContainerTypeApp
	// NodeMemoryCapacity is the node's memory in bytes. It sizes the OOM score adjustment of
	// Burstable containers and stands in for limits.memory in resourceFieldRef env vars when the
	// container sets no memory limit. 0 means unknown.
	NodeMemoryCapacity int64
}

// ContainerConfig translates one container of a pod into its CRI configuration: metadata,
// image, command and args with $(VAR) expanded, environment (literal and downward API values),
// the labels and annotations Berth reads back after a restart, log path, Linux resources and
// security context.
func ContainerConfig(pod *v1.Pod, c *v1.Container, opts ContainerOptions) (*runtimeapi.ContainerConfig, error) {
	if pod == nil || c == nil {
		return nil, fmt.Errorf("container config: no pod or container")
	}
	where := fmt.Sprintf("pod %s/%s container %q", pod.Namespace, pod.Name, c.Name)
	if opts.RestartCount < 0 {
		return nil, fmt.Errorf("%s: negative restart count %d", where, opts.RestartCount)
	}
	if opts.Type != ContainerTypeInit && opts.Type != ContainerTypeApp {
		return nil, fmt.Errorf("%s: container type %q: want %q or %q", where, opts.Type, ContainerTypeInit, ContainerTypeApp)
	}
	envs, vars, err := containerEnv(pod, c, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	sc, err := containerSecurityContext(pod, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	signal, err := stopSignal(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	labels := podLabels(pod)
	labels[LabelContainerName] = c.Name
	labels[LabelManagedBy] = ManagedByValue

	messagePath := c.TerminationMessagePath
	if messagePath == "" {
		messagePath = DefaultTerminationMessagePath
	}
	messagePolicy := string(c.TerminationMessagePolicy)
	if messagePolicy == "" {
		messagePolicy = DefaultTerminationMessagePolicy
	}
	annotations := map[string]string{
		AnnotationRestartCount:             strconv.Itoa(opts.RestartCount),
		AnnotationContainerHash:            ContainerHash(c),
		AnnotationContainerType:            opts.Type,
		AnnotationTerminationMessagePath:   messagePath,
		AnnotationTerminationMessagePolicy: messagePolicy,
		AnnotationTerminationGrace:         strconv.FormatInt(terminationGracePeriod(pod), 10),
	}

	lookup := mapLookup(vars)
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{
			Name:    c.Name,
			Attempt: uint32(opts.RestartCount),
		},
		Image:       &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		Command:     expandAll(c.Command, lookup),
		Args:        expandAll(c.Args, lookup),
		WorkingDir:  c.WorkingDir,
		Envs:        envs,
		Mounts:      opts.Mounts,
		Labels:      labels,
		Annotations: annotations,
		LogPath:     ContainerLogPath(c.Name, opts.RestartCount),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		StopSignal:  signal,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       containerResources(pod, c, opts.NodeMemoryCapacity),
			SecurityContext: sc,
		},
	}, nil
}

func expandAll(in []string, lookup func(string) (string, bool)) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, lookup)
	}
	return out
}

// containerEnv resolves the container's environment in spec order. A literal value may refer to
// variables defined before it with $(VAR); a variable defined twice keeps its first position and
// its last value. It returns the variables both as CRI key-values and as a map, for expanding
// the command and args.
func containerEnv(pod *v1.Pod, c *v1.Container, opts ContainerOptions) ([]*runtimeapi.KeyValue, map[string]string, error) {
	for i, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			return nil, nil, fmt.Errorf("envFrom[%d]: configMapRef is not supported yet", i)
		case from.SecretRef != nil:
			return nil, nil, fmt.Errorf("envFrom[%d]: secretRef is not supported yet", i)
		default:
			return nil, nil, fmt.Errorf("envFrom[%d]: no source", i)
		}
	}
	vars := make(map[string]string, len(c.Env))
	order := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		var value string
		if e.ValueFrom == nil {
			value = expand(e.Value, mapLookup(vars))
		} else {
			var err error
			if value, err = envValueFrom(pod, c, e.ValueFrom, opts); err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		if _, ok := vars[e.Name]; !ok {
			order = append(order, e.Name)
		}
		vars[e.Name] = value
	}
	envs := make([]*runtimeapi.KeyValue, len(order))
	for i, name := range order {
		envs[i] = &runtimeapi.KeyValue{Key: name, Value: []byte(vars[name])}
	}
	return envs, vars, nil
}

func envValueFrom(pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource, opts ContainerOptions) (string, error) {
	switch {
	case from.FieldRef != nil:
		return podFieldValue(pod, from.FieldRef, opts)
	case from.ResourceFieldRef != nil:
		return resourceFieldValue(pod, c, from.ResourceFieldRef, opts.NodeMemoryCapacity)
	case from.ConfigMapKeyRef != nil:
		return "", fmt.Errorf("configMapKeyRef is not supported yet")
	case from.SecretKeyRef != nil:
		return "", fmt.Errorf("secretKeyRef is not supported yet")
	case from.FileKeyRef != nil:
		return "", fmt.Errorf("fileKeyRef is not supported yet")
	}
	return "", fmt.Errorf("valueFrom has no source")
}

// podFieldValue is the value of a downward API fieldRef. A host network pod without pod IPs
// reports the node's IPs as its own, as its status does.
func podFieldValue(pod *v1.Pod, ref *v1.ObjectFieldSelector, opts ContainerOptions) (string, error) {
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", fmt.Errorf("fieldRef %s: apiVersion %q: only v1 is supported", ref.FieldPath, ref.APIVersion)
	}
	podIPs := opts.PodIPs
	if len(podIPs) == 0 && pod.Spec.HostNetwork {
		podIPs = opts.HostIPs
	}
	first := func(ips []string) string {
		if len(ips) == 0 {
			return ""
		}
		return ips[0]
	}
	switch path := ref.FieldPath; path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return first(podIPs), nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	case "status.hostIP":
		return first(opts.HostIPs), nil
	case "status.hostIPs":
		return strings.Join(opts.HostIPs, ","), nil
	default:
		if key, ok := subscript(path, "metadata.labels"); ok {
			return pod.Labels[key], nil
		}
		if key, ok := subscript(path, "metadata.annotations"); ok {
			return pod.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("fieldRef %s: unsupported field path", ref.FieldPath)
}

// subscript reads the key of a path like metadata.labels['app'].
func subscript(path, field string) (string, bool) {
	rest, ok := strings.CutPrefix(path, field+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok && key != ""
}

// resourceFieldValue is the value of a resourceFieldRef: the container's request or limit divided
// by the divisor (1 when unset) and rounded up, as Kubernetes does (CPU in whole cores by default,
// so a 250m limit reads as "1"; with divisor 1m it reads as "250").
//
// A limit the container does not set stands in for "everything the node can give", which the
// kubelet reads from node allocatable. Berth reserves nothing for the system yet, so allocatable
// is the capacity: runtime.NumCPU() CPUs for limits.cpu, and ContainerOptions.NodeMemoryCapacity
// for limits.memory; when that is unknown (0), and for limits.ephemeral-storage, the request
// stands in as a placeholder until node allocatable is known here.
//
// Requests left unset are the limit (the API server defaults a missing request to the limit),
// else 0.
func resourceFieldValue(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector, nodeMemoryCapacity int64) (string, error) {
	target := c
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		target = findContainer(pod, ref.ContainerName)
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef %s: no container %q in the pod", ref.Resource, ref.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %s: unsupported resource", ref.Resource)
	}
	res := v1.ResourceName(name)
	switch {
	case res == v1.ResourceCPU, res == v1.ResourceMemory, res == v1.ResourceEphemeralStorage,
		strings.HasPrefix(name, v1.ResourceHugePagesPrefix):
	default:
		return "", fmt.Errorf("resourceFieldRef %s: unsupported resource", ref.Resource)
	}

	limit, hasLimit := nonZero(target.Resources.Limits, res)
	request, hasRequest := nonZero(target.Resources.Requests, res)
	var q resource.Quantity
	switch {
	case kind == "requests" && hasRequest:
		q = request
	case kind == "requests" && hasLimit:
		q = limit
	case kind == "requests":
		q = resource.Quantity{}
	case hasLimit:
		q = limit
	case res == v1.ResourceCPU:
		q = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
	case res == v1.ResourceMemory && nodeMemoryCapacity > 0:
		q = *resource.NewQuantity(nodeMemoryCapacity, resource.BinarySI)
	default:
		q = request
	}

	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if res == v1.ResourceCPU {
		return strconv.FormatInt(ceilDiv(q.MilliValue(), divisor.MilliValue()), 10), nil
	}
	return strconv.FormatInt(ceilDiv(q.Value(), divisor.Value()), 10), nil
}

func nonZero(l v1.ResourceList, name v1.ResourceName) (resource.Quantity, bool) {
	q, ok := l[name]
	return q, ok && !q.IsZero()
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		b = 1
	}
	if a <= 0 {
		return 0
	}
	return (a-1)/b + 1
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
