package cri

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Paths of /proc and /sys that a container with the Default procMount gets masked or read-only.
// The CRI passes these straight into the OCI spec and containerd applies no defaults of its own
// when they are empty, so, as the kubelet does, Berth sends the usual list for every unprivileged
// container instead of leaving them empty.
var (
	defaultMaskedPaths = []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// namespaceOptions are the Linux namespaces of a pod, the same for its sandbox and its
// containers: the node's network, PID and IPC namespaces for hostNetwork, hostPID and hostIPC;
// otherwise the pod's network and IPC namespaces, and a PID namespace per container unless the pod
// shares its process namespace.
func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

// hasPrivilegedContainer tells whether any init, app or ephemeral container of the pod is
// privileged: the sandbox must then be privileged too.
func hasPrivilegedContainer(pod *v1.Pod) bool {
	privileged := func(sc *v1.SecurityContext) bool {
		return sc != nil && sc.Privileged != nil && *sc.Privileged
	}
	for i := range pod.Spec.InitContainers {
		if privileged(pod.Spec.InitContainers[i].SecurityContext) {
			return true
		}
	}
	for i := range pod.Spec.Containers {
		if privileged(pod.Spec.Containers[i].SecurityContext) {
			return true
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if privileged(pod.Spec.EphemeralContainers[i].SecurityContext) {
			return true
		}
	}
	return false
}

// sandboxSecurityContext is the Linux security context of the pod's sandbox, from the pod's
// securityContext.
func sandboxSecurityContext(pod *v1.Pod) (*runtimeapi.LinuxSandboxSecurityContext, error) {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		Privileged:       hasPrivilegedContainer(pod),
	}
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return sc, nil
	}
	if psc.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
	}
	if psc.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
	}
	sc.SupplementalGroups = supplementalGroups(psc)
	sc.SupplementalGroupsPolicy = supplementalGroupsPolicy(psc)
	sc.SelinuxOptions = selinuxOptions(psc.SELinuxOptions)
	seccomp, err := seccompProfile(psc.SeccompProfile)
	if err != nil {
		return nil, fmt.Errorf("spec.securityContext.seccompProfile: %w", err)
	}
	sc.Seccomp = seccomp
	return sc, nil
}

// containerSecurityContext is the Linux security context of a container: its own securityContext,
// with the pod's for what the container leaves unset.
func containerSecurityContext(pod *v1.Pod, c *v1.Container) (*runtimeapi.LinuxContainerSecurityContext, error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &v1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &v1.SecurityContext{}
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:         namespaceOptions(pod),
		Privileged:               csc.Privileged != nil && *csc.Privileged,
		ReadonlyRootfs:           csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem,
		SupplementalGroups:       supplementalGroups(psc),
		SupplementalGroupsPolicy: supplementalGroupsPolicy(psc),
		// allowPrivilegeEscalation defaults to true: no_new_privs only when it is set to false.
		NoNewPrivs: csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation,
	}

	runAsUser := psc.RunAsUser
	if csc.RunAsUser != nil {
		runAsUser = csc.RunAsUser
	}
	if runAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *runAsUser}
	}
	runAsGroup := psc.RunAsGroup
	if csc.RunAsGroup != nil {
		runAsGroup = csc.RunAsGroup
	}
	if runAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *runAsGroup}
	}
	runAsNonRoot := psc.RunAsNonRoot
	if csc.RunAsNonRoot != nil {
		runAsNonRoot = csc.RunAsNonRoot
	}
	// With runAsUser unset the user comes from the image; that case is for whoever knows the image
	// to check.
	if runAsNonRoot != nil && *runAsNonRoot && runAsUser != nil && *runAsUser == 0 {
		return nil, fmt.Errorf("securityContext: runAsNonRoot is set but runAsUser is 0 (root)")
	}

	seLinux := psc.SELinuxOptions
	if csc.SELinuxOptions != nil {
		seLinux = csc.SELinuxOptions
	}
	sc.SelinuxOptions = selinuxOptions(seLinux)

	seccomp := psc.SeccompProfile
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	profile, err := seccompProfile(seccomp)
	if err != nil {
		return nil, fmt.Errorf("securityContext.seccompProfile: %w", err)
	}
	sc.Seccomp = profile

	if caps := csc.Capabilities; caps != nil {
		// Names go to the runtime as written in the spec ("NET_ADMIN"); containerd and CRI-O add
		// the CAP_ prefix themselves when it is missing.
		sc.Capabilities = &runtimeapi.Capability{
			AddCapabilities:  capabilityNames(caps.Add),
			DropCapabilities: capabilityNames(caps.Drop),
		}
	}

	unmasked := csc.ProcMount != nil && *csc.ProcMount == v1.UnmaskedProcMount
	if !sc.Privileged && !unmasked {
		sc.MaskedPaths = append([]string(nil), defaultMaskedPaths...)
		sc.ReadonlyPaths = append([]string(nil), defaultReadonlyPaths...)
	}
	return sc, nil
}

func capabilityNames(caps []v1.Capability) []string {
	if len(caps) == 0 {
		return nil
	}
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = string(c)
	}
	return names
}

// supplementalGroups are the pod's supplementalGroups and its fsGroup, which every container
// joins so that it can use the volumes given to that group.
func supplementalGroups(psc *v1.PodSecurityContext) []int64 {
	groups := append([]int64(nil), psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return groups
}

func supplementalGroupsPolicy(psc *v1.PodSecurityContext) runtimeapi.SupplementalGroupsPolicy {
	if psc.SupplementalGroupsPolicy != nil && *psc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict {
		return runtimeapi.SupplementalGroupsPolicy_Strict
	}
	return runtimeapi.SupplementalGroupsPolicy_Merge
}

func selinuxOptions(o *v1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// seccompProfile converts a seccomp profile; unset leaves the choice to the runtime (unconfined
// on containerd, as with a kubelet without SeccompDefault). Localhost profiles need a profile
// root on the node, which Berth does not have yet.
func seccompProfile(p *v1.SeccompProfile) (*runtimeapi.SecurityProfile, error) {
	if p == nil {
		return nil, nil
	}
	switch p.Type {
	case v1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case v1.SeccompProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case v1.SeccompProfileTypeLocalhost:
		return nil, fmt.Errorf("type Localhost is not supported yet")
	}
	return nil, fmt.Errorf("unknown type %q", p.Type)
}

// stopSignal converts a container's lifecycle.stopSignal ("SIGUSR1", "SIGRTMIN+1") to the CRI
// enum; unset is the runtime's default (the image's STOPSIGNAL, else SIGTERM).
func stopSignal(c *v1.Container) (runtimeapi.Signal, error) {
	if c.Lifecycle == nil || c.Lifecycle.StopSignal == nil {
		return runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, nil
	}
	name := string(*c.Lifecycle.StopSignal)
	key := "SIGNAL_" + strings.NewReplacer("+", "PLUS", "-", "MINUS").Replace(name)
	v, ok := runtimeapi.Signal_value[key]
	if !ok {
		return 0, fmt.Errorf("lifecycle.stopSignal: unknown signal %q", name)
	}
	return runtimeapi.Signal(v), nil
}
