// Package fakecri is an in-memory CRI runtime served over gRPC on a unix socket, for unit tests and
// benchmarks that exercise Berth's real CRI client. It implements the RuntimeService and
// ImageService calls a node agent makes (sandboxes, containers, images, exec, runtime status and
// the container event stream) with the states, timestamps, filters and gRPC error codes of a CRI
// runtime such as containerd; nothing runs. Streaming exec/attach/port-forward and stats are left
// unimplemented (codes.Unimplemented).
//
// Behaviour worth knowing in tests:
//   - A container "runs" from StartContainer until StopContainer (exit code 0, reason
//     "Completed", as if it handled SIGTERM at once; the timeout is not waited for),
//     SetContainerExited (any exit code, as if the process died), or the forced stop of
//     StopPodSandbox, RemovePodSandbox or RemoveContainer (exit code 137, reason "Error", as after
//     SIGKILL). Stopping a container that is not running is a no-op, as in containerd.
//   - StopPodSandbox and RemovePodSandbox of an unknown sandbox and RemoveContainer of an unknown
//     container succeed (the CRI asks these to be idempotent); other calls on an unknown id fail
//     with codes.NotFound. Ids are 64 hex digits and, as with containerd, a unique prefix works.
//   - Each sandbox gets a fake IP from 127.99.0.0/16, a loopback range, so that a test which
//     dials a pod IP (a probe, say) never sends traffic off the machine; host network sandboxes
//     get none. A stopped sandbox reports no IP.
//   - A host network sandbox that sets a hostname is refused (codes.InvalidArgument), as the
//     containerd on Berth's machines refuses it.
//   - Sandbox and container names (name_namespace_uid_attempt, container_sandbox..._attempt) are
//     reserved as in containerd: creating the same one twice fails with codes.AlreadyExists.
//   - CreateContainer with an image that is not present fails with codes.NotFound, as containerd
//     does; Config.Images are present at start and PullImage adds any image at once.
//   - GetContainerEvents streams CREATED/STARTED/STOPPED/DELETED events for containers and
//     sandboxes; a subscriber that falls more than 1024 events behind loses events, as with
//     containerd, and must relist.
package fakecri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Version facts the server reports.
const (
	RuntimeName       = "fakecri"
	RuntimeVersion    = "0.1.0"
	RuntimeAPIVersion = "v1"
)

// Config configures a fake runtime.
type Config struct {
	// Latency is a fixed delay added to every call.
	Latency time.Duration
	// Images are present at start (references such as "nginx:1.27" or "registry.k8s.io/pause:3.10").
	Images []string
	// CgroupDriver is what RuntimeConfig reports; the zero value is SYSTEMD.
	CgroupDriver runtimeapi.CgroupDriver
	// Clock stamps sandboxes and containers; the real clock if nil.
	Clock clock.PassiveClock
	// NoContainerEvents makes GetContainerEvents answer Unimplemented, as containerd 1.6 does.
	NoContainerEvents bool
}

// ExecCall is one ExecSync call, as recorded by the server.
type ExecCall struct {
	ContainerID string
	Cmd         []string
	Timeout     int64
}

// ExecHandler answers an ExecSync call in place of the default (exit code 0, no output).
type ExecHandler func(containerID string, cmd []string) (stdout, stderr []byte, exitCode int32, err error)

// Server is a fake CRI runtime. It is safe for concurrent use.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	cfg   Config
	clock clock.PassiveClock

	mu          sync.Mutex
	sandboxes   map[string]*sandbox
	containers  map[string]*container
	images      map[string]*image // by id
	tags        map[string]*image // by normalised tag
	names       map[string]string // reserved sandbox and container names -> id
	calls       map[string]int
	injected    map[string][]error
	execs       []ExecCall
	execHandler ExecHandler
	conditions  []*runtimeapi.RuntimeCondition
	podCIDR     string
	nextIP      uint32
	subscribers map[chan *runtimeapi.ContainerEventResponse]chan struct{} // → closed to break the stream
	dropped     int

	grpc     *grpc.Server
	served   chan struct{} // closed when grpc.Serve has returned
	socket   string
	stopOnce sync.Once
}

// New returns a fake runtime with cfg.Images present. Serve starts serving it.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	s := &Server{
		cfg:         cfg,
		clock:       cfg.Clock,
		sandboxes:   map[string]*sandbox{},
		containers:  map[string]*container{},
		images:      map[string]*image{},
		tags:        map[string]*image{},
		names:       map[string]string{},
		calls:       map[string]int{},
		injected:    map[string][]error{},
		subscribers: map[chan *runtimeapi.ContainerEventResponse]chan struct{}{},
		conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		},
	}
	for _, ref := range cfg.Images {
		if ref != "" {
			s.addImage(ref)
		}
	}
	return s
}

// Serve listens on the unix socket socketPath (replacing a stale socket there) and serves in the
// background. It returns once the socket accepts connections.
func (s *Server) Serve(socketPath string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc != nil {
		return fmt.Errorf("fakecri: already serving on %s", s.socket)
	}
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o755); err != nil {
		return fmt.Errorf("fakecri: %w", err)
	}
	if fi, err := os.Lstat(socketPath); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("fakecri: %s exists and is not a socket", socketPath)
		}
		if err := os.Remove(socketPath); err != nil {
			return fmt.Errorf("fakecri: removing stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("fakecri: %w", err)
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(s.unaryInterceptor),
		grpc.StreamInterceptor(s.streamInterceptor),
		grpc.MaxRecvMsgSize(16<<20),
		grpc.MaxSendMsgSize(16<<20),
	)
	runtimeapi.RegisterRuntimeServiceServer(srv, s)
	runtimeapi.RegisterImageServiceServer(srv, s)
	s.grpc, s.socket, s.served = srv, socketPath, make(chan struct{})
	go func() {
		defer close(s.served)
		_ = srv.Serve(l)
	}()
	return nil
}

// Stop stops serving at once (open calls and event streams are cancelled) and removes the
// socket. It is safe to call more than once; a stopped server does not serve again.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, socket, served := s.grpc, s.socket, s.served
	s.mu.Unlock()
	if srv == nil {
		return
	}
	s.stopOnce.Do(func() {
		srv.Stop()
		// Wait for Serve to return: it closes the listener, which unlinks the socket, and must
		// not do so later under a new server's feet.
		<-served
		_ = os.Remove(socket)
	})
}

// Endpoint is the CRI endpoint of the server, "unix://" + the socket path ("" before Serve).
func (s *Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.socket == "" {
		return ""
	}
	return "unix://" + s.socket
}

// Calls returns how many times each method was called (by method name, e.g. "RunPodSandbox"),
// failed calls included.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// InjectError makes the next call of method (e.g. "RunPodSandbox", "PullImage") fail with err,
// once. Errors injected for the same method are returned in order, one per call. err may be a
// gRPC status error (status.Error(codes.Unavailable, ...)); any other error reaches the client
// as codes.Unknown.
func (s *Server) InjectError(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	method = path.Base(method)
	s.injected[method] = append(s.injected[method], err)
}

// ExecCalls returns the ExecSync calls made so far, oldest first.
func (s *Server) ExecCalls() []ExecCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ExecCall(nil), s.execs...)
}

// SetExecHandler makes ExecSync answer with h (nil restores the default: exit code 0, no output).
func (s *Server) SetExecHandler(h ExecHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.execHandler = h
}

// SetRuntimeCondition sets a condition reported by Status (runtimeapi.RuntimeReady,
// runtimeapi.NetworkReady or any other type).
func (s *Server) SetRuntimeCondition(condType string, ok bool, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &runtimeapi.RuntimeCondition{Type: condType, Status: ok, Reason: reason, Message: message}
	for i, old := range s.conditions {
		if old.Type == condType {
			s.conditions[i] = c
			return
		}
	}
	s.conditions = append(s.conditions, c)
}

// SetContainerExited ends a running container as if its process died: EXITED with exitCode,
// FinishedAt now, and reason ("" gives "Completed" for exit code 0, "Error" otherwise, as
// containerd reports).
func (s *Server) SetContainerExited(id string, exitCode int32, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(id)
	if err != nil {
		return err
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return status.Errorf(codes.FailedPrecondition, "container %q is in %s state, not running", c.id, c.state)
	}
	s.exitContainer(c, exitCode, reason, "")
	return nil
}

// SetContainerUnknown puts a container in the UNKNOWN state, as a runtime that lost track of its
// process reports it.
func (s *Server) SetContainerUnknown(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(id)
	if err != nil {
		return err
	}
	c.state = runtimeapi.ContainerState_CONTAINER_UNKNOWN
	return nil
}

// SetSandboxNotReady makes a ready sandbox NOTREADY without touching its containers, as when
// its pause process or network namespace is lost.
func (s *Server) SetSandboxNotReady(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.findSandbox(id)
	if err != nil {
		return err
	}
	if sb.state == runtimeapi.PodSandboxState_SANDBOX_READY {
		sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		s.emitSandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
	return nil
}

// DroppedEvents is how many container events were dropped because a subscriber fell behind.
func (s *Server) DroppedEvents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// enter counts a call of method, waits the configured latency and returns an injected error, if
// any.
func (s *Server) enter(ctx context.Context, fullMethod string) error {
	method := path.Base(fullMethod)
	s.mu.Lock()
	s.calls[method]++
	var injected error
	if q := s.injected[method]; len(q) > 0 {
		injected = q[0]
		if len(q) == 1 {
			delete(s.injected, method)
		} else {
			s.injected[method] = q[1:]
		}
	}
	s.mu.Unlock()
	if d := s.cfg.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return injected
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.enter(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.enter(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// newID returns a random 64-hex-digit id, like containerd's.
func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// now is the runtime's time: Config.Clock's, so tests that drive a fake clock see timestamps
// (created, started, finished) on the same time line.
func (s *Server) now() int64 { return s.clock.Now().UnixNano() }

// findByID looks an id up in m: exactly, or as the unique prefix of one id.
func findByID[T any](m map[string]T, id, kind string) (T, error) {
	var zero T
	if v, ok := m[id]; ok {
		return v, nil
	}
	if id == "" {
		return zero, status.Errorf(codes.NotFound, "%s id is empty", kind)
	}
	var found []string
	for k := range m {
		if strings.HasPrefix(k, id) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return zero, status.Errorf(codes.NotFound, "an error occurred when try to find %s %q: not found", kind, id)
	case 1:
		return m[found[0]], nil
	}
	return zero, status.Errorf(codes.InvalidArgument, "%s id prefix %q is ambiguous: %d matches", kind, id, len(found))
}

func (s *Server) findSandbox(id string) (*sandbox, error) {
	return findByID(s.sandboxes, id, "sandbox")
}

func (s *Server) findContainer(id string) (*container, error) {
	return findByID(s.containers, id, "container")
}

// isNotFound tells whether err is a NotFound status.
func isNotFound(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.NotFound
}

// matchLabels tells whether labels hold every key/value of selector.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
