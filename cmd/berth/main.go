// Command berth is a kubelet-class node agent: it runs the pods meant for this node through the
// CRI of the local container runtime.
//
//	berth [flags]            run the agent (as `kubelet` does)
//	berth version            print the version
//	berth pods [-o json]     show the pods on this node, from the running agent
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/kubeclient"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/systemd"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "v0.1.0-dev"

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "version":
		fmt.Printf("berth %s\n", version)
		return
	case len(args) > 0 && args[0] == "pods":
		err = runPods(args[1:], os.Stdout)
	default:
		err = runDaemon(args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		os.Exit(1)
	}
}

type daemonArgs struct {
	flags  daemonFlags
	config Configuration
	set    map[string]bool // the flags given on the command line
	// cpuProfile is --cpuprofile: a CPU profile of the whole run is written there on exit (for
	// the benchmarks, docs/benchmarks.md).
	cpuProfile string
}

func parseDaemonArgs(args []string) (*daemonArgs, error) {
	fs := flag.NewFlagSet("berth", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d := &daemonArgs{}
	d.flags.register(fs)
	fs.StringVar(&d.cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the run to this file on exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (commands: version, pods)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c, err := d.flags.resolve(set)
	if err != nil {
		return nil, err
	}
	d.config, d.set = c, set
	return d, nil
}

// newLogger logs at level, a slog.LevelVar that SIGHUP may change.
func newLogger(level slog.Leveler, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// runtimeWait bounds how long startup waits for the runtime before it gives up with an error that
// says what is missing (under systemd, Restart=always then tries again).
const runtimeWait = 30 * time.Second

func runDaemon(args []string) error {
	d, err := parseDaemonArgs(args)
	if err != nil {
		return err
	}
	if d.cpuProfile != "" {
		f, err := os.Create(d.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	c := d.config
	level := new(slog.LevelVar)
	l, err := d.logLevel()
	if err != nil {
		return err
	}
	level.Set(l)
	log, err := newLogger(level, d.flags.logFormat)
	if err != nil {
		return err
	}
	if err := checkRootDir(d.flags.rootDir); err != nil {
		return err
	}
	if c.StaticPodPath != "" {
		if st, err := os.Stat(c.StaticPodPath); err != nil || !st.IsDir() {
			return fmt.Errorf("static pod path %s is not a directory: create it, or set --pod-manifest-path / staticPodPath", c.StaticPodPath)
		}
	}
	nodeName, err := nodeName(d.flags.hostnameOverride)
	if err != nil {
		return err
	}
	nodeIPs, err := nodeIPs(d.flags.nodeIP)
	if err != nil {
		return err
	}
	resolv := cri.ResolvConf{}
	if p := *c.ResolverConfig; p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("resolvConf %s: %w (set resolvConf: \"\" in the config file to use none)", p, err)
		}
		resolv = cri.ParseResolvConf(data)
	}
	memory, err := memoryCapacity()
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	svc := newService(ctx, log)
	defer svc.close()
	go svc.handleReloads(ctx, hup, &reloader{args: args, running: c, level: level})
	svc.status("waiting for the container runtime at %s", c.ContainerRuntimeEndpoint)

	client, err := cri.NewClient(cri.ClientConfig{Endpoint: c.ContainerRuntimeEndpoint, Timeout: c.RuntimeRequestTimeout.Duration})
	if err != nil {
		return err
	}
	defer client.Close()
	wctx, cancel := context.WithTimeout(ctx, runtimeWait)
	v, err := client.WaitReady(wctx, log)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	log.Info("connected to the container runtime", "endpoint", c.ContainerRuntimeEndpoint,
		"runtime", v.RuntimeName, "version", v.RuntimeVersion, "criVersion", v.RuntimeApiVersion)
	svc.status("connected to %s %s at %s; starting", v.RuntimeName, v.RuntimeVersion, c.ContainerRuntimeEndpoint)

	var podCgroups agent.PodCgroups
	if *c.CgroupsPerQOS {
		m, err := newPodCgroups(ctx, &c, d.flags.rootDir, client, log)
		if err != nil {
			return err
		}
		defer m.Close()
		podCgroups = m
	}

	var cluster *agent.ClusterConfig
	if d.flags.kubeconfig != "" {
		if cluster, err = clusterConfig(d, log); err != nil {
			return err
		}
	}
	var shutdownInhibitor agent.ShutdownInhibitor // a nil *systemd.Logind must stay a nil interface
	if logind := connectLogind(&c, log); logind != nil {
		defer logind.Close()
		shutdownInhibitor = logind
	}
	a, err := agent.New(agent.Config{
		Cluster:            cluster,
		NodeName:           nodeName,
		RootDir:            d.flags.rootDir,
		PodLogsDir:         c.PodLogsDir,
		StaticPodPath:      c.StaticPodPath,
		FileCheckFrequency: c.FileCheckFrequency.Duration,
		SyncFrequency:      c.SyncFrequency.Duration,
		MaxPods:            int(c.MaxPods),
		HostResolvConf:     resolv,
		ClusterDNS:         c.ClusterDNS,
		ClusterDomain:      c.ClusterDomain,
		NodeIPs:            nodeIPs,
		NodeMemoryCapacity: memory,
		Runtime:            client,
		RuntimeName:        v.RuntimeName,
		Cgroups:            podCgroups,
		Logger:             log,

		ShutdownGracePeriod:             c.ShutdownGracePeriod.Duration,
		ShutdownGracePeriodCriticalPods: c.ShutdownGracePeriodCriticalPods.Duration,
		Logind:                          shutdownInhibitor,

		EvictionHard:                     c.EvictionHard,
		EvictionPressureTransitionPeriod: c.EvictionPressureTransitionPeriod.Duration,
		ImageGCHighThresholdPercent:      int(*c.ImageGCHighThresholdPercent),
		ImageGCLowThresholdPercent:       int(*c.ImageGCLowThresholdPercent),
		ImageMinimumGCAge:                c.ImageMinimumGCAge.Duration,
	})
	if err != nil {
		return err
	}
	if err := a.ServeLocal(ctx, d.flags.rootDir); err != nil {
		return err
	}
	maxSize, _ := resource.ParseQuantity(c.ContainerLogMaxSize) // validated with the config
	rotator, err := logs.NewRotator(logs.Config{
		MaxSize:  maxSize.Value(),
		MaxFiles: int(c.ContainerLogMaxFiles),
		Interval: c.ContainerLogMonitorInterval.Duration,
		Runtime:  client,
		Logger:   log,
	})
	if err != nil {
		return err
	}
	go rotator.Run(ctx)
	if cluster != nil {
		if err := startNodeServer(ctx, &c, nodeName, d.flags.rootDir, cluster, a, client, log); err != nil {
			return err
		}
	}
	mode := "standalone"
	if cluster != nil {
		mode = "cluster"
	}
	log.Info("berth started", "version", version, "mode", mode, "node", nodeName, "nodeIPs", nodeIPs,
		"staticPodPath", c.StaticPodPath, "rootDir", d.flags.rootDir, "localSocket", agent.SocketPath(d.flags.rootDir))
	go svc.run(ctx, a.Ready, a.Healthy, fmt.Sprintf("running (%s mode, node %s, runtime %s)", mode, nodeName, v.RuntimeName))
	err = a.Run(ctx)
	log.Info("berth stopped; pods keep running")
	return err
}

// connectLogind prepares graceful node shutdown when shutdownGracePeriod is set: a connection to
// systemd-logind, whose InhibitDelayMaxSec is raised to the grace period when shorter (a drop-in,
// as the kubelet writes). As with the kubelet, a failure is logged and Berth runs without it.
func connectLogind(c *Configuration, log *slog.Logger) *systemd.Logind {
	grace := c.ShutdownGracePeriod.Duration
	if grace <= 0 {
		return nil
	}
	l, err := systemd.ConnectLogind()
	if err != nil {
		log.Error("graceful node shutdown is off: cannot reach systemd-logind", "err", err)
		return nil
	}
	if cur, err := l.EnsureInhibitDelay(systemd.LogindDropInDir, grace); err != nil {
		log.Warn("graceful node shutdown: logind's InhibitDelayMaxSec is shorter than shutdownGracePeriod; pods get less time",
			"inhibitDelayMax", cur, "shutdownGracePeriod", grace, "err", err)
	} else {
		log.Info("graceful node shutdown: logind's inhibit delay", "inhibitDelayMax", cur)
	}
	return l
}

// checkRootDir makes the root dir and proves it writable, so a read-only or mistyped path fails
// at startup with one clear line rather than at the first pod.
func checkRootDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("root dir %q must be an absolute path (--root-dir)", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("root dir %s cannot be created: %v (set --root-dir to a writable directory)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		return fmt.Errorf("root dir %s is not writable: %v (set --root-dir to a writable directory, or run as root)", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// nodeName is --hostname-override or the hostname, lowercased as the kubelet does.
func nodeName(override string) (string, error) {
	name := override
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("cannot read the hostname: %v (set --hostname-override)", err)
		}
		name = h
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return "", errors.New("node name is empty: set --hostname-override")
	}
	return name, nil
}

// clusterConfig reads the node's kubeconfig and the cluster-mode settings.
func clusterConfig(d *daemonArgs, log *slog.Logger) (*agent.ClusterConfig, error) {
	c := d.config
	rc, err := clientcmd.BuildConfigFromFlags("", d.flags.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %v", d.flags.kubeconfig, err)
	}
	rc.QPS = *c.KubeAPIQPS
	rc.Burst = int(c.KubeAPIBurst)
	rc.UserAgent = "berth/" + version
	rc.ContentType = c.ContentType
	client, err := kubeclient.New(rc)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %v", d.flags.kubeconfig, err)
	}
	// Events get a client of their own, as the kubelet's (eventRecordQPS 0: no client-side limit).
	erc := rest.CopyConfig(rc)
	erc.QPS, erc.Burst = float32(*c.EventRecordQPS), int(c.EventBurst)
	if *c.EventRecordQPS == 0 {
		erc.QPS = -1
	}
	eventClient, err := kubeclient.New(erc)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %v", d.flags.kubeconfig, err)
	}
	labels, err := parseNodeLabels(d.flags.nodeLabels)
	if err != nil {
		return nil, err
	}
	kubeReserved, _ := resourceList(c.KubeReserved) // validated with the config
	systemReserved, _ := resourceList(c.SystemReserved)
	log.Info("cluster mode", "apiServer", rc.Host, "qps", rc.QPS, "burst", rc.Burst)
	return &agent.ClusterConfig{
		Client:                    client,
		EventClient:               eventClient,
		NodeLabels:                labels,
		RegisterWithTaints:        c.RegisterWithTaints,
		NodeStatusUpdateFrequency: c.NodeStatusUpdateFrequency.Duration,
		NodeStatusReportFrequency: c.NodeStatusReportFrequency.Duration,
		NodeLeaseDurationSeconds:  c.NodeLeaseDurationSeconds,
		KubeReserved:              kubeReserved,
		SystemReserved:            systemReserved,
		EvictionHard:              c.EvictionHard,
		Version:                   version,
		Port:                      c.Port,
	}, nil
}
