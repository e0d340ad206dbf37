package cri

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
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
	// ConfigMaps and Secrets hold the data of the ConfigMaps and Secrets (of the pod's namespace)
	// that the container's env (configMapKeyRef, secretKeyRef) and envFrom refer to, by name, as the
	// caller fetched them: an object absent from its map does not exist. The translation applies
	// the API's rules (optional references, missing keys, envFrom prefixes); cri never talks to an
	// API server. Only Data is read from a ConfigMap, as the kubelet does for the environment.
	ConfigMaps map[string]map[string]string
	Secrets    map[string]map[string][]byte
}

// ContainerConfig translates one container of a pod into its CRI configuration: metadata,
// image, command and args with $(VAR) expanded, environment (literal values, the downward API,
// ConfigMaps and Secrets as given in opts),
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
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		// Kept so that a container whose pod spec is gone (an orphan) still gets its preStop hook.
		if b, err := json.Marshal(c.Lifecycle.PreStop); err == nil {
			annotations[AnnotationPreStopHandler] = string(b)
		}
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

// containerEnv resolves the container's environment: first the variables of envFrom, in order
// (each source's keys sorted, with its prefix; keys that are not valid variable names are skipped,
// as the kubelet does), then env in spec order. A literal value may refer to variables defined
// before it with $(VAR); a variable defined twice keeps its first position and its last value. It
// returns the variables both as CRI key-values and as a map, for expanding the command and args.
func containerEnv(pod *v1.Pod, c *v1.Container, opts ContainerOptions) ([]*runtimeapi.KeyValue, map[string]string, error) {
	vars := make(map[string]string, len(c.Env))
	order := make([]string, 0, len(c.Env))
	set := func(name, value string) {
		if _, ok := vars[name]; !ok {
			order = append(order, name)
		}
		vars[name] = value
	}
	for i, from := range c.EnvFrom {
		data, err := envFromData(pod, from, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("envFrom[%d]: %w", i, err)
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			if name := from.Prefix + k; ValidEnvFromName(name) {
				set(name, data[k])
			}
		}
	}
	for _, e := range c.Env {
		var value string
		if e.ValueFrom == nil {
			value = expand(e.Value, mapLookup(vars))
		} else {
			v, ok, err := envValueFrom(pod, c, e.ValueFrom, opts)
			if err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if !ok {
				continue // an optional reference to a missing object or key: the variable is not set
			}
			value = v
		}
		set(e.Name, value)
	}
	envs := make([]*runtimeapi.KeyValue, len(order))
	for i, name := range order {
		envs[i] = &runtimeapi.KeyValue{Key: name, Value: []byte(vars[name])}
	}
	return envs, vars, nil
}

// ValidEnvFromName reports whether a key of an envFrom source (with its prefix) can be a variable
// name; the others are skipped.
func ValidEnvFromName(name string) bool {
	return len(validation.IsRelaxedEnvVarName(name)) == 0
}

// envFromData is the data of one envFrom source; nil for an optional source that does not exist.
func envFromData(pod *v1.Pod, from v1.EnvFromSource, opts ContainerOptions) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		ref := from.ConfigMapRef
		data, ok := opts.ConfigMaps[ref.Name]
		if !ok {
			if isOptional(ref.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("configmap %q not found", ref.Name)
		}
		return data, nil
	case from.SecretRef != nil:
		ref := from.SecretRef
		data, ok := opts.Secrets[ref.Name]
		if !ok {
			if isOptional(ref.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("secret %q not found", ref.Name)
		}
		out := make(map[string]string, len(data))
		for k, v := range data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("no source")
}

func isOptional(b *bool) bool { return b != nil && *b }

// envValueFrom resolves one valueFrom; ok is false when an optional reference finds nothing.
func envValueFrom(pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource, opts ContainerOptions) (value string, ok bool, err error) {
	switch {
	case from.FieldRef != nil:
		v, err := podFieldValue(pod, from.FieldRef, opts)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := resourceFieldValue(pod, c, from.ResourceFieldRef, opts.NodeMemoryCapacity)
		return v, err == nil, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		data, found := opts.ConfigMaps[ref.Name]
		if !found {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q not found", ref.Name)
		}
		v, found := data[ref.Key]
		if !found {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, true, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		data, found := opts.Secrets[ref.Name]
		if !found {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q not found", ref.Name)
		}
		v, found := data[ref.Key]
		if !found {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), true, nil
	case from.FileKeyRef != nil:
		return "", false, fmt.Errorf("fileKeyRef is not supported yet")
	}
	return "", false, fmt.Errorf("valueFrom has no source")
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
		if key, ok := FieldPathSubscript(path, "metadata.labels"); ok {
			return pod.Labels[key], nil
		}
		if key, ok := FieldPathSubscript(path, "metadata.annotations"); ok {
			return pod.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("fieldRef %s: unsupported field path", ref.FieldPath)
}

// FieldPathSubscript reads the key of a downward API field path like metadata.labels['app'] (field
// "metadata.labels"); env and downwardAPI volumes share it.
func FieldPathSubscript(path, field string) (string, bool) {
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
	return ResourceFieldValue(pod, c, ref, nodeMemoryCapacity)
}

// ResourceFieldValue is resourceFieldValue for the other users of the downward API (volumes): c
// is the container the reference is evaluated for, or nil when ref names its container.
func ResourceFieldValue(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector, nodeMemoryCapacity int64) (string, error) {
	target := c
	if ref.ContainerName != "" && (c == nil || ref.ContainerName != c.Name) {
		target = findContainer(pod, ref.ContainerName)
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef %s: no container %q in the pod", ref.Resource, ref.ContainerName)
		}
	}
	if target == nil {
		return "", fmt.Errorf("resourceFieldRef %s: containerName is required", ref.Resource)
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
