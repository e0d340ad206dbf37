package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/cgroups"
	"github.com/berth-dev/berth/eviction"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Configuration is Berth's config file: a subset of the kubelet's KubeletConfiguration
// (kubelet.config.k8s.io/v1beta1), with the same field names, defaults and meaning. A field Berth
// does not implement is an error that names it, never silently ignored.
type Configuration struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`

	StaticPodPath            string          `json:"staticPodPath,omitempty"`
	FileCheckFrequency       metav1.Duration `json:"fileCheckFrequency,omitempty"`
	SyncFrequency            metav1.Duration `json:"syncFrequency,omitempty"`
	ContainerRuntimeEndpoint string          `json:"containerRuntimeEndpoint,omitempty"`
	RuntimeRequestTimeout    metav1.Duration `json:"runtimeRequestTimeout,omitempty"`
	PodLogsDir               string          `json:"podLogsDir,omitempty"`
	MaxPods                  int32           `json:"maxPods,omitempty"`
	ResolverConfig           *string         `json:"resolvConf,omitempty"`
	ClusterDNS               []string        `json:"clusterDNS,omitempty"`
	ClusterDomain            string          `json:"clusterDomain,omitempty"`

	// Container log rotation (docs/node-server.md).
	ContainerLogMaxSize         string          `json:"containerLogMaxSize,omitempty"`
	ContainerLogMaxFiles        int32           `json:"containerLogMaxFiles,omitempty"`
	ContainerLogMonitorInterval metav1.Duration `json:"containerLogMonitorInterval,omitempty"`

	// Graceful node shutdown (docs/systemd.md); 0 = off.
	ShutdownGracePeriod             metav1.Duration `json:"shutdownGracePeriod,omitempty"`
	ShutdownGracePeriodCriticalPods metav1.Duration `json:"shutdownGracePeriodCriticalPods,omitempty"`

	// Cgroups (docs/cgroups.md).
	CgroupDriver           string   `json:"cgroupDriver,omitempty"`
	CgroupRoot             string   `json:"cgroupRoot,omitempty"`
	CgroupsPerQOS          *bool    `json:"cgroupsPerQOS,omitempty"`
	PodPidsLimit           *int64   `json:"podPidsLimit,omitempty"`
	EnforceNodeAllocatable []string `json:"enforceNodeAllocatable,omitempty"`

	// Cluster mode (with --kubeconfig).
	NodeStatusUpdateFrequency metav1.Duration   `json:"nodeStatusUpdateFrequency,omitempty"`
	NodeStatusReportFrequency metav1.Duration   `json:"nodeStatusReportFrequency,omitempty"`
	NodeLeaseDurationSeconds  int32             `json:"nodeLeaseDurationSeconds,omitempty"`
	KubeAPIQPS                *float32          `json:"kubeAPIQPS,omitempty"`
	KubeAPIBurst              int32             `json:"kubeAPIBurst,omitempty"`
	EventRecordQPS            *int32            `json:"eventRecordQPS,omitempty"`
	EventBurst                int32             `json:"eventBurst,omitempty"`
	ContentType               string            `json:"contentType,omitempty"`
	RegisterWithTaints        []v1.Taint        `json:"registerWithTaints,omitempty"`
	KubeReserved              map[string]string `json:"kubeReserved,omitempty"`
	SystemReserved            map[string]string `json:"systemReserved,omitempty"`
	EvictionHard              map[string]string `json:"evictionHard,omitempty"`

	// Eviction and image garbage collection (docs/eviction.md), in both modes.
	EvictionPressureTransitionPeriod metav1.Duration `json:"evictionPressureTransitionPeriod,omitempty"`
	ImageGCHighThresholdPercent      *int32          `json:"imageGCHighThresholdPercent,omitempty"`
	ImageGCLowThresholdPercent       *int32          `json:"imageGCLowThresholdPercent,omitempty"`
	ImageMinimumGCAge                metav1.Duration `json:"imageMinimumGCAge,omitempty"`

	// Node server (cluster mode; server_config.go, docs/node-server.md).
	Address            string                 `json:"address,omitempty"`
	Port               int32                  `json:"port,omitempty"`
	HealthzBindAddress string                 `json:"healthzBindAddress,omitempty"`
	HealthzPort        *int32                 `json:"healthzPort,omitempty"`
	ReadOnlyPort       int32                  `json:"readOnlyPort,omitempty"`
	TLSCertFile        string                 `json:"tlsCertFile,omitempty"`
	TLSPrivateKeyFile  string                 `json:"tlsPrivateKeyFile,omitempty"`
	Authentication     *KubeletAuthentication `json:"authentication,omitempty"`
	Authorization      *KubeletAuthorization  `json:"authorization,omitempty"`
	// EnableProfilingHandler serves /debug/pprof on the node server (true, as the kubelet).
	EnableProfilingHandler *bool `json:"enableProfilingHandler,omitempty"`

	// Logging is the kubelet's logging section, of which Berth reads verbosity (docs/systemd.md).
	Logging *LoggingConfiguration `json:"logging,omitempty"`
}

// LoggingConfiguration is the part of the kubelet's logging configuration Berth implements:
// verbosity 4 and above logs at debug level, below it at info. --log-level wins over it; SIGHUP
// applies a change to it without a restart.
type LoggingConfiguration struct {
	Verbosity *uint32 `json:"verbosity,omitempty"`
}

const (
	configKind       = "KubeletConfiguration"
	configAPIVersion = "kubelet.config.k8s.io/v1beta1"
)

// The content types of contentType: what Berth's API clients send and ask for where a request's
// body is an API object (Events; pods, nodes and leases always speak protobuf, as client-go's
// generated clients). The kubelet's default is protobuf too.
const (
	contentTypeProtobuf = "application/vnd.kubernetes.protobuf"
	contentTypeJSON     = "application/json"
)

// defaultConfiguration holds the kubelet's defaults for the fields Berth supports.
func defaultConfiguration() Configuration {
	resolv := "/etc/resolv.conf"
	perQOS := true
	pidsLimit := int64(-1)
	c := Configuration{
		CgroupDriver:                     "cgroupfs",
		CgroupRoot:                       "/",
		CgroupsPerQOS:                    &perQOS,
		PodPidsLimit:                     &pidsLimit,
		EnforceNodeAllocatable:           []string{"pods"},
		FileCheckFrequency:               metav1.Duration{Duration: 20 * time.Second},
		SyncFrequency:                    metav1.Duration{Duration: time.Minute},
		ContainerRuntimeEndpoint:         "unix:///run/containerd/containerd.sock",
		RuntimeRequestTimeout:            metav1.Duration{Duration: 2 * time.Minute},
		PodLogsDir:                       "/var/log/pods",
		MaxPods:                          110,
		ContainerLogMaxSize:              "10Mi",
		ContainerLogMaxFiles:             5,
		ContainerLogMonitorInterval:      metav1.Duration{Duration: 10 * time.Second},
		ResolverConfig:                   &resolv,
		NodeStatusUpdateFrequency:        metav1.Duration{Duration: 10 * time.Second},
		NodeStatusReportFrequency:        metav1.Duration{Duration: 5 * time.Minute},
		NodeLeaseDurationSeconds:         40,
		KubeAPIQPS:                       &defaultQPS,
		KubeAPIBurst:                     100,
		EventRecordQPS:                   &defaultEventQPS,
		EventBurst:                       100,
		ContentType:                      contentTypeProtobuf,
		EvictionHard:                     eviction.DefaultEvictionHard(),
		EvictionPressureTransitionPeriod: metav1.Duration{Duration: eviction.DefaultPressureTransitionPeriod},
		ImageGCHighThresholdPercent:      &defaultImageGCHigh,
		ImageGCLowThresholdPercent:       &defaultImageGCLow,
		ImageMinimumGCAge:                metav1.Duration{Duration: eviction.DefaultImageMinimumGCAge},
	}
	defaultServerConfiguration(&c)
	return c
}

var (
	defaultQPS      float32 = 50
	defaultEventQPS int32   = 50
)

var (
	defaultImageGCHigh int32 = eviction.DefaultImageGCHighThresholdPercent
	defaultImageGCLow  int32 = eviction.DefaultImageGCLowThresholdPercent
)

// loadConfigFile reads path over the defaults. Unknown fields and a wrong kind are errors that name
// the file and the field.
func loadConfigFile(path string, into *Configuration) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var c Configuration
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return fmt.Errorf("config file %s: %s", path, cleanYAMLError(err))
	}
	if c.Kind != "" && c.Kind != configKind {
		return fmt.Errorf("config file %s: kind is %q, want %q", path, c.Kind, configKind)
	}
	if c.APIVersion != "" && c.APIVersion != configAPIVersion {
		return fmt.Errorf("config file %s: apiVersion is %q, want %q", path, c.APIVersion, configAPIVersion)
	}
	// Overlay what the file sets on the defaults.
	if c.StaticPodPath != "" {
		into.StaticPodPath = c.StaticPodPath
	}
	if c.FileCheckFrequency.Duration != 0 {
		into.FileCheckFrequency = c.FileCheckFrequency
	}
	if c.SyncFrequency.Duration != 0 {
		into.SyncFrequency = c.SyncFrequency
	}
	if c.ContainerRuntimeEndpoint != "" {
		into.ContainerRuntimeEndpoint = c.ContainerRuntimeEndpoint
	}
	if c.RuntimeRequestTimeout.Duration != 0 {
		into.RuntimeRequestTimeout = c.RuntimeRequestTimeout
	}
	if c.PodLogsDir != "" {
		into.PodLogsDir = c.PodLogsDir
	}
	if c.MaxPods != 0 {
		into.MaxPods = c.MaxPods
	}
	if c.ContainerLogMaxSize != "" {
		into.ContainerLogMaxSize = c.ContainerLogMaxSize
	}
	if c.ContainerLogMaxFiles != 0 {
		into.ContainerLogMaxFiles = c.ContainerLogMaxFiles
	}
	if c.ContainerLogMonitorInterval.Duration != 0 {
		into.ContainerLogMonitorInterval = c.ContainerLogMonitorInterval
	}
	if c.ShutdownGracePeriod.Duration != 0 {
		into.ShutdownGracePeriod = c.ShutdownGracePeriod
	}
	if c.ShutdownGracePeriodCriticalPods.Duration != 0 {
		into.ShutdownGracePeriodCriticalPods = c.ShutdownGracePeriodCriticalPods
	}
	if c.ResolverConfig != nil {
		into.ResolverConfig = c.ResolverConfig
	}
	if c.ClusterDNS != nil {
		into.ClusterDNS = c.ClusterDNS
	}
	if c.ClusterDomain != "" {
		into.ClusterDomain = c.ClusterDomain
	}
	if c.CgroupDriver != "" {
		into.CgroupDriver = c.CgroupDriver
	}
	if c.CgroupRoot != "" {
		into.CgroupRoot = c.CgroupRoot
	}
	if c.CgroupsPerQOS != nil {
		into.CgroupsPerQOS = c.CgroupsPerQOS
	}
	if c.PodPidsLimit != nil {
		into.PodPidsLimit = c.PodPidsLimit
	}
	if c.EnforceNodeAllocatable != nil {
		into.EnforceNodeAllocatable = c.EnforceNodeAllocatable // a set list replaces the default
	}
	if c.NodeStatusUpdateFrequency.Duration != 0 {
		into.NodeStatusUpdateFrequency = c.NodeStatusUpdateFrequency
	}
	if c.NodeStatusReportFrequency.Duration != 0 {
		into.NodeStatusReportFrequency = c.NodeStatusReportFrequency
	}
	if c.NodeLeaseDurationSeconds != 0 {
		into.NodeLeaseDurationSeconds = c.NodeLeaseDurationSeconds
	}
	if c.KubeAPIQPS != nil {
		into.KubeAPIQPS = c.KubeAPIQPS
	}
	if c.KubeAPIBurst != 0 {
		into.KubeAPIBurst = c.KubeAPIBurst
	}
	if c.EventRecordQPS != nil {
		into.EventRecordQPS = c.EventRecordQPS
	}
	if c.ContentType != "" {
		into.ContentType = c.ContentType
	}
	if c.EventBurst != 0 {
		into.EventBurst = c.EventBurst
	}
	if c.RegisterWithTaints != nil {
		into.RegisterWithTaints = c.RegisterWithTaints
	}
	if c.KubeReserved != nil {
		into.KubeReserved = c.KubeReserved
	}
	if c.SystemReserved != nil {
		into.SystemReserved = c.SystemReserved
	}
	if c.EvictionHard != nil {
		into.EvictionHard = c.EvictionHard // as with the kubelet, a set map replaces the defaults
	}
	if c.EvictionPressureTransitionPeriod.Duration != 0 {
		into.EvictionPressureTransitionPeriod = c.EvictionPressureTransitionPeriod
	}
	if c.ImageGCHighThresholdPercent != nil {
		into.ImageGCHighThresholdPercent = c.ImageGCHighThresholdPercent
	}
	if c.ImageGCLowThresholdPercent != nil {
		into.ImageGCLowThresholdPercent = c.ImageGCLowThresholdPercent
	}
	if c.ImageMinimumGCAge.Duration != 0 {
		into.ImageMinimumGCAge = c.ImageMinimumGCAge
	}
	if c.Logging != nil {
		into.Logging = c.Logging
	}
	overlayServerConfiguration(&c, into)
	return into.validate(path)
}

// cleanYAMLError turns `error unmarshaling JSON: while decoding JSON: json: unknown field "x"` into
// `unknown field "x"`.
func cleanYAMLError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "json: "); i >= 0 {
		msg = msg[i+len("json: "):]
	}
	return msg
}

func (c *Configuration) validate(where string) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", where, field, fmt.Sprintf(format, a...)))
	}
	if c.FileCheckFrequency.Duration < 0 {
		bad("fileCheckFrequency", "must not be negative")
	}
	if c.SyncFrequency.Duration < 0 {
		bad("syncFrequency", "must not be negative")
	}
	if c.RuntimeRequestTimeout.Duration <= 0 {
		bad("runtimeRequestTimeout", "must be positive")
	}
	if c.MaxPods < 0 {
		bad("maxPods", "must not be negative")
	}
	if c.PodLogsDir != "" && !strings.HasPrefix(c.PodLogsDir, "/") {
		bad("podLogsDir", "must be an absolute path, got %q", c.PodLogsDir)
	}
	if q, err := resource.ParseQuantity(c.ContainerLogMaxSize); err != nil {
		bad("containerLogMaxSize", "%q is not a quantity (e.g. 10Mi)", c.ContainerLogMaxSize)
	} else if q.Sign() <= 0 {
		bad("containerLogMaxSize", "must be positive, got %q", c.ContainerLogMaxSize)
	}
	if c.ContainerLogMaxFiles < 2 {
		bad("containerLogMaxFiles", "must be at least 2, got %d", c.ContainerLogMaxFiles)
	}
	if c.ContainerLogMonitorInterval.Duration < 3*time.Second {
		bad("containerLogMonitorInterval", "must be at least 3s, got %s", c.ContainerLogMonitorInterval.Duration)
	}
	if c.ShutdownGracePeriod.Duration < 0 || c.ShutdownGracePeriodCriticalPods.Duration < 0 {
		bad("shutdownGracePeriod", "shutdownGracePeriod and shutdownGracePeriodCriticalPods must not be negative")
	}
	if c.ShutdownGracePeriodCriticalPods.Duration > c.ShutdownGracePeriod.Duration {
		bad("shutdownGracePeriodCriticalPods", "%s must not be longer than shutdownGracePeriod (%s)", c.ShutdownGracePeriodCriticalPods.Duration, c.ShutdownGracePeriod.Duration)
	}
	if c.NodeStatusUpdateFrequency.Duration <= 0 {
		bad("nodeStatusUpdateFrequency", "must be positive")
	}
	if c.NodeStatusReportFrequency.Duration < c.NodeStatusUpdateFrequency.Duration {
		bad("nodeStatusReportFrequency", "must not be shorter than nodeStatusUpdateFrequency")
	}
	if c.NodeLeaseDurationSeconds <= 0 {
		bad("nodeLeaseDurationSeconds", "must be positive")
	}
	if c.KubeAPIQPS != nil && *c.KubeAPIQPS < 0 {
		bad("kubeAPIQPS", "must not be negative")
	}
	if c.KubeAPIBurst < 0 {
		bad("kubeAPIBurst", "must not be negative")
	}
	if c.EventRecordQPS != nil && *c.EventRecordQPS < 0 {
		bad("eventRecordQPS", "must not be negative")
	}
	if c.EventBurst < 0 {
		bad("eventBurst", "must not be negative")
	}
	if c.ContentType != contentTypeProtobuf && c.ContentType != contentTypeJSON {
		bad("contentType", "must be %s or %s, got %q", contentTypeProtobuf, contentTypeJSON, c.ContentType)
	}
	for field, m := range map[string]map[string]string{"kubeReserved": c.KubeReserved, "systemReserved": c.SystemReserved} {
		if _, err := resourceList(m); err != nil {
			bad(field, "%v", err)
		}
	}
	if _, err := eviction.ParseThresholds(c.EvictionHard); err != nil {
		bad("evictionHard", "%s", strings.TrimPrefix(err.Error(), "evictionHard: "))
	}
	if c.EvictionPressureTransitionPeriod.Duration < 0 {
		bad("evictionPressureTransitionPeriod", "must not be negative")
	}
	if c.ImageMinimumGCAge.Duration < 0 {
		bad("imageMinimumGCAge", "must not be negative")
	}
	if c.ImageGCHighThresholdPercent != nil && c.ImageGCLowThresholdPercent != nil {
		if err := eviction.ValidateImageGC(int(*c.ImageGCHighThresholdPercent), int(*c.ImageGCLowThresholdPercent)); err != nil {
			bad("imageGC", "%v", err)
		}
	}
	c.validateCgroups(bad)
	c.validateServer(bad)
	return errors.Join(errs...)
}

func (c *Configuration) validateCgroups(bad func(field, format string, a ...any)) {
	driver, err := cgroups.ParseDriver(c.CgroupDriver)
	if err != nil {
		bad("cgroupDriver", "%q: want cgroupfs or systemd", c.CgroupDriver)
	} else if _, err := cgroups.ParseRoot(driver, c.CgroupRoot); err != nil {
		bad("cgroupRoot", "%v", err)
	}
	if c.PodPidsLimit != nil && *c.PodPidsLimit < -1 {
		bad("podPidsLimit", "must be -1 (unlimited) or more, got %d", *c.PodPidsLimit)
	}
	for _, e := range c.EnforceNodeAllocatable {
		switch e {
		case "pods":
			if c.CgroupsPerQOS != nil && !*c.CgroupsPerQOS {
				bad("enforceNodeAllocatable", "\"pods\" needs cgroupsPerQOS: true (set enforceNodeAllocatable: [] or [none])")
			}
		case "none":
			if len(c.EnforceNodeAllocatable) > 1 {
				bad("enforceNodeAllocatable", "\"none\" must be the only value, got %v", c.EnforceNodeAllocatable)
			}
		case "system-reserved", "kube-reserved", "system-reserved-compressible", "kube-reserved-compressible":
			bad("enforceNodeAllocatable", "%q is not implemented by Berth (it needs systemReservedCgroup / kubeReservedCgroup); use pods", e)
		default:
			bad("enforceNodeAllocatable", "unknown value %q (want pods or none)", e)
		}
	}
}

// enforcePods reports whether enforceNodeAllocatable has "pods".
func (c *Configuration) enforcePods() bool {
	for _, e := range c.EnforceNodeAllocatable {
		if e == "pods" {
			return true
		}
	}
	return false
}

// resourceList parses kubeReserved/systemReserved ("cpu: 500m").
func resourceList(m map[string]string) (v1.ResourceList, error) {
	out := v1.ResourceList{}
	for k, v := range m {
		switch v1.ResourceName(k) {
		case v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage, "pid":
		default:
			return nil, fmt.Errorf("resource %q: want cpu, memory, ephemeral-storage or pid", k)
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %v", k, v, err)
		}
		out[v1.ResourceName(k)] = q
	}
	return out, nil
}

// daemonFlags are the command-line flags of `berth`, named as the kubelet's. Flags win over the
// config file.
type daemonFlags struct {
	config                   string
	containerRuntimeEndpoint string
	podManifestPath          string
	rootDir                  string
	hostnameOverride         string
	nodeIP                   string
	logLevel                 string
	logFormat                string
	kubeconfig               string
	nodeLabels               string
	cgroupDriver             string
	cgroupRoot               string
}

func (f *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file (KubeletConfiguration field names; flags override it)")
	fs.StringVar(&f.containerRuntimeEndpoint, "container-runtime-endpoint", "", "CRI runtime socket (default unix:///run/containerd/containerd.sock)")
	fs.StringVar(&f.podManifestPath, "pod-manifest-path", "", "directory of static pod manifests (staticPodPath)")
	fs.StringVar(&f.rootDir, "root-dir", "/var/lib/berth", "directory for Berth's state and its local socket")
	fs.StringVar(&f.hostnameOverride, "hostname-override", "", "node name to use instead of the hostname")
	fs.StringVar(&f.nodeIP, "node-ip", "", "IP address(es) of the node, comma-separated (default: the address of the default route's interface)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the node's identity (system:node:<name>); without it Berth runs standalone")
	fs.StringVar(&f.cgroupDriver, "cgroup-driver", "", "cgroup driver: cgroupfs or systemd, as the runtime's (cgroupDriver; default cgroupfs)")
	fs.StringVar(&f.cgroupRoot, "cgroup-root", "", "root of the pod cgroup hierarchy (cgroupRoot; default /)")
	fs.StringVar(&f.nodeLabels, "node-labels", "", "labels to add to the Node, key=value pairs separated by commas")
}

// parseNodeLabels reads --node-labels.
func parseNodeLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--node-labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// resolve merges defaults, the config file and the flags that were set.
func (f *daemonFlags) resolve(set map[string]bool) (Configuration, error) {
	c := defaultConfiguration()
	if f.config != "" {
		if err := loadConfigFile(f.config, &c); err != nil {
			return c, err
		}
	}
	if set["container-runtime-endpoint"] {
		c.ContainerRuntimeEndpoint = f.containerRuntimeEndpoint
	}
	if set["pod-manifest-path"] {
		c.StaticPodPath = f.podManifestPath
	}
	if set["cgroup-driver"] {
		c.CgroupDriver = f.cgroupDriver
	}
	if set["cgroup-root"] {
		c.CgroupRoot = f.cgroupRoot
	}
	return c, c.validate("flags")
}
