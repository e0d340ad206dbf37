package cri

import (
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "web",
			Namespace:   "default",
			UID:         "1111-2222",
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"note": "hello"},
		},
		Spec: v1.PodSpec{
			NodeName:           "node-1",
			ServiceAccountName: "sa",
			Containers: []v1.Container{{
				Name:  "nginx",
				Image: "nginx:1.27",
			}},
		},
	}
}

func TestPodSandboxConfig(t *testing.T) {
	dns := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}}
	tests := []struct {
		name   string
		mutate func(p *v1.Pod)
		opts   SandboxOptions
		check  func(t *testing.T, cfg *runtimeapi.PodSandboxConfig)
	}{
		{
			name: "defaults",
			opts: SandboxOptions{DNS: dns, Attempt: 2},
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				wantMeta := &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "1111-2222", Attempt: 2}
				if !reflect.DeepEqual(cfg.Metadata, wantMeta) {
					t.Errorf("metadata = %v, want %v", cfg.Metadata, wantMeta)
				}
				if cfg.Hostname != "web" {
					t.Errorf("hostname = %q, want web", cfg.Hostname)
				}
				if cfg.LogDirectory != "/var/log/pods/default_web_1111-2222" {
					t.Errorf("log directory = %q", cfg.LogDirectory)
				}
				if cfg.DnsConfig != dns {
					t.Errorf("dns config not passed through: %v", cfg.DnsConfig)
				}
				wantLabels := map[string]string{
					"app":             "web",
					LabelPodUID:       "1111-2222",
					LabelPodName:      "web",
					LabelPodNamespace: "default",
					LabelManagedBy:    ManagedByValue,
				}
				if !reflect.DeepEqual(cfg.Labels, wantLabels) {
					t.Errorf("labels = %v, want %v", cfg.Labels, wantLabels)
				}
				wantAnn := map[string]string{"note": "hello", AnnotationTerminationGrace: "30"}
				if !reflect.DeepEqual(cfg.Annotations, wantAnn) {
					t.Errorf("annotations = %v, want %v", cfg.Annotations, wantAnn)
				}
				ns := cfg.Linux.SecurityContext.NamespaceOptions
				if ns.Network != runtimeapi.NamespaceMode_POD || ns.Pid != runtimeapi.NamespaceMode_CONTAINER || ns.Ipc != runtimeapi.NamespaceMode_POD {
					t.Errorf("namespaces = %v, want network POD, pid CONTAINER, ipc POD", ns)
				}
				if cfg.Linux.SecurityContext.Privileged {
					t.Error("sandbox privileged without privileged containers")
				}
				if len(cfg.PortMappings) != 0 {
					t.Errorf("port mappings = %v, want none", cfg.PortMappings)
				}
			},
		},
		{
			name:   "log root, cgroup parent and grace period",
			mutate: func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5) },
			opts:   SandboxOptions{LogRoot: "/tmp/logs", CgroupParent: "/kubepods/pod1111"},
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				if cfg.LogDirectory != "/tmp/logs/default_web_1111-2222" {
					t.Errorf("log directory = %q", cfg.LogDirectory)
				}
				if cfg.Linux.CgroupParent != "/kubepods/pod1111" {
					t.Errorf("cgroup parent = %q", cfg.Linux.CgroupParent)
				}
				if g := cfg.Annotations[AnnotationTerminationGrace]; g != "5" {
					t.Errorf("grace annotation = %q, want 5", g)
				}
			},
		},
		{
			name: "pod labels cannot override berth labels",
			mutate: func(p *v1.Pod) {
				p.Labels[LabelPodName] = "evil"
				p.Labels[LabelManagedBy] = "someone-else"
				p.Annotations[AnnotationTerminationGrace] = "9999"
			},
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				if cfg.Labels[LabelPodName] != "web" || cfg.Labels[LabelManagedBy] != ManagedByValue {
					t.Errorf("labels = %v", cfg.Labels)
				}
				if cfg.Annotations[AnnotationTerminationGrace] != "30" {
					t.Errorf("annotations = %v", cfg.Annotations)
				}
			},
		},
		{
			name:   "host network: no hostname, node network",
			mutate: func(p *v1.Pod) { p.Spec.HostNetwork = true; p.Spec.Hostname = "ignored" },
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				if cfg.Hostname != "" {
					t.Errorf("hostname = %q, want empty for a host network pod", cfg.Hostname)
				}
				if n := cfg.Linux.SecurityContext.NamespaceOptions.Network; n != runtimeapi.NamespaceMode_NODE {
					t.Errorf("network namespace = %v, want NODE", n)
				}
			},
		},
		{
			name: "host PID and IPC",
			mutate: func(p *v1.Pod) {
				p.Spec.HostPID = true
				p.Spec.HostIPC = true
				p.Spec.ShareProcessNamespace = ptr.To(true) // hostPID wins
			},
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				ns := cfg.Linux.SecurityContext.NamespaceOptions
				if ns.Pid != runtimeapi.NamespaceMode_NODE || ns.Ipc != runtimeapi.NamespaceMode_NODE || ns.Network != runtimeapi.NamespaceMode_POD {
					t.Errorf("namespaces = %v", ns)
				}
			},
		},
		{
			name:   "shared process namespace",
			mutate: func(p *v1.Pod) { p.Spec.ShareProcessNamespace = ptr.To(true) },
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				if pid := cfg.Linux.SecurityContext.NamespaceOptions.Pid; pid != runtimeapi.NamespaceMode_POD {
					t.Errorf("pid namespace = %v, want POD", pid)
				}
			},
		},
		{
			name: "host port mappings",
			mutate: func(p *v1.Pod) {
				p.Spec.Containers[0].Ports = []v1.ContainerPort{
					{ContainerPort: 80, HostPort: 8080},
					{ContainerPort: 53, HostPort: 5353, Protocol: v1.ProtocolUDP, HostIP: "127.0.0.1"},
					{ContainerPort: 9090}, // no hostPort: not mapped
					{ContainerPort: 80, HostPort: 8080, Protocol: v1.ProtocolTCP}, // duplicate
				}
				p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "sctp", Ports: []v1.ContainerPort{
					{ContainerPort: 7777, HostPort: 7777, Protocol: v1.ProtocolSCTP},
				}})
				p.Spec.InitContainers = []v1.Container{
					{Name: "init", Ports: []v1.ContainerPort{{ContainerPort: 1, HostPort: 1}}},
					{Name: "sidecar", RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways), Ports: []v1.ContainerPort{{ContainerPort: 2, HostPort: 2002}}},
				}
			},
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				want := []*runtimeapi.PortMapping{
					{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 2, HostPort: 2002},
					{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
					{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
					{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 7777, HostPort: 7777},
				}
				if len(cfg.PortMappings) != len(want) {
					t.Fatalf("port mappings = %v, want %v", cfg.PortMappings, want)
				}
				for i := range want {
					if got := cfg.PortMappings[i]; got.String() != want[i].String() {
						t.Errorf("port mapping %d = %v, want %v", i, got, want[i])
					}
				}
			},
		},
		{
			name: "security context",
			mutate: func(p *v1.Pod) {
				p.Spec.SecurityContext = &v1.PodSecurityContext{
					RunAsUser:          ptr.To[int64](1000),
					RunAsGroup:         ptr.To[int64](3000),
					SupplementalGroups: []int64{4000},
					FSGroup:            ptr.To[int64](2000),
					Sysctls:            []v1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}, {Name: "kernel.shm_rmid_forced", Value: "1"}},
					SeccompProfile:     &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
				}
				p.Spec.InitContainers = []v1.Container{{Name: "init", SecurityContext: &v1.SecurityContext{Privileged: ptr.To(true)}}}
			},
			check: func(t *testing.T, cfg *runtimeapi.PodSandboxConfig) {
				sc := cfg.Linux.SecurityContext
				if !sc.Privileged {
					t.Error("sandbox not privileged with a privileged (init) container")
				}
				if sc.RunAsUser.GetValue() != 1000 || sc.RunAsGroup.GetValue() != 3000 {
					t.Errorf("runAsUser/Group = %v/%v", sc.RunAsUser, sc.RunAsGroup)
				}
				if !reflect.DeepEqual(sc.SupplementalGroups, []int64{4000, 2000}) {
					t.Errorf("supplemental groups = %v, want [4000 2000]", sc.SupplementalGroups)
				}
				if sc.Seccomp.GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault {
					t.Errorf("seccomp = %v", sc.Seccomp)
				}
				want := map[string]string{"net.core.somaxconn": "1024", "kernel.shm_rmid_forced": "1"}
				if !reflect.DeepEqual(cfg.Linux.Sysctls, want) {
					t.Errorf("sysctls = %v, want %v", cfg.Linux.Sysctls, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			if tt.mutate != nil {
				tt.mutate(p)
			}
			cfg, err := PodSandboxConfig(p, tt.opts)
			if err != nil {
				t.Fatalf("PodSandboxConfig: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestPodSandboxConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(p *v1.Pod)
		wantErr string
	}{
		{"no uid", func(p *v1.Pod) { p.UID = "" }, "metadata.uid"},
		{"bad hostname", func(p *v1.Pod) { p.Spec.Hostname = "Not_A_Label" }, `spec.hostname "Not_A_Label"`},
		{"localhost seccomp", func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost}}
		}, "Localhost is not supported yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			tt.mutate(p)
			_, err := PodSandboxConfig(p, SandboxOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "default/web") {
				t.Errorf("error %q does not name the pod", err)
			}
		})
	}
}

func TestPodHostname(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name        string
		podName     string
		hostname    string
		hostNetwork bool
		want        string
		wantErr     bool
	}{
		{name: "pod name", podName: "web-0", want: "web-0"},
		{name: "spec.hostname wins", podName: "web-0", hostname: "my-host", want: "my-host"},
		{name: "63 characters kept", podName: long[:63], want: long[:63]},
		{name: "long name truncated", podName: long, want: long[:63]},
		{name: "trailing dash trimmed", podName: long[:62] + "-xyz", want: long[:62]},
		{name: "trailing dashes and dots trimmed", podName: long[:60] + "-.-.-abc", want: long[:60]},
		{name: "host network", podName: "web-0", hostNetwork: true, want: ""},
		{name: "invalid spec.hostname", podName: "web-0", hostname: "-bad-", wantErr: true},
		{name: "nothing left", podName: strings.Repeat("-", 70), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.podName}, Spec: v1.PodSpec{Hostname: tt.hostname, HostNetwork: tt.hostNetwork}}
			got, err := PodHostname(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PodHostname error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("PodHostname = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogPaths(t *testing.T) {
	if got := PodLogDir("/var/log/pods", "kube-system", "etcd-node1", "abc-123"); got != "/var/log/pods/kube-system_etcd-node1_abc-123" {
		t.Errorf("PodLogDir = %q", got)
	}
	if got := PodLogDir("", "ns", "p", "u"); got != "/var/log/pods/ns_p_u" {
		t.Errorf("PodLogDir with default root = %q", got)
	}
	tests := []struct {
		name    string
		restart int
		want    string
	}{
		{"name", 3, "name/3.log"},
		{"app", 0, "app/0.log"},
		{"sidecar", 12, "sidecar/12.log"},
	}
	for _, tt := range tests {
		if got := ContainerLogPath(tt.name, tt.restart); got != tt.want {
			t.Errorf("ContainerLogPath(%q, %d) = %q, want %q", tt.name, tt.restart, got, tt.want)
		}
	}
}
