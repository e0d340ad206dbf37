package cri

import (
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultLogRoot is where pod logs go when SandboxOptions.LogRoot is empty.
const DefaultLogRoot = "/var/log/pods"

// DefaultTerminationGracePeriodSeconds is the grace period of a pod that does not set
// spec.terminationGracePeriodSeconds.
const DefaultTerminationGracePeriodSeconds = 30

// SandboxOptions carries what the translation cannot read from the pod itself.
type SandboxOptions struct {
	LogRoot      string                // root of pod logs, default "/var/log/pods"
	CgroupParent string                // the pod cgroup (cgroups.Manager.PodParent); "" for the runtime's default
	Attempt      uint32                // sandbox attempt (0 first)
	DNS          *runtimeapi.DNSConfig // from DNSConfigForPod
}

// PodSandboxConfig translates a pod into the configuration of its sandbox: metadata, the labels
// and annotations Berth reads back after a restart, log directory, hostname, DNS, host port
// mappings and the Linux namespaces and security context.
func PodSandboxConfig(pod *v1.Pod, opts SandboxOptions) (*runtimeapi.PodSandboxConfig, error) {
	if pod == nil {
		return nil, fmt.Errorf("pod sandbox config: no pod")
	}
	where := fmt.Sprintf("pod %s/%s", pod.Namespace, pod.Name)
	if pod.Name == "" || pod.Namespace == "" || pod.UID == "" {
		return nil, fmt.Errorf("%s: metadata.name, metadata.namespace and metadata.uid are required (uid %q)", where, pod.UID)
	}
	hostname, err := PodHostname(pod)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	sc, err := sandboxSecurityContext(pod)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	logRoot := opts.LogRoot
	if logRoot == "" {
		logRoot = DefaultLogRoot
	}

	labels := make(map[string]string, len(pod.Labels)+4)
	maps.Copy(labels, pod.Labels)
	maps.Copy(labels, podLabels(pod))
	labels[LabelManagedBy] = ManagedByValue

	annotations := make(map[string]string, len(pod.Annotations)+1)
	maps.Copy(annotations, pod.Annotations)
	annotations[AnnotationTerminationGrace] = strconv.FormatInt(terminationGracePeriod(pod), 10)

	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Uid:       string(pod.UID),
			Attempt:   opts.Attempt,
		},
		Hostname:     hostname,
		LogDirectory: PodLogDir(logRoot, pod.Namespace, pod.Name, pod.UID),
		DnsConfig:    opts.DNS,
		PortMappings: portMappings(pod),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    opts.CgroupParent,
			SecurityContext: sc,
		},
	}
	if psc := pod.Spec.SecurityContext; psc != nil && len(psc.Sysctls) > 0 {
		cfg.Linux.Sysctls = make(map[string]string, len(psc.Sysctls))
		for _, s := range psc.Sysctls {
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
	}
	return cfg, nil
}

// podLabels are the labels that tie a sandbox or container to its pod.
func podLabels(pod *v1.Pod) map[string]string {
	return map[string]string{
		LabelPodUID:       string(pod.UID),
		LabelPodName:      pod.Name,
		LabelPodNamespace: pod.Namespace,
	}
}

// terminationGracePeriod is spec.terminationGracePeriodSeconds, or 30 when unset.
func terminationGracePeriod(pod *v1.Pod) int64 {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return DefaultTerminationGracePeriodSeconds
}

// PodLogDir is the directory of a pod's container logs: <root>/<namespace>_<name>_<uid>.
func PodLogDir(logRoot string, namespace, name string, uid types.UID) string {
	if logRoot == "" {
		logRoot = DefaultLogRoot
	}
	return filepath.Join(logRoot, namespace+"_"+name+"_"+string(uid))
}

// ContainerLogPath is the log file of one instance of a container, relative to the pod's log
// directory: "<container>/<restartCount>.log".
func ContainerLogPath(containerName string, restartCount int) string {
	return filepath.Join(containerName, strconv.Itoa(restartCount)+".log")
}

// maxHostnameLen is the longest hostname the kernel and DNS accept for a pod (a DNS label).
const maxHostnameLen = 63

// PodHostname is the hostname of a pod's sandbox: spec.hostname when set (it must be a DNS-1123
// label), otherwise the pod's name cut to 63 characters with the '-' and '.' left at the end of
// the cut trimmed. Host network pods get "": they keep the node's hostname, and containerd fails
// to create a host network sandbox with a hostname of its own.
//
// spec.subdomain and setHostnameAsFQDN are not applied yet: they need the cluster domain.
func PodHostname(pod *v1.Pod) (hostname string, err error) {
	if pod.Spec.HostNetwork {
		return "", nil
	}
	if h := pod.Spec.Hostname; h != "" {
		if errs := validation.IsDNS1123Label(h); len(errs) > 0 {
			return "", fmt.Errorf("spec.hostname %q: %s", h, strings.Join(errs, "; "))
		}
		return h, nil
	}
	hostname = pod.Name
	if len(hostname) > maxHostnameLen {
		hostname = strings.TrimRight(hostname[:maxHostnameLen], "-.")
		if hostname == "" {
			return "", fmt.Errorf("hostname from pod name %q is empty once cut to %d characters", pod.Name, maxHostnameLen)
		}
	}
	return hostname, nil
}

// portMappings are the host ports of the pod: one mapping for every port of an app container, or
// of a sidecar (an init container that keeps running), that has a hostPort. Duplicates are kept
// once.
func portMappings(pod *v1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	type key struct {
		proto    runtimeapi.Protocol
		hostPort int32
		hostIP   string
	}
	seen := map[key]bool{}
	add := func(c *v1.Container) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			pm := &runtimeapi.PortMapping{
				Protocol:      protocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			}
			k := key{pm.Protocol, pm.HostPort, pm.HostIp}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, pm)
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	return out
}

func protocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}
