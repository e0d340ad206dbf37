package fakecri

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exit of a container killed by its sandbox's stop or by a forced removal: SIGKILL.
const (
	killedExitCode = 137
	reasonError    = "Error"
	reasonDone     = "Completed"
)

// listChunk is how many items a Stream* list call sends per message.
const listChunk = 100

type sandbox struct {
	id        string
	name      string // reserved name
	config    *runtimeapi.PodSandboxConfig
	handler   string
	state     runtimeapi.PodSandboxState
	createdAt int64
	ip        string // "" for host network
}

type container struct {
	id, sandboxID string
	name          string // reserved name
	config        *runtimeapi.ContainerConfig
	image         *image // as resolved at creation
	imageName     string
	logPath       string
	resources     *runtimeapi.LinuxContainerResources

	state                            runtimeapi.ContainerState
	createdAt, startedAt, finishedAt int64
	exitCode                         int32
	reason, message                  string
}

// Version returns the fake runtime's name and versions.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       RuntimeName,
		RuntimeVersion:    RuntimeVersion,
		RuntimeApiVersion: RuntimeAPIVersion,
	}, nil
}

// Status reports the runtime conditions (RuntimeReady and NetworkReady true unless changed with
// SetRuntimeCondition) and one runtime handler, the default "".
func (s *Server) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conds := make([]*runtimeapi.RuntimeCondition, len(s.conditions))
	for i, c := range s.conditions {
		conds[i] = &runtimeapi.RuntimeCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message}
	}
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: conds},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{
			Name:     "",
			Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true},
		}},
	}, nil
}

// UpdateRuntimeConfig records the pod CIDR.
func (s *Server) UpdateRuntimeConfig(_ context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.podCIDR = req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// RuntimeConfig reports Config.CgroupDriver.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{
		Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: s.cfg.CgroupDriver},
	}, nil
}

// RunPodSandbox creates a READY sandbox with a fake IP (none for host network).
func (s *Server) RunPodSandbox(_ context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md == nil {
		return nil, status.Error(codes.InvalidArgument, "sandbox config must include metadata")
	}
	if md.Name == "" || md.Namespace == "" || md.Uid == "" {
		return nil, status.Errorf(codes.InvalidArgument, "sandbox metadata must include name, namespace and uid: %v", md)
	}
	hostNetwork := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
	if hostNetwork && cfg.GetHostname() != "" {
		// The containerd on Berth's machines fails such a sandbox: it would have to set the
		// node's own hostname.
		return nil, status.Errorf(codes.InvalidArgument, "host network sandbox %q must not set a hostname (got %q)", md.Name, cfg.GetHostname())
	}
	name := strings.Join([]string{md.Name, md.Namespace, md.Uid, fmt.Sprint(md.Attempt)}, "_")

	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.names[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "failed to reserve sandbox name %q: name %q is reserved for %q", name, name, other)
	}
	sb := &sandbox{
		id:        newID(),
		name:      name,
		config:    cfg,
		handler:   req.GetRuntimeHandler(),
		state:     runtimeapi.PodSandboxState_SANDBOX_READY,
		createdAt: s.now(),
	}
	if !hostNetwork {
		s.nextIP++
		n := s.nextIP
		// 127.99.0.1 .. 127.99.255.254, then around again.
		sb.ip = fmt.Sprintf("127.99.%d.%d", (n/254)%256, n%254+1)
	}
	s.sandboxes[sb.id] = sb
	s.names[name] = sb.id
	s.emitSandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.emitSandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.id}, nil
}

// StopPodSandbox kills the sandbox's running containers (exit code 137) and makes it NOTREADY.
// An unknown sandbox is not an error.
func (s *Server) StopPodSandbox(_ context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.findSandbox(req.GetPodSandboxId())
	if isNotFound(err) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	} else if err != nil {
		return nil, err
	}
	s.stopSandbox(sb)
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *Server) stopSandbox(sb *sandbox) {
	for _, c := range s.containers {
		if c.sandboxID == sb.id && (c.state == runtimeapi.ContainerState_CONTAINER_RUNNING || c.state == runtimeapi.ContainerState_CONTAINER_UNKNOWN) {
			s.exitContainer(c, killedExitCode, reasonError, "")
		}
	}
	if sb.state == runtimeapi.PodSandboxState_SANDBOX_READY {
		sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		s.emitSandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
}

// RemovePodSandbox stops the sandbox if needed and removes it with all its containers. An
// unknown sandbox is not an error.
func (s *Server) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.findSandbox(req.GetPodSandboxId())
	if isNotFound(err) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	} else if err != nil {
		return nil, err
	}
	s.stopSandbox(sb)
	for _, c := range s.containers {
		if c.sandboxID == sb.id {
			s.removeContainer(c)
		}
	}
	s.emitSandboxEvent(sb, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	delete(s.sandboxes, sb.id)
	delete(s.names, sb.name)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus returns the status of one sandbox.
func (s *Server) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.findSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: s.sandboxStatus(sb), Timestamp: s.now()}, nil
}

func (s *Server) sandboxStatus(sb *sandbox) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.id,
		Metadata:       sb.config.GetMetadata(),
		State:          sb.state,
		CreatedAt:      sb.createdAt,
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
		Labels:         sb.config.GetLabels(),
		Annotations:    sb.config.GetAnnotations(),
		RuntimeHandler: sb.handler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{
			Namespaces: &runtimeapi.Namespace{Options: sb.config.GetLinux().GetSecurityContext().GetNamespaceOptions()},
		},
	}
	if sb.state == runtimeapi.PodSandboxState_SANDBOX_READY {
		st.Network.Ip = sb.ip
	}
	return st
}

// ListPodSandbox lists the sandboxes that match the filter (id or id prefix, state, labels),
// oldest first.
func (s *Server) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runtimeapi.ListPodSandboxResponse{Items: s.listSandboxes(req.GetFilter())}, nil
}

// StreamPodSandboxes is ListPodSandbox sent in chunks.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxesResponse]) error {
	s.mu.Lock()
	items := s.listSandboxes(req.GetFilter())
	s.mu.Unlock()
	for chunk := range slices.Chunk(items, listChunk) {
		if err := stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: chunk}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) listSandboxes(f *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	var id string
	if f.GetId() != "" {
		sb, err := s.findSandbox(f.GetId())
		if err != nil {
			return []*runtimeapi.PodSandbox{}
		}
		id = sb.id
	}
	items := make([]*runtimeapi.PodSandbox, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		if id != "" && sb.id != id {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != sb.state {
			continue
		}
		if !matchLabels(sb.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		items = append(items, &runtimeapi.PodSandbox{
			Id:             sb.id,
			Metadata:       sb.config.GetMetadata(),
			State:          sb.state,
			CreatedAt:      sb.createdAt,
			Labels:         sb.config.GetLabels(),
			Annotations:    sb.config.GetAnnotations(),
			RuntimeHandler: sb.handler,
		})
	}
	slices.SortFunc(items, func(a, b *runtimeapi.PodSandbox) int {
		if c := a.CreatedAt - b.CreatedAt; c != 0 {
			return sign(c)
		}
		return strings.Compare(a.Id, b.Id)
	})
	return items
}

// CreateContainer creates a CREATED container in a READY sandbox, from a present image.
func (s *Server) CreateContainer(_ context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md == nil {
		return nil, status.Error(codes.InvalidArgument, "container config must include metadata")
	}
	if md.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "container metadata must include a name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.findSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if sb.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %q is not ready (%s)", sb.id, sb.state)
	}
	ref := cfg.GetImage().GetImage()
	img := s.lookupImage(ref)
	if img == nil {
		return nil, status.Errorf(codes.NotFound, "failed to resolve image %q: not found", normalizeRef(ref))
	}
	smd := sb.config.GetMetadata()
	name := strings.Join([]string{md.Name, smd.Name, smd.Namespace, smd.Uid, fmt.Sprint(md.Attempt)}, "_")
	if other, ok := s.names[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "failed to reserve container name %q: name %q is reserved for %q", name, name, other)
	}
	imageName := ref
	if len(img.tags) > 0 {
		imageName = img.tags[0]
	}
	c := &container{
		id:        newID(),
		sandboxID: sb.id,
		name:      name,
		config:    cfg,
		image:     img,
		imageName: imageName,
		resources: cfg.GetLinux().GetResources(),
		state:     runtimeapi.ContainerState_CONTAINER_CREATED,
		createdAt: s.now(),
	}
	if lp := cfg.GetLogPath(); lp != "" {
		// As containerd: the container's log path is relative to the sandbox's log directory.
		c.logPath = filepath.Join(sb.config.GetLogDirectory(), lp)
	}
	s.containers[c.id] = c
	s.names[name] = c.id
	s.emitContainerEvent(c, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &runtimeapi.CreateContainerResponse{ContainerId: c.id}, nil
}

// StartContainer starts a CREATED container.
func (s *Server) StartContainer(_ context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is in %s state", c.id, c.state)
	}
	if sb := s.sandboxes[c.sandboxID]; sb == nil || sb.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox container %q is not running", c.sandboxID)
	}
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.startedAt = s.now()
	s.emitContainerEvent(c, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a running container as if it handled SIGTERM at once: EXITED, exit code 0.
// A container that is not running is left as it is.
func (s *Server) StopContainer(_ context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	switch c.state {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		s.exitContainer(c, 0, reasonDone, "")
	case runtimeapi.ContainerState_CONTAINER_UNKNOWN:
		s.exitContainer(c, killedExitCode, reasonError, "")
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

func (s *Server) exitContainer(c *container, exitCode int32, reason, message string) {
	if reason == "" {
		reason = reasonDone
		if exitCode != 0 {
			reason = reasonError
		}
	}
	c.state = runtimeapi.ContainerState_CONTAINER_EXITED
	c.exitCode, c.reason, c.message = exitCode, reason, message
	c.finishedAt = s.now()
	if c.startedAt == 0 {
		c.startedAt = c.finishedAt
	}
	s.emitContainerEvent(c, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// RemoveContainer removes a container, killing it first if it runs. An unknown container is not
// an error.
func (s *Server) RemoveContainer(_ context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(req.GetContainerId())
	if isNotFound(err) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	} else if err != nil {
		return nil, err
	}
	s.removeContainer(c)
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *Server) removeContainer(c *container) {
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING || c.state == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
		s.exitContainer(c, killedExitCode, reasonError, "")
	}
	s.emitContainerEvent(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	delete(s.containers, c.id)
	delete(s.names, c.name)
}

// ListContainers lists the containers that match the filter (id or id prefix, state, sandbox id
// or prefix, labels), oldest first.
func (s *Server) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runtimeapi.ListContainersResponse{Containers: s.listContainers(req.GetFilter())}, nil
}

// StreamContainers is ListContainers sent in chunks.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamContainersResponse]) error {
	s.mu.Lock()
	items := s.listContainers(req.GetFilter())
	s.mu.Unlock()
	for chunk := range slices.Chunk(items, listChunk) {
		if err := stream.Send(&runtimeapi.StreamContainersResponse{Containers: chunk}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) listContainers(f *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	var id, sandboxID string
	if f.GetId() != "" {
		c, err := s.findContainer(f.GetId())
		if err != nil {
			return []*runtimeapi.Container{}
		}
		id = c.id
	}
	if f.GetPodSandboxId() != "" {
		sb, err := s.findSandbox(f.GetPodSandboxId())
		if err != nil {
			return []*runtimeapi.Container{}
		}
		sandboxID = sb.id
	}
	items := make([]*runtimeapi.Container, 0, len(s.containers))
	for _, c := range s.containers {
		if id != "" && c.id != id || sandboxID != "" && c.sandboxID != sandboxID {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != c.state {
			continue
		}
		if !matchLabels(c.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		items = append(items, &runtimeapi.Container{
			Id:           c.id,
			PodSandboxId: c.sandboxID,
			Metadata:     c.config.GetMetadata(),
			Image:        c.imageSpec(),
			ImageRef:     c.image.ref(),
			ImageId:      c.image.id,
			State:        c.state,
			CreatedAt:    c.createdAt,
			Labels:       c.config.GetLabels(),
			Annotations:  c.config.GetAnnotations(),
		})
	}
	slices.SortFunc(items, func(a, b *runtimeapi.Container) int {
		if c := a.CreatedAt - b.CreatedAt; c != 0 {
			return sign(c)
		}
		return strings.Compare(a.Id, b.Id)
	})
	return items
}

func (c *container) imageSpec() *runtimeapi.ImageSpec {
	return &runtimeapi.ImageSpec{
		Image:              c.imageName,
		UserSpecifiedImage: c.config.GetImage().GetUserSpecifiedImage(),
		Annotations:        c.config.GetImage().GetAnnotations(),
	}
}

// ContainerStatus returns the status of one container.
func (s *Server) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatusResponse{Status: s.containerStatus(c)}, nil
}

func (s *Server) containerStatus(c *container) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id:          c.id,
		Metadata:    c.config.GetMetadata(),
		State:       c.state,
		CreatedAt:   c.createdAt,
		StartedAt:   c.startedAt,
		FinishedAt:  c.finishedAt,
		ExitCode:    c.exitCode,
		Image:       c.imageSpec(),
		ImageRef:    c.image.ref(),
		ImageId:     c.image.id,
		Reason:      c.reason,
		Message:     c.message,
		Labels:      c.config.GetLabels(),
		Annotations: c.config.GetAnnotations(),
		Mounts:      c.config.GetMounts(),
		LogPath:     c.logPath,
		StopSignal:  c.config.GetStopSignal(),
	}
	if c.resources != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: c.resources}
	}
	return st
}

// UpdateContainerResources records new Linux resources for a container.
func (s *Server) UpdateContainerResources(_ context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_EXITED {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is in %s state", c.id, c.state)
	}
	if r := req.GetLinux(); r != nil {
		c.resources = r
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog succeeds for a running container.
func (s *Server) ReopenContainerLog(_ context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.findContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is not running", c.id)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// ExecSync records the call and, in a running container, answers with the ExecHandler or, by
// default, exit code 0 and no output.
func (s *Server) ExecSync(_ context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	s.mu.Lock()
	s.execs = append(s.execs, ExecCall{ContainerID: req.GetContainerId(), Cmd: req.GetCmd(), Timeout: req.GetTimeout()})
	c, err := s.findContainer(req.GetContainerId())
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		s.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is in %s state, not running", c.id, c.state)
	}
	if len(req.GetCmd()) == 0 {
		s.mu.Unlock()
		return nil, status.Error(codes.InvalidArgument, "exec command is empty")
	}
	h, id := s.execHandler, c.id
	s.mu.Unlock()
	if h == nil {
		return &runtimeapi.ExecSyncResponse{}, nil
	}
	stdout, stderr, code, err := h(id, req.GetCmd())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout, Stderr: stderr, ExitCode: code}, nil
}

// GetContainerEvents streams container and sandbox lifecycle events until the client goes away
// or the server stops.
func (s *Server) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	if s.cfg.NoContainerEvents {
		return status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	}
	ch := make(chan *runtimeapi.ContainerEventResponse, 1024)
	broken := make(chan struct{})
	s.mu.Lock()
	s.subscribers[ch] = broken
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subscribers, ch)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-broken:
			return status.Error(codes.Unavailable, "container event stream broken (fakecri.BreakContainerEvents)")
		case ev := <-ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

func (s *Server) emitContainerEvent(c *container, t runtimeapi.ContainerEventType) {
	if len(s.subscribers) == 0 {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{ContainerId: c.id, ContainerEventType: t, CreatedAt: s.now()}
	if sb := s.sandboxes[c.sandboxID]; sb != nil {
		ev.PodSandboxStatus = s.sandboxStatus(sb)
		ev.ContainersStatuses = s.sandboxContainerStatuses(sb.id)
	}
	s.publish(ev)
}

func (s *Server) emitSandboxEvent(sb *sandbox, t runtimeapi.ContainerEventType) {
	if len(s.subscribers) == 0 {
		return
	}
	s.publish(&runtimeapi.ContainerEventResponse{
		ContainerId:        sb.id,
		ContainerEventType: t,
		CreatedAt:          s.now(),
		PodSandboxStatus:   s.sandboxStatus(sb),
		ContainersStatuses: s.sandboxContainerStatuses(sb.id),
	})
}

func (s *Server) sandboxContainerStatuses(sandboxID string) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range s.containers {
		if c.sandboxID == sandboxID {
			out = append(out, s.containerStatus(c))
		}
	}
	return out
}

// publish hands an event to every subscriber without blocking; a subscriber whose buffer is full
// loses it.
// BreakContainerEvents ends every open GetContainerEvents stream with Unavailable, as a runtime
// that restarts does; clients may open new ones.
func (s *Server) BreakContainerEvents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch, broken := range s.subscribers {
		close(broken)
		delete(s.subscribers, ch)
	}
}

// EventSubscribers is the number of open GetContainerEvents streams.
func (s *Server) EventSubscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subscribers)
}

func (s *Server) publish(ev *runtimeapi.ContainerEventResponse) {
	for ch := range s.subscribers {
		select {
		case ch <- ev:
		default:
			s.dropped++
		}
	}
}

func sign(x int64) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}
