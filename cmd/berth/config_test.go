package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFile(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		flags   []string
		wantErr string
		check   func(t *testing.T, c Configuration)
	}{
		{
			name: "defaults are the kubelet's",
			body: "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n",
			check: func(t *testing.T, c Configuration) {
				if c.FileCheckFrequency.Duration != 20*time.Second || c.RuntimeRequestTimeout.Duration != 2*time.Minute ||
					c.MaxPods != 110 || c.PodLogsDir != "/var/log/pods" || c.SyncFrequency.Duration != time.Minute {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "fields are read",
			body: "staticPodPath: /etc/berth/manifests\nfileCheckFrequency: 5s\ncontainerRuntimeEndpoint: unix:///x.sock\nruntimeRequestTimeout: 30s\npodLogsDir: /logs\nmaxPods: 20\nclusterDNS: [10.0.0.10]\nclusterDomain: cluster.local\n",
			check: func(t *testing.T, c Configuration) {
				if c.StaticPodPath != "/etc/berth/manifests" || c.FileCheckFrequency.Duration != 5*time.Second ||
					c.ContainerRuntimeEndpoint != "unix:///x.sock" || c.RuntimeRequestTimeout.Duration != 30*time.Second ||
					c.PodLogsDir != "/logs" || c.MaxPods != 20 || c.ClusterDNS[0] != "10.0.0.10" || c.ClusterDomain != "cluster.local" {
					t.Errorf("read: %+v", c)
				}
			},
		},
		{
			name:  "flags override the file",
			body:  "staticPodPath: /from/file\ncontainerRuntimeEndpoint: unix:///file.sock\n",
			flags: []string{"--pod-manifest-path=/from/flag", "--container-runtime-endpoint=unix:///flag.sock"},
			check: func(t *testing.T, c Configuration) {
				if c.StaticPodPath != "/from/flag" || c.ContainerRuntimeEndpoint != "unix:///flag.sock" {
					t.Errorf("override: %+v", c)
				}
			},
		},
		{
			name: "eviction and image GC defaults are the kubelet's",
			body: "kind: KubeletConfiguration\n",
			check: func(t *testing.T, c Configuration) {
				if c.EvictionHard["memory.available"] != "100Mi" || c.EvictionHard["nodefs.available"] != "10%" ||
					c.EvictionHard["nodefs.inodesFree"] != "5%" || c.EvictionHard["imagefs.available"] != "15%" ||
					c.EvictionPressureTransitionPeriod.Duration != 5*time.Minute || *c.ImageGCHighThresholdPercent != 85 ||
					*c.ImageGCLowThresholdPercent != 80 || c.ImageMinimumGCAge.Duration != 2*time.Minute {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "eviction fields are read; a given evictionHard replaces the defaults",
			body: "evictionHard:\n  memory.available: 1Gi\n  pid.available: 10%\nevictionPressureTransitionPeriod: 30s\nimageGCHighThresholdPercent: 90\nimageGCLowThresholdPercent: 70\nimageMinimumGCAge: 1h\n",
			check: func(t *testing.T, c Configuration) {
				if len(c.EvictionHard) != 2 || c.EvictionHard["memory.available"] != "1Gi" || c.EvictionHard["pid.available"] != "10%" ||
					c.EvictionPressureTransitionPeriod.Duration != 30*time.Second || *c.ImageGCHighThresholdPercent != 90 ||
					*c.ImageGCLowThresholdPercent != 70 || c.ImageMinimumGCAge.Duration != time.Hour {
					t.Errorf("read: %+v", c)
				}
			},
		},
		{name: "unknown eviction signal", body: "evictionHard:\n  memory.free: 1Gi\n", wantErr: `evictionHard: unknown signal "memory.free"`},
		{name: "bad eviction percentage", body: "evictionHard:\n  nodefs.available: 150%\n", wantErr: `evictionHard: nodefs.available: "150%" is not a percentage`},
		{name: "image GC low above high", body: "imageGCHighThresholdPercent: 70\n", wantErr: "imageGCLowThresholdPercent (80) must not be above imageGCHighThresholdPercent (70)"},
		{name: "soft eviction is not supported", body: "evictionSoft:\n  memory.available: 1Gi\n", wantErr: `unknown field "evictionSoft"`},
		{name: "unknown field is named", body: "staticPodPath: /x\nstaticPodPth: /y\n", wantErr: `unknown field "staticPodPth"`},
		{name: "unsupported kubelet field is named", body: "cpuManagerPolicy: static\n", wantErr: `unknown field "cpuManagerPolicy"`},
		{
			name: "cgroup defaults are the kubelet's",
			body: "kind: KubeletConfiguration\n",
			check: func(t *testing.T, c Configuration) {
				if c.CgroupDriver != "cgroupfs" || c.CgroupRoot != "/" || !*c.CgroupsPerQOS || *c.PodPidsLimit != -1 ||
					len(c.EnforceNodeAllocatable) != 1 || c.EnforceNodeAllocatable[0] != "pods" {
					t.Errorf("cgroup defaults: %+v", c)
				}
			},
		},
		{
			name:  "cgroup fields are read; --cgroup-driver and --cgroup-root win",
			body:  "cgroupDriver: cgroupfs\ncgroupRoot: /file\ncgroupsPerQOS: false\npodPidsLimit: 1024\nenforceNodeAllocatable: []\n",
			flags: []string{"--cgroup-driver=systemd", "--cgroup-root=/berth.slice"},
			check: func(t *testing.T, c Configuration) {
				if c.CgroupDriver != "systemd" || c.CgroupRoot != "/berth.slice" || *c.CgroupsPerQOS || *c.PodPidsLimit != 1024 ||
					len(c.EnforceNodeAllocatable) != 0 {
					t.Errorf("cgroup fields: %+v", c)
				}
			},
		},
		{name: "unknown cgroup driver", body: "cgroupDriver: lxc\n", wantErr: `cgroupDriver: "lxc": want cgroupfs or systemd`},
		{name: "relative cgroupRoot", body: "cgroupRoot: kubepods\n", wantErr: "cgroupRoot"},
		{name: "systemd cgroupRoot must be a slice", body: "cgroupDriver: systemd\ncgroupRoot: /berth\n", wantErr: "every component must be a slice"},
		{name: "podPidsLimit below -1", body: "podPidsLimit: -2\n", wantErr: "podPidsLimit: must be -1"},
		{name: "enforcing pods needs cgroupsPerQOS", body: "cgroupsPerQOS: false\n", wantErr: `enforceNodeAllocatable: "pods" needs cgroupsPerQOS`},
		{name: "system-reserved enforcement is not implemented", body: "enforceNodeAllocatable: [pods, system-reserved]\n", wantErr: `"system-reserved" is not implemented`},
		{name: "unknown enforcement", body: "enforceNodeAllocatable: [podz]\n", wantErr: `unknown value "podz"`},
		{name: "wrong kind", body: "kind: Pod\n", wantErr: `kind is "Pod"`},
		{name: "bad duration", body: "fileCheckFrequency: often\n", wantErr: "often"},
		{
			name: "event limits: kubelet defaults, then read",
			body: "eventBurst: 7\n",
			check: func(t *testing.T, c Configuration) {
				if *c.EventRecordQPS != 50 || c.EventBurst != 7 {
					t.Errorf("eventRecordQPS %d eventBurst %d, want 50 7", *c.EventRecordQPS, c.EventBurst)
				}
			},
		},
		{name: "negative eventRecordQPS", body: "eventRecordQPS: -1\n", wantErr: "eventRecordQPS: must not be negative"},
		{
			name: "contentType: the kubelet's default, protobuf",
			body: "kind: KubeletConfiguration\n",
			check: func(t *testing.T, c Configuration) {
				if c.ContentType != "application/vnd.kubernetes.protobuf" {
					t.Errorf("contentType %q, want protobuf", c.ContentType)
				}
			},
		},
		{
			name: "contentType JSON is read",
			body: "contentType: application/json\n",
			check: func(t *testing.T, c Configuration) {
				if c.ContentType != "application/json" {
					t.Errorf("contentType %q, want application/json", c.ContentType)
				}
			},
		},
		{name: "unknown contentType", body: "contentType: text/yaml\n", wantErr: `contentType: must be application/vnd.kubernetes.protobuf or application/json, got "text/yaml"`},
		{name: "negative maxPods", body: "maxPods: -1\n", wantErr: "maxPods: must not be negative"},
		{name: "relative podLogsDir", body: "podLogsDir: logs\n", wantErr: "podLogsDir: must be an absolute path"},
		{
			name: "log rotation and shutdown defaults are the kubelet's",
			body: "kind: KubeletConfiguration\n",
			check: func(t *testing.T, c Configuration) {
				if c.ContainerLogMaxSize != "10Mi" || c.ContainerLogMaxFiles != 5 || c.ContainerLogMonitorInterval.Duration != 10*time.Second ||
					c.ShutdownGracePeriod.Duration != 0 || c.ShutdownGracePeriodCriticalPods.Duration != 0 {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "log rotation and shutdown fields are read",
			body: "containerLogMaxSize: 1Mi\ncontainerLogMaxFiles: 3\ncontainerLogMonitorInterval: 3s\nshutdownGracePeriod: 30s\nshutdownGracePeriodCriticalPods: 10s\n",
			check: func(t *testing.T, c Configuration) {
				if c.ContainerLogMaxSize != "1Mi" || c.ContainerLogMaxFiles != 3 || c.ContainerLogMonitorInterval.Duration != 3*time.Second ||
					c.ShutdownGracePeriod.Duration != 30*time.Second || c.ShutdownGracePeriodCriticalPods.Duration != 10*time.Second {
					t.Errorf("read: %+v", c)
				}
			},
		},
		{name: "containerLogMaxSize not a quantity", body: "containerLogMaxSize: big\n", wantErr: `containerLogMaxSize: "big" is not a quantity`},
		{name: "containerLogMaxSize zero", body: "containerLogMaxSize: \"0\"\n", wantErr: "containerLogMaxSize: must be positive"},
		{name: "containerLogMaxFiles 1", body: "containerLogMaxFiles: 1\n", wantErr: "containerLogMaxFiles: must be at least 2"},
		{name: "containerLogMonitorInterval short", body: "containerLogMonitorInterval: 1s\n", wantErr: "containerLogMonitorInterval: must be at least 3s"},
		{name: "critical grace longer than grace", body: "shutdownGracePeriod: 10s\nshutdownGracePeriodCriticalPods: 20s\n", wantErr: "shutdownGracePeriodCriticalPods: 20s must not be longer than shutdownGracePeriod (10s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			c, err := parseDaemonArgs(append([]string{"--config=" + path}, tt.flags...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("err = %v, want it to name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c.config)
		})
	}
}

func TestConfigFileMissing(t *testing.T) {
	_, err := parseDaemonArgs([]string{"--config=/does/not/exist.yaml"})
	if err == nil || !strings.Contains(err.Error(), "/does/not/exist.yaml") {
		t.Fatalf("err = %v", err)
	}
}

// TestKubepodsResources: kubepods gets capacity minus kubeReserved and systemReserved when pods
// are enforced (the Node's allocatable is that minus the hard eviction threshold), the capacity
// otherwise.
func TestKubepodsResources(t *testing.T) {
	capacity := v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse("2"),
		v1.ResourceMemory: resource.MustParse("8Gi"),
		"pid":             resource.MustParse("32768"),
	}
	c := defaultConfiguration()
	c.KubeReserved = map[string]string{"cpu": "200m", "memory": "1Gi"}
	c.SystemReserved = map[string]string{"cpu": "300m", "pid": "768", "memory": "9Gi"}
	got := kubepodsResources(&c, capacity)
	if cpu := got[v1.ResourceCPU]; cpu.MilliValue() != 1500 {
		t.Errorf("cpu = %s, want 1500m", cpu.String())
	}
	if mem := got[v1.ResourceMemory]; mem.Value() != 0 {
		t.Errorf("memory = %s, want 0 (reservations above capacity clamp at zero)", mem.String())
	}
	if pid := got["pid"]; pid.Value() != 32000 {
		t.Errorf("pid = %s, want 32000", pid.String())
	}
	c.EnforceNodeAllocatable = []string{"none"}
	got = kubepodsResources(&c, capacity)
	if cpu := got[v1.ResourceCPU]; cpu.MilliValue() != 2000 {
		t.Errorf("not enforced: cpu = %s, want the capacity", cpu.String())
	}
}
