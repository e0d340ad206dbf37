package cri

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func appOpts() ContainerOptions {
	return ContainerOptions{
		RestartCount:       3,
		PodIPs:             []string{"10.1.2.3", "fd00::3"},
		HostIPs:            []string{"192.168.1.10", "fd00::10"},
		Type:               ContainerTypeApp,
		NodeMemoryCapacity: 8 << 30,
	}
}

func envMap(envs []*runtimeapi.KeyValue) map[string]string {
	m := map[string]string{}
	for _, e := range envs {
		m[e.Key] = string(e.Value)
	}
	return m
}

func envKeys(envs []*runtimeapi.KeyValue) []string {
	keys := make([]string, len(envs))
	for i, e := range envs {
		keys[i] = e.Key
	}
	return keys
}

func TestContainerConfigBasics(t *testing.T) {
	p := testPod()
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
	c := &p.Spec.Containers[0]
	c.WorkingDir = "/srv"
	c.Stdin, c.StdinOnce, c.TTY = true, true, true
	mounts := []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/var/lib/berth/pods/x/volumes/data"}}
	opts := appOpts()
	opts.Mounts = mounts

	cfg, err := ContainerConfig(p, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metadata.Name != "nginx" || cfg.Metadata.Attempt != 3 {
		t.Errorf("metadata = %v", cfg.Metadata)
	}
	if cfg.Image.Image != "nginx:1.27" {
		t.Errorf("image = %v", cfg.Image)
	}
	if cfg.LogPath != "nginx/3.log" {
		t.Errorf("log path = %q, want nginx/3.log", cfg.LogPath)
	}
	if cfg.WorkingDir != "/srv" || !cfg.Stdin || !cfg.StdinOnce || !cfg.Tty {
		t.Errorf("workingDir/stdin/tty = %q %v %v %v", cfg.WorkingDir, cfg.Stdin, cfg.StdinOnce, cfg.Tty)
	}
	if !reflect.DeepEqual(cfg.Mounts, mounts) {
		t.Errorf("mounts = %v", cfg.Mounts)
	}
	wantLabels := map[string]string{
		LabelPodUID:        "1111-2222",
		LabelPodName:       "web",
		LabelPodNamespace:  "default",
		LabelContainerName: "nginx",
		LabelManagedBy:     ManagedByValue,
	}
	if !reflect.DeepEqual(cfg.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", cfg.Labels, wantLabels)
	}
	wantAnn := map[string]string{
		AnnotationRestartCount:             "3",
		AnnotationContainerHash:            ContainerHash(c),
		AnnotationContainerType:            ContainerTypeApp,
		AnnotationTerminationMessagePath:   "/dev/termination-log",
		AnnotationTerminationMessagePolicy: "File",
		AnnotationTerminationGrace:         "10",
	}
	if !reflect.DeepEqual(cfg.Annotations, wantAnn) {
		t.Errorf("annotations = %v, want %v", cfg.Annotations, wantAnn)
	}
	if cfg.StopSignal != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		t.Errorf("stop signal = %v", cfg.StopSignal)
	}

	// Init type, termination message settings and stop signal from the spec.
	c.TerminationMessagePath = "/tmp/msg"
	c.TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	sig := v1.Signal("SIGRTMIN+1")
	c.Lifecycle = &v1.Lifecycle{StopSignal: &sig}
	opts.Type = ContainerTypeInit
	opts.RestartCount = 0
	cfg, err = ContainerConfig(p, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Annotations[AnnotationContainerType] != "init" || cfg.Annotations[AnnotationRestartCount] != "0" ||
		cfg.Annotations[AnnotationTerminationMessagePath] != "/tmp/msg" ||
		cfg.Annotations[AnnotationTerminationMessagePolicy] != "FallbackToLogsOnError" {
		t.Errorf("annotations = %v", cfg.Annotations)
	}
	if cfg.LogPath != "nginx/0.log" {
		t.Errorf("log path = %q", cfg.LogPath)
	}
	if cfg.StopSignal != runtimeapi.Signal_SIGNAL_SIGRTMINPLUS1 {
		t.Errorf("stop signal = %v, want SIGRTMIN+1", cfg.StopSignal)
	}
}

func TestContainerConfigEnv(t *testing.T) {
	fieldRef := func(path string) *v1.EnvVarSource {
		return &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: path}}
	}
	resRef := func(res, divisor string) *v1.EnvVarSource {
		s := &v1.ResourceFieldSelector{Resource: res}
		if divisor != "" {
			s.Divisor = resource.MustParse(divisor)
		}
		return &v1.EnvVarSource{ResourceFieldRef: s}
	}
	tests := []struct {
		name        string
		env         []v1.EnvVar
		resources   v1.ResourceRequirements
		hostNetwork bool
		opts        func(o *ContainerOptions)
		want        map[string]string
		wantOrder   []string
	}{
		{
			name: "literal values in order",
			env:  []v1.EnvVar{{Name: "B", Value: "2"}, {Name: "A", Value: "1"}, {Name: "EMPTY"}},
			want: map[string]string{"B": "2", "A": "1", "EMPTY": ""}, wantOrder: []string{"B", "A", "EMPTY"},
		},
		{
			name: "expansion against earlier vars only",
			env: []v1.EnvVar{
				{Name: "HOST", Value: "db"},
				{Name: "URL", Value: "postgres://$(HOST):$(PORT)/x"},
				{Name: "PORT", Value: "5432"},
				{Name: "ESCAPED", Value: "$$(HOST)"},
				{Name: "BOTH", Value: "$$$(HOST)"},
				{Name: "UNDEF", Value: "$(NOPE)"},
			},
			want: map[string]string{"HOST": "db", "URL": "postgres://db:$(PORT)/x", "PORT": "5432",
				"ESCAPED": "$(HOST)", "BOTH": "$db", "UNDEF": "$(NOPE)"},
		},
		{
			name: "redefinition: first position, last value, earlier refs see earlier value",
			env:  []v1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "$(A)"}, {Name: "A", Value: "2"}, {Name: "C", Value: "$(A)"}},
			want: map[string]string{"A": "2", "B": "1", "C": "2"}, wantOrder: []string{"A", "B", "C"},
		},
		{
			name: "field refs",
			env: []v1.EnvVar{
				{Name: "NAME", ValueFrom: fieldRef("metadata.name")},
				{Name: "NS", ValueFrom: fieldRef("metadata.namespace")},
				{Name: "UID", ValueFrom: fieldRef("metadata.uid")},
				{Name: "NODE", ValueFrom: fieldRef("spec.nodeName")},
				{Name: "SA", ValueFrom: fieldRef("spec.serviceAccountName")},
				{Name: "POD_IP", ValueFrom: fieldRef("status.podIP")},
				{Name: "POD_IPS", ValueFrom: fieldRef("status.podIPs")},
				{Name: "HOST_IP", ValueFrom: fieldRef("status.hostIP")},
				{Name: "HOST_IPS", ValueFrom: fieldRef("status.hostIPs")},
				{Name: "APP", ValueFrom: fieldRef("metadata.labels['app']")},
				{Name: "MISSING", ValueFrom: fieldRef("metadata.labels['nope']")},
				{Name: "NOTE", ValueFrom: fieldRef("metadata.annotations['note']")},
				{Name: "V1", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
				{Name: "ADDR", Value: "$(POD_IP):8080"},
			},
			want: map[string]string{
				"NAME": "web", "NS": "default", "UID": "1111-2222", "NODE": "node-1", "SA": "sa",
				"POD_IP": "10.1.2.3", "POD_IPS": "10.1.2.3,fd00::3", "HOST_IP": "192.168.1.10", "HOST_IPS": "192.168.1.10,fd00::10",
				"APP": "web", "MISSING": "", "NOTE": "hello", "V1": "web", "ADDR": "10.1.2.3:8080",
			},
		},
		{
			name:        "host network pod without pod IPs reports host IPs",
			hostNetwork: true,
			opts:        func(o *ContainerOptions) { o.PodIPs = nil },
			env:         []v1.EnvVar{{Name: "POD_IP", ValueFrom: fieldRef("status.podIP")}, {Name: "POD_IPS", ValueFrom: fieldRef("status.podIPs")}},
			want:        map[string]string{"POD_IP": "192.168.1.10", "POD_IPS": "192.168.1.10,fd00::10"},
		},
		{
			name: "no pod IPs yet",
			opts: func(o *ContainerOptions) { o.PodIPs = nil },
			env:  []v1.EnvVar{{Name: "POD_IP", ValueFrom: fieldRef("status.podIP")}},
			want: map[string]string{"POD_IP": ""},
		},
		{
			name: "resource field refs with set values",
			resources: v1.ResourceRequirements{
				Requests: rl("cpu", "250m", "memory", "100Mi"),
				Limits:   rl("cpu", "1500m", "memory", "200Mi"),
			},
			env: []v1.EnvVar{
				{Name: "CPU_LIMIT", ValueFrom: resRef("limits.cpu", "")},
				{Name: "CPU_LIMIT_M", ValueFrom: resRef("limits.cpu", "1m")},
				{Name: "CPU_REQUEST", ValueFrom: resRef("requests.cpu", "")},
				{Name: "CPU_REQUEST_M", ValueFrom: resRef("requests.cpu", "1m")},
				{Name: "CPU_REQUEST_100M", ValueFrom: resRef("requests.cpu", "100m")},
				{Name: "MEM_LIMIT", ValueFrom: resRef("limits.memory", "")},
				{Name: "MEM_LIMIT_MI", ValueFrom: resRef("limits.memory", "1Mi")},
				{Name: "MEM_LIMIT_GI", ValueFrom: resRef("limits.memory", "1Gi")},
				{Name: "MEM_REQUEST_K", ValueFrom: resRef("requests.memory", "1k")},
			},
			want: map[string]string{
				"CPU_LIMIT": "2", "CPU_LIMIT_M": "1500", "CPU_REQUEST": "1", "CPU_REQUEST_M": "250", "CPU_REQUEST_100M": "3",
				"MEM_LIMIT": "209715200", "MEM_LIMIT_MI": "200", "MEM_LIMIT_GI": "1", "MEM_REQUEST_K": "104858",
			},
		},
		{
			name:      "resource field refs without limits",
			resources: v1.ResourceRequirements{Requests: rl("memory", "100Mi")},
			env: []v1.EnvVar{
				{Name: "CPU_LIMIT", ValueFrom: resRef("limits.cpu", "")},
				{Name: "CPU_REQUEST", ValueFrom: resRef("requests.cpu", "")},
				{Name: "MEM_LIMIT", ValueFrom: resRef("limits.memory", "1Mi")},
			},
			want: map[string]string{
				"CPU_LIMIT":   fmt.Sprint(runtime.NumCPU()), // node capacity
				"CPU_REQUEST": "0",
				"MEM_LIMIT":   "8192", // node memory capacity
			},
		},
		{
			name:      "memory limit unset, node capacity unknown: the request stands in",
			resources: v1.ResourceRequirements{Requests: rl("memory", "100Mi")},
			opts:      func(o *ContainerOptions) { o.NodeMemoryCapacity = 0 },
			env:       []v1.EnvVar{{Name: "MEM_LIMIT", ValueFrom: resRef("limits.memory", "1Mi")}},
			want:      map[string]string{"MEM_LIMIT": "100"},
		},
		{
			name:      "request unset: defaults to the limit",
			resources: v1.ResourceRequirements{Limits: rl("cpu", "2", "memory", "1Gi")},
			env: []v1.EnvVar{
				{Name: "CPU_REQUEST", ValueFrom: resRef("requests.cpu", "1m")},
				{Name: "MEM_REQUEST", ValueFrom: resRef("requests.memory", "1Mi")},
			},
			want: map[string]string{"CPU_REQUEST": "2000", "MEM_REQUEST": "1024"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			p.Spec.HostNetwork = tt.hostNetwork
			c := &p.Spec.Containers[0]
			c.Env = tt.env
			c.Resources = tt.resources
			opts := appOpts()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			cfg, err := ContainerConfig(p, c, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := envMap(cfg.Envs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("env = %v\nwant  %v", got, tt.want)
			}
			if tt.wantOrder != nil {
				if got := envKeys(cfg.Envs); !reflect.DeepEqual(got, tt.wantOrder) {
					t.Errorf("env order = %v, want %v", got, tt.wantOrder)
				}
			}
		})
	}
}

func TestContainerConfigCommandExpansion(t *testing.T) {
	tests := []struct {
		name              string
		command, args     []string
		wantCmd, wantArgs []string
	}{
		{"none", nil, nil, nil, nil},
		{"plain", []string{"/bin/sh", "-c"}, []string{"echo hi"}, []string{"/bin/sh", "-c"}, []string{"echo hi"}},
		{"expanded", []string{"/app", "--listen=$(POD_IP):$(PORT)"}, []string{"--name=$(NAME)"},
			[]string{"/app", "--listen=10.1.2.3:8080"}, []string{"--name=web"}},
		{"escaped and undefined", []string{"echo", "$$(PORT)", "$(UNDEFINED)", "$$$$"}, []string{"$(LATE)"},
			[]string{"echo", "$(PORT)", "$(UNDEFINED)", "$$"}, []string{"late"}},
		{"shell variables untouched", []string{"sh", "-c", "echo $HOME ${PORT}"}, nil,
			[]string{"sh", "-c", "echo $HOME ${PORT}"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			c := &p.Spec.Containers[0]
			c.Command, c.Args = tt.command, tt.args
			c.Env = []v1.EnvVar{
				{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "PORT", Value: "8080"},
				{Name: "NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "LATE", Value: "late"}, // command and args see every variable
			}
			cfg, err := ContainerConfig(p, c, appOpts())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Command, tt.wantCmd) || !reflect.DeepEqual(cfg.Args, tt.wantArgs) {
				t.Errorf("command = %q args = %q, want %q %q", cfg.Command, cfg.Args, tt.wantCmd, tt.wantArgs)
			}
			// The pod spec is not modified.
			if !reflect.DeepEqual(c.Command, tt.command) {
				t.Errorf("spec command changed to %q", c.Command)
			}
		})
	}
}

func TestContainerConfigResources(t *testing.T) {
	tests := []struct {
		name                  string
		res                   v1.ResourceRequirements
		shares, period, quota int64
		memory, oom           int64
	}{
		{name: "best effort", shares: 2, oom: 1000},
		{name: "burstable request", res: v1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "1Gi")}, shares: 102, oom: 875},
		{name: "guaranteed", res: v1.ResourceRequirements{Limits: rl("cpu", "500m", "memory", "256Mi")},
			shares: 512, period: 100000, quota: 50000, memory: 256 << 20, oom: -997},
		{name: "cpu limit and lower request", res: v1.ResourceRequirements{Requests: rl("cpu", "250m"), Limits: rl("cpu", "1")},
			shares: 256, period: 100000, quota: 100000, oom: 999},
		{name: "minimum shares", res: v1.ResourceRequirements{Requests: rl("cpu", "1m")}, shares: 2, oom: 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			c := &p.Spec.Containers[0]
			c.Resources = tt.res
			cfg, err := ContainerConfig(p, c, appOpts())
			if err != nil {
				t.Fatal(err)
			}
			r := cfg.Linux.Resources
			got := []int64{r.CpuShares, r.CpuPeriod, r.CpuQuota, r.MemoryLimitInBytes, r.OomScoreAdj}
			want := []int64{tt.shares, tt.period, tt.quota, tt.memory, tt.oom}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("shares, period, quota, memory, oom = %v, want %v", got, want)
			}
		})
	}
}

func TestContainerConfigSecurityContext(t *testing.T) {
	tests := []struct {
		name  string
		pod   func(p *v1.Pod)
		sc    *v1.SecurityContext
		check func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
				if sc.Privileged || sc.ReadonlyRootfs || sc.NoNewPrivs || sc.RunAsUser != nil || sc.Capabilities != nil {
					t.Errorf("unexpected settings: %v", sc)
				}
				if !reflect.DeepEqual(sc.MaskedPaths, defaultMaskedPaths) || !reflect.DeepEqual(sc.ReadonlyPaths, defaultReadonlyPaths) {
					t.Errorf("masked/readonly paths = %v / %v, want the defaults", sc.MaskedPaths, sc.ReadonlyPaths)
				}
				ns := sc.NamespaceOptions
				if ns.Network != runtimeapi.NamespaceMode_POD || ns.Pid != runtimeapi.NamespaceMode_CONTAINER || ns.Ipc != runtimeapi.NamespaceMode_POD {
					t.Errorf("namespaces = %v", ns)
				}
			},
		},
		{
			name: "container settings",
			sc: &v1.SecurityContext{
				RunAsUser:                ptr.To[int64](1001),
				RunAsGroup:               ptr.To[int64](1002),
				ReadOnlyRootFilesystem:   ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN", "CAP_SYS_TIME"}, Drop: []v1.Capability{"ALL"}},
				SeccompProfile:           &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined},
			},
			pod: func(p *v1.Pod) {
				p.Spec.SecurityContext = &v1.PodSecurityContext{
					RunAsUser:          ptr.To[int64](500),
					SupplementalGroups: []int64{7},
					FSGroup:            ptr.To[int64](8),
					SeccompProfile:     &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
				}
			},
			check: func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
				if sc.RunAsUser.GetValue() != 1001 || sc.RunAsGroup.GetValue() != 1002 {
					t.Errorf("runAs = %v/%v, want the container's 1001/1002", sc.RunAsUser, sc.RunAsGroup)
				}
				if !sc.ReadonlyRootfs || !sc.NoNewPrivs {
					t.Errorf("readonlyRootfs=%v noNewPrivs=%v", sc.ReadonlyRootfs, sc.NoNewPrivs)
				}
				wantCaps := &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "CAP_SYS_TIME"}, DropCapabilities: []string{"ALL"}}
				if sc.Capabilities.String() != wantCaps.String() {
					t.Errorf("capabilities = %v, want %v", sc.Capabilities, wantCaps)
				}
				if !reflect.DeepEqual(sc.SupplementalGroups, []int64{7, 8}) {
					t.Errorf("supplemental groups = %v", sc.SupplementalGroups)
				}
				if sc.Seccomp.GetProfileType() != runtimeapi.SecurityProfile_Unconfined {
					t.Errorf("seccomp = %v, want the container's Unconfined", sc.Seccomp)
				}
			},
		},
		{
			name: "pod runAsUser inherited, escalation allowed",
			pod: func(p *v1.Pod) {
				p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](500), RunAsGroup: ptr.To[int64](600)}
			},
			sc: &v1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)},
			check: func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
				if sc.RunAsUser.GetValue() != 500 || sc.RunAsGroup.GetValue() != 600 {
					t.Errorf("runAs = %v/%v, want the pod's 500/600", sc.RunAsUser, sc.RunAsGroup)
				}
				if sc.NoNewPrivs {
					t.Error("noNewPrivs with allowPrivilegeEscalation=true")
				}
			},
		},
		{
			name: "privileged: no masked paths",
			sc:   &v1.SecurityContext{Privileged: ptr.To(true)},
			check: func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
				if !sc.Privileged || len(sc.MaskedPaths) != 0 || len(sc.ReadonlyPaths) != 0 {
					t.Errorf("privileged=%v masked=%v readonly=%v", sc.Privileged, sc.MaskedPaths, sc.ReadonlyPaths)
				}
			},
		},
		{
			name: "unmasked procMount",
			sc:   &v1.SecurityContext{ProcMount: ptr.To(v1.UnmaskedProcMount)},
			check: func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
				if len(sc.MaskedPaths) != 0 || len(sc.ReadonlyPaths) != 0 {
					t.Errorf("masked=%v readonly=%v", sc.MaskedPaths, sc.ReadonlyPaths)
				}
			},
		},
		{
			name: "host namespaces",
			pod:  func(p *v1.Pod) { p.Spec.HostNetwork, p.Spec.HostPID, p.Spec.HostIPC = true, true, true },
			check: func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
				ns := sc.NamespaceOptions
				if ns.Network != runtimeapi.NamespaceMode_NODE || ns.Pid != runtimeapi.NamespaceMode_NODE || ns.Ipc != runtimeapi.NamespaceMode_NODE {
					t.Errorf("namespaces = %v", ns)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			if tt.pod != nil {
				tt.pod(p)
			}
			c := &p.Spec.Containers[0]
			c.SecurityContext = tt.sc
			cfg, err := ContainerConfig(p, c, appOpts())
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg.Linux.SecurityContext)
		})
	}
}

func TestContainerConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *v1.Container, o *ContainerOptions)
		wantErr string
	}{
		{"configMapKeyRef to a missing ConfigMap", func(c *v1.Container, _ *ContainerOptions) {
			c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "k"}}}}
		}, `env X: configmap "cm" not found`},
		{"secretKeyRef to a missing key", func(c *v1.Container, o *ContainerOptions) {
			o.Secrets = map[string]map[string][]byte{"db": {"user": []byte("u")}}
			c.Env = []v1.EnvVar{{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "db"}, Key: "password"}}}}
		}, "env PASSWORD: couldn't find key password in Secret default/db"},
		{"configMapKeyRef to a missing key", func(c *v1.Container, o *ContainerOptions) {
			o.ConfigMaps = map[string]map[string]string{"cm": {}}
			c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "k"}}}}
		}, "env X: couldn't find key k in ConfigMap default/cm"},
		{"envFrom a missing ConfigMap", func(c *v1.Container, _ *ContainerOptions) {
			c.EnvFrom = []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}}
		}, `envFrom[0]: configmap "cm" not found`},
		{"envFrom a missing Secret", func(c *v1.Container, _ *ContainerOptions) {
			c.EnvFrom = []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "s"}}}}
		}, `envFrom[0]: secret "s" not found`},
		{"envFrom without a source", func(c *v1.Container, _ *ContainerOptions) {
			c.EnvFrom = []v1.EnvFromSource{{Prefix: "X_"}}
		}, "envFrom[0]: no source"},
		{"unknown field path", func(c *v1.Container, _ *ContainerOptions) {
			c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.schedulerName"}}}}
		}, "env X: fieldRef spec.schedulerName: unsupported field path"},
		{"unknown resource", func(c *v1.Container, _ *ContainerOptions) {
			c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.gpu"}}}}
		}, "resourceFieldRef limits.gpu: unsupported resource"},
		{"unknown container in resourceFieldRef", func(c *v1.Container, _ *ContainerOptions) {
			c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "other", Resource: "limits.cpu"}}}}
		}, `no container "other"`},
		{"runAsNonRoot with root", func(c *v1.Container, _ *ContainerOptions) {
			c.SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](0)}
		}, "runAsNonRoot"},
		{"bad type", func(_ *v1.Container, o *ContainerOptions) { o.Type = "" }, "container type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			c := &p.Spec.Containers[0]
			opts := appOpts()
			tt.mutate(c, &opts)
			_, err := ContainerConfig(p, c, opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), `pod default/web container "nginx"`) {
				t.Errorf("error %q does not say where", err)
			}
		})
	}
}

// TestContainerEnvFromConfigMapsAndSecrets: envFrom first (sorted keys, prefix, invalid names
// skipped), then env, which overrides and may refer to them; optional references to missing objects
// or keys set nothing.
func TestContainerEnvFromConfigMapsAndSecrets(t *testing.T) {
	p := testPod()
	c := &p.Spec.Containers[0]
	yes := true
	ref := func(name string) v1.LocalObjectReference { return v1.LocalObjectReference{Name: name} }
	c.EnvFrom = []v1.EnvFromSource{
		{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: ref("app")}},
		{Prefix: "DB_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: ref("db")}},
		{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: ref("absent"), Optional: &yes}},
	}
	c.Env = []v1.EnvVar{
		{Name: "MODE", Value: "override-$(LEVEL)"},
		{Name: "KEY", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("app"), Key: "LEVEL"}}},
		{Name: "TOKEN", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("db"), Key: "password"}}},
		{Name: "GONE", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("nope"), Key: "k", Optional: &yes}}},
		{Name: "NOKEY", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("app"), Key: "missing", Optional: &yes}}},
	}
	c.Command = []string{"run", "$(DB_user)"}
	opts := appOpts()
	opts.ConfigMaps = map[string]map[string]string{"app": {"MODE": "fast", "LEVEL": "3", "bad=name": "x"}}
	opts.Secrets = map[string]map[string][]byte{"db": {"user": []byte("admin"), "password": []byte("s3cret")}}
	cfg, err := ContainerConfig(p, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"LEVEL": "3", "MODE": "override-3", "DB_password": "s3cret", "DB_user": "admin", "KEY": "3", "TOKEN": "s3cret"}
	got := envMap(cfg.Envs)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"GONE", "NOKEY", "bad=name"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s is set: %q", k, got[k])
		}
	}
	wantOrder := []string{"LEVEL", "MODE", "DB_password", "DB_user", "KEY", "TOKEN"}
	if keys := envKeys(cfg.Envs); !reflect.DeepEqual(keys, wantOrder) {
		t.Errorf("order = %v, want %v", keys, wantOrder)
	}
	if !reflect.DeepEqual(cfg.Command, []string{"run", "admin"}) {
		t.Errorf("command = %v", cfg.Command)
	}
}

func TestContainerConfigPreStopAnnotation(t *testing.T) {
	p := testPod()
	c := &p.Spec.Containers[0]
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}}
	cfg, err := ContainerConfig(p, c, appOpts())
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Annotations[AnnotationPreStopHandler]; got != `{"sleep":{"seconds":5}}` {
		t.Errorf("preStop annotation = %q", got)
	}
}
