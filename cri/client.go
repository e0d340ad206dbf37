package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ClientConfig configures a CRI client.
type ClientConfig struct {
	// Endpoint is the runtime's socket, "unix:///run/containerd/containerd.sock" or a plain path.
	Endpoint string
	// Timeout bounds every call but image pulls (the kubelet's runtimeRequestTimeout, 2m default).
	Timeout time.Duration
	// PullTimeout bounds an image pull (10m default): pulls are legitimately slow.
	PullTimeout time.Duration
}

// Client talks to a CRI v1 runtime over its unix socket. gRPC reconnects by itself when the runtime
// restarts, so one Client lives as long as the agent; calls made while the runtime is away fail
// with Unavailable and are retried by the callers' own loops.
type Client struct {
	endpoint    string
	socket      string
	timeout     time.Duration
	pullTimeout time.Duration
	conn        *grpc.ClientConn
	rt          runtimeapi.RuntimeServiceClient
	img         runtimeapi.ImageServiceClient
}

// maxMsgSize matches the kubelet's 16 MiB limit: a ListContainers on a busy node is large.
const maxMsgSize = 16 * 1024 * 1024

// NewClient prepares a client. It does not connect: WaitReady does, and says what is wrong.
func NewClient(cfg ClientConfig) (*Client, error) {
	socket, target, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = 10 * time.Minute
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
		grpc.WithUnaryInterceptor(recordOperation),
	)
	if err != nil {
		return nil, fmt.Errorf("container runtime endpoint %q: %w", cfg.Endpoint, err)
	}
	return &Client{
		endpoint:    cfg.Endpoint,
		socket:      socket,
		timeout:     cfg.Timeout,
		pullTimeout: cfg.PullTimeout,
		conn:        conn,
		rt:          runtimeapi.NewRuntimeServiceClient(conn),
		img:         runtimeapi.NewImageServiceClient(conn),
	}, nil
}

// recordOperation times every CRI call for the kubelet's runtime operation metrics
// (kubelet_runtime_operations_total, _duration_seconds, _errors_total by operation_type).
func recordOperation(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	metrics.ObserveRuntimeOperation(metrics.OperationType(method), time.Since(start), err)
	return err
}

// parseEndpoint accepts "unix:///path", "unix:/path" and "/path"; only unix sockets are supported
// (the CRI runtimes all serve one).
func parseEndpoint(endpoint string) (socket, target string, err error) {
	switch {
	case endpoint == "":
		return "", "", errors.New("container runtime endpoint is empty: set --container-runtime-endpoint (e.g. unix:///run/containerd/containerd.sock)")
	case strings.HasPrefix(endpoint, "unix://"):
		socket = strings.TrimPrefix(endpoint, "unix://")
	case strings.HasPrefix(endpoint, "unix:"):
		socket = strings.TrimPrefix(endpoint, "unix:")
	case strings.HasPrefix(endpoint, "/"):
		socket = endpoint
	default:
		return "", "", fmt.Errorf("container runtime endpoint %q: only unix sockets are supported (unix:///path/to/socket)", endpoint)
	}
	if socket == "" || !strings.HasPrefix(socket, "/") {
		return "", "", fmt.Errorf("container runtime endpoint %q: want an absolute socket path (unix:///path/to/socket)", endpoint)
	}
	return socket, "unix://" + socket, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Endpoint is the endpoint the client was made for.
func (c *Client) Endpoint() string { return c.endpoint }

// ErrNotCRIv1 is returned by WaitReady when something answers on the socket but not CRI v1.
var ErrNotCRIv1 = errors.New("not a CRI v1 runtime")

// WaitReady waits until the runtime answers Version with CRI v1, logging what it waits for once per
// change of reason. It returns at once, with an error that says what to do, when the peer answers
// but is not a CRI v1 runtime (waiting would not help), and when ctx ends.
func (c *Client) WaitReady(ctx context.Context, log *slog.Logger) (*runtimeapi.VersionResponse, error) {
	var lastReason string
	for {
		v, err := c.Version(ctx)
		if err == nil {
			return v, nil
		}
		if errors.Is(err, ErrNotCRIv1) {
			return nil, err
		}
		if reason := err.Error(); reason != lastReason {
			log.Info("waiting for the container runtime", "endpoint", c.endpoint, "reason", reason)
			lastReason = reason
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("container runtime at %s is not ready: %s", c.endpoint, lastReason)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Version asks the runtime for its version and checks that it serves CRI v1. Its errors say what
// an operator should look at: a missing socket, a refused connection, the wrong API.
func (c *Client) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	if _, err := os.Stat(c.socket); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("socket %s does not exist: start the container runtime (containerd) or point --container-runtime-endpoint at its socket", c.socket)
		}
		return nil, fmt.Errorf("socket %s: %w", c.socket, err)
	}
	ctx, cancel := context.WithTimeout(ctx, min(c.timeout, 10*time.Second))
	defer cancel()
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return nil, fmt.Errorf("%w: %s answers but does not serve runtime.v1.RuntimeService (is the CRI plugin enabled in the containerd config?)", ErrNotCRIv1, c.socket)
		}
		return nil, fmt.Errorf("CRI Version on %s: %w", c.socket, err)
	}
	return v, nil
}

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// wrap names the CRI call in an error, keeping the gRPC status for callers that test codes.
func wrap(call string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("CRI %s: %w", call, err)
}

// IsNotFound reports whether err is the runtime saying the object does not exist.
func IsNotFound(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && s.Code() == codes.NotFound {
			return true
		}
	}
	return false
}

// Status reports the runtime's conditions (RuntimeReady, NetworkReady).
func (c *Client) Status(ctx context.Context) (*runtimeapi.RuntimeStatus, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, wrap("Status", err)
	}
	return r.Status, nil
}

// RuntimeCgroupDriver is the cgroup driver the runtime reports through the CRI RuntimeConfig call
// ("systemd" or "cgroupfs"), or "" when the runtime does not implement it (containerd before 2.0)
// or reports no Linux configuration.
func (c *Client) RuntimeCgroupDriver(ctx context.Context) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if status.Code(err) == codes.Unimplemented {
		return "", nil
	}
	if err != nil {
		return "", wrap("RuntimeConfig", err)
	}
	if r.GetLinux() == nil {
		return "", nil
	}
	switch r.GetLinux().GetCgroupDriver() {
	case runtimeapi.CgroupDriver_SYSTEMD:
		return "systemd", nil
	case runtimeapi.CgroupDriver_CGROUPFS:
		return "cgroupfs", nil
	}
	return "", nil
}

// StatusInfo is the runtime's verbose status information: what it reports about itself (containerd:
// "config", its CRI configuration as JSON, among others). Empty when the runtime reports nothing.
func (c *Client) StatusInfo(ctx context.Context) (map[string]string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return nil, wrap("Status", err)
	}
	return r.Info, nil
}

// SandboxImage is the image the runtime makes pod sandboxes from, read from its verbose status
// (containerd: config.sandboxImage); "" when the runtime does not say.
func (c *Client) SandboxImage(ctx context.Context) (string, error) {
	info, err := c.StatusInfo(ctx)
	if err != nil {
		return "", err
	}
	var cfg struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if raw, ok := info["config"]; ok {
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return "", fmt.Errorf("CRI Status: the runtime's config: %w", err)
		}
	}
	return cfg.SandboxImage, nil
}

// RunPodSandbox creates and starts a sandbox and returns its ID.
func (c *Client) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		return "", wrap("RunPodSandbox", err)
	}
	return r.PodSandboxId, nil
}

// StopPodSandbox stops a sandbox (and any container still running in it).
func (c *Client) StopPodSandbox(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	return wrap("StopPodSandbox", err)
}

// RemovePodSandbox removes a stopped sandbox and its containers.
func (c *Client) RemovePodSandbox(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	return wrap("RemovePodSandbox", err)
}

// PodSandboxStatus returns a sandbox's status.
func (c *Client) PodSandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatus, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return nil, wrap("PodSandboxStatus", err)
	}
	return r.Status, nil
}

// ListPodSandbox lists sandboxes matching filter (nil for all).
func (c *Client) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	if err != nil {
		return nil, wrap("ListPodSandbox", err)
	}
	return r.Items, nil
}

// CreateContainer creates a container in a sandbox and returns its ID.
func (c *Client) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sandboxCfg})
	if err != nil {
		return "", wrap("CreateContainer", err)
	}
	return r.ContainerId, nil
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	return wrap("StartContainer", err)
}

// StopContainer stops a container, giving it grace seconds between SIGTERM and SIGKILL. The call's
// own deadline is the grace plus the usual timeout.
func (c *Client) StopContainer(ctx context.Context, id string, grace int64) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+time.Duration(grace)*time.Second)
	defer cancel()
	_, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: grace})
	return wrap("StopContainer", err)
}

// RemoveContainer removes a container.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	return wrap("RemoveContainer", err)
}

// ListContainers lists containers matching filter (nil for all).
func (c *Client) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
	if err != nil {
		return nil, wrap("ListContainers", err)
	}
	return r.Containers, nil
}

// ContainerStatus returns a container's status.
func (c *Client) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, wrap("ContainerStatus", err)
	}
	return r.Status, nil
}

// ExecSync runs cmd in a container and returns its output and exit code.
func (c *Client) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+timeout)
	defer cancel()
	r, err := c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: int64(timeout.Seconds())})
	if err != nil {
		return nil, nil, 0, wrap("ExecSync", err)
	}
	return r.Stdout, r.Stderr, r.ExitCode, nil
}

// ImageStatus returns the image if present, nil if not.
func (c *Client) ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return nil, wrap("ImageStatus", err)
	}
	return r.Image, nil
}

// PullImage pulls an image and returns its reference (digest).
func (c *Client) PullImage(ctx context.Context, image string, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.pullTimeout)
	defer cancel()
	r, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}, SandboxConfig: sandboxCfg})
	if err != nil {
		return "", wrap("PullImage", err)
	}
	return r.ImageRef, nil
}

// ListImages lists the images the runtime has.
func (c *Client) ListImages(ctx context.Context) ([]*runtimeapi.Image, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, wrap("ListImages", err)
	}
	return r.Images, nil
}

// RemoveImage removes an image by id or reference; an image already gone is not an error.
func (c *Client) RemoveImage(ctx context.Context, image string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil && !IsNotFound(err) {
		return wrap("RemoveImage", err)
	}
	return nil
}

// Conn is the underlying gRPC connection, for callers that need a CRI call the Client does not wrap
// (tests reading verbose status, for instance).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// ImageFsInfo reports the filesystems that hold the runtime's images.
func (c *Client) ImageFsInfo(ctx context.Context) ([]*runtimeapi.FilesystemUsage, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		return nil, wrap("ImageFsInfo", err)
	}
	return r.ImageFilesystems, nil
}

// ContainerEvents opens the runtime's container event stream (CRI GetContainerEvents: CRI-O,
// containerd 1.7 and later). recv blocks for the next event until ctx ends or the stream breaks.
// The stream has no timeout; a runtime without the call answers codes.Unimplemented, at the
// first recv with gRPC's lazy streams (IsUnimplemented).
func (c *Client) ContainerEvents(ctx context.Context) (recv func() (*runtimeapi.ContainerEventResponse, error), err error) {
	s, err := c.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return nil, wrap("GetContainerEvents", err)
	}
	return func() (*runtimeapi.ContainerEventResponse, error) {
		ev, err := s.Recv()
		return ev, wrap("GetContainerEvents", err)
	}, nil
}

// IsUnimplemented reports whether err is the runtime saying it has no such call.
func IsUnimplemented(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && s.Code() == codes.Unimplemented {
			return true
		}
	}
	return false
}
