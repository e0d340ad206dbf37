package fakecri

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const pauseImage = "registry.k8s.io/pause:3.10"

type clients struct {
	rt  runtimeapi.RuntimeServiceClient
	img runtimeapi.ImageServiceClient
}

// start serves a fake runtime on a socket in a temporary directory and connects a gRPC client.
func start(t testing.TB, cfg Config) (*Server, clients) {
	t.Helper()
	s := New(cfg)
	sock := filepath.Join(t.TempDir(), "cri.sock")
	if err := s.Serve(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if got := s.Endpoint(); got != "unix://"+sock {
		t.Fatalf("Endpoint = %q", got)
	}
	conn, err := grpc.NewClient(s.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return s, clients{runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)}
}

func sandboxConfig(name string, hostNetwork bool) *runtimeapi.PodSandboxConfig {
	network := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		network = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
		LogDirectory: "/var/log/pods/default_" + name + "_uid-" + name,
		Labels:       map[string]string{"io.kubernetes.pod.name": name, "app": "web"},
		Annotations:  map[string]string{"note": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: network},
		}},
	}
}

func containerConfig(name, image string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: name},
		Image:       &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: image},
		Labels:      map[string]string{"io.kubernetes.container.name": name},
		Annotations: map[string]string{"io.kubernetes.container.restartCount": "0"},
		LogPath:     name + "/0.log",
		Mounts:      []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/tmp/data"}},
	}
}

func runSandbox(t testing.TB, c clients, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	resp, err := c.rt.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return resp.PodSandboxId
}

func createContainer(t testing.TB, c clients, sandboxID string, sb *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	resp, err := c.rt.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sb})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	return resp.ContainerId
}

func containerStatus(t testing.TB, c clients, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := c.rt.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return resp.Status
}

func sandboxStatus(t testing.TB, c clients, id string) *runtimeapi.PodSandboxStatus {
	t.Helper()
	resp, err := c.rt.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	return resp.Status
}

func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func TestVersionAndStatus(t *testing.T) {
	_, c := start(t, Config{})
	ctx := context.Background()
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeApiVersion != "v1" || v.RuntimeName != "fakecri" || v.RuntimeVersion == "" {
		t.Errorf("version = %v", v)
	}
	st, err := c.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for _, cond := range st.Status.Conditions {
		ready[cond.Type] = cond.Status
	}
	if !ready[runtimeapi.RuntimeReady] || !ready[runtimeapi.NetworkReady] {
		t.Errorf("conditions = %v", st.Status.Conditions)
	}
	if _, err := c.rt.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.0.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	rc, err := c.rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtimeapi.CgroupDriver_SYSTEMD {
		t.Errorf("RuntimeConfig = %v, %v", rc, err)
	}
}

func TestSetRuntimeCondition(t *testing.T) {
	s, c := start(t, Config{})
	s.SetRuntimeCondition(runtimeapi.NetworkReady, false, "NetworkPluginNotReady", "cni config uninitialized")
	st, err := c.rt.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range st.Status.Conditions {
		if cond.Type == runtimeapi.NetworkReady && (cond.Status || cond.Reason != "NetworkPluginNotReady") {
			t.Errorf("network condition = %v", cond)
		}
		if cond.Type == runtimeapi.RuntimeReady && !cond.Status {
			t.Errorf("runtime condition = %v", cond)
		}
	}
}

func TestSandboxLifecycle(t *testing.T) {
	_, c := start(t, Config{Images: []string{"nginx:1.27"}})
	ctx := context.Background()
	before := time.Now().UnixNano()
	cfg := sandboxConfig("web", false)
	id := runSandbox(t, c, cfg)
	if len(id) != 64 {
		t.Errorf("sandbox id %q: want 64 hex digits", id)
	}

	st := sandboxStatus(t, c, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("state = %s", st.State)
	}
	if st.CreatedAt < before || st.CreatedAt > time.Now().UnixNano() {
		t.Errorf("createdAt = %d, not a ns timestamp of now", st.CreatedAt)
	}
	if st.Metadata.Name != "web" || st.Metadata.Uid != "uid-web" || st.Labels["app"] != "web" || st.Annotations["note"] != "web" {
		t.Errorf("status = %v", st)
	}
	if !strings.HasPrefix(st.Network.GetIp(), "127.99.") {
		t.Errorf("ip = %q, want one in 127.99.0.0/16", st.Network.GetIp())
	}
	if st.Linux.Namespaces.Options.Network != runtimeapi.NamespaceMode_POD {
		t.Errorf("namespaces = %v", st.Linux.Namespaces.Options)
	}

	// A unique prefix works as an id.
	if st := sandboxStatus(t, c, id[:12]); st.Id != id {
		t.Errorf("status by prefix: id %q", st.Id)
	}

	// The same name and attempt cannot be created twice; a new attempt can.
	_, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("web", false)})
	wantCode(t, err, codes.AlreadyExists)
	retry := sandboxConfig("web", false)
	retry.Metadata.Attempt = 1
	id2 := runSandbox(t, c, retry)
	if ip1, ip2 := st.Network.Ip, sandboxStatus(t, c, id2).Network.Ip; ip1 == ip2 {
		t.Errorf("two sandboxes share ip %s", ip1)
	}

	// Host network sandboxes get no IP, and must not set a hostname.
	hostCfg := sandboxConfig("host", true)
	hostCfg.Hostname = "host"
	_, err = c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: hostCfg})
	wantCode(t, err, codes.InvalidArgument)
	hostID := runSandbox(t, c, sandboxConfig("host", true))
	if ip := sandboxStatus(t, c, hostID).Network.GetIp(); ip != "" {
		t.Errorf("host network sandbox ip = %q", ip)
	}

	// Containers: one running, one created, one exited.
	running := createContainer(t, c, id, cfg, containerConfig("app", "nginx:1.27"))
	created := createContainer(t, c, id, cfg, containerConfig("side", "nginx:1.27"))
	exited := createContainer(t, c, id, cfg, containerConfig("done", "nginx:1.27"))
	for _, cid := range []string{running, exited} {
		if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cid}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: exited}); err != nil {
		t.Fatal(err)
	}

	// Stop: NOTREADY, no IP, running containers killed (137), others untouched.
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	st = sandboxStatus(t, c, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || st.Network.GetIp() != "" {
		t.Errorf("after stop: state %s ip %q", st.State, st.Network.GetIp())
	}
	if cs := containerStatus(t, c, running); cs.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.ExitCode != 137 || cs.Reason != "Error" || cs.FinishedAt == 0 {
		t.Errorf("running container after sandbox stop: %s exit %d reason %q", cs.State, cs.ExitCode, cs.Reason)
	}
	if cs := containerStatus(t, c, created); cs.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after sandbox stop: %s", cs.State)
	}
	if cs := containerStatus(t, c, exited); cs.ExitCode != 0 || cs.Reason != "Completed" {
		t.Errorf("exited container after sandbox stop: exit %d reason %q", cs.ExitCode, cs.Reason)
	}
	// No new containers in a stopped sandbox; stopping again is fine.
	_, err = c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: id, Config: containerConfig("late", "nginx:1.27")})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}

	// Remove: the sandbox and its containers are gone, and the name is free again.
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	_, err = c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	wantCode(t, err, codes.NotFound)
	for _, cid := range []string{running, created, exited} {
		_, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: cid})
		wantCode(t, err, codes.NotFound)
	}
	runSandbox(t, c, sandboxConfig("web", false))

	// Stop and remove of unknown sandboxes succeed.
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("StopPodSandbox(removed): %v", err)
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "nope"}); err != nil {
		t.Errorf("RemovePodSandbox(unknown): %v", err)
	}
}

func TestRemoveRunningSandbox(t *testing.T) {
	_, c := start(t, Config{Images: []string{"nginx"}})
	ctx := context.Background()
	cfg := sandboxConfig("web", false)
	id := runSandbox(t, c, cfg)
	cid := createContainer(t, c, id, cfg, containerConfig("app", "nginx"))
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	list, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 0 {
		t.Errorf("containers after removing their sandbox: %v, %v", list.GetContainers(), err)
	}
}

func TestContainerLifecycle(t *testing.T) {
	s, c := start(t, Config{Images: []string{pauseImage}})
	ctx := context.Background()
	sbCfg := sandboxConfig("web", false)
	sb := runSandbox(t, c, sbCfg)

	// An image that is not present: NotFound, as containerd says.
	_, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: containerConfig("app", "nginx:1.27"), SandboxConfig: sbCfg})
	wantCode(t, err, codes.NotFound)
	if !strings.Contains(err.Error(), `failed to resolve image "docker.io/library/nginx:1.27"`) {
		t.Errorf("error = %v", err)
	}
	pull, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "nginx:1.27"}})
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet creates containers from the image ref PullImage returned.
	cfg := containerConfig("app", pull.ImageRef)
	cfg.Image.UserSpecifiedImage = "nginx:1.27"
	_, err = c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "unknown", Config: cfg})
	wantCode(t, err, codes.NotFound)
	id := createContainer(t, c, sb, sbCfg, cfg)
	_, err = c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg})
	wantCode(t, err, codes.AlreadyExists)

	cs := containerStatus(t, c, id)
	if cs.State != runtimeapi.ContainerState_CONTAINER_CREATED || cs.CreatedAt == 0 || cs.StartedAt != 0 || cs.FinishedAt != 0 {
		t.Errorf("created: %v", cs)
	}
	if cs.Image.Image != "docker.io/library/nginx:1.27" || cs.Image.UserSpecifiedImage != "nginx:1.27" ||
		!strings.HasPrefix(cs.ImageRef, "docker.io/library/nginx@sha256:") || cs.ImageId != pull.ImageRef {
		t.Errorf("image %v ref %q id %q", cs.Image, cs.ImageRef, cs.ImageId)
	}
	if cs.LogPath != "/var/log/pods/default_web_uid-web/app/0.log" {
		t.Errorf("log path = %q", cs.LogPath)
	}
	if cs.Metadata.Name != "app" || cs.Labels["io.kubernetes.container.name"] != "app" ||
		cs.Annotations["io.kubernetes.container.restartCount"] != "0" || len(cs.Mounts) != 1 {
		t.Errorf("status = %v", cs)
	}

	// Exec needs a running container.
	_, err = c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}})
	wantCode(t, err, codes.FailedPrecondition)

	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	cs = containerStatus(t, c, id)
	if cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING || cs.StartedAt < cs.CreatedAt {
		t.Errorf("running: %v", cs)
	}
	_, err = c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	wantCode(t, err, codes.FailedPrecondition)

	resp, err := c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/tmp/healthy"}, Timeout: 1})
	if err != nil || resp.ExitCode != 0 || len(resp.Stdout) != 0 {
		t.Errorf("ExecSync = %v, %v", resp, err)
	}
	s.SetExecHandler(func(cid string, cmd []string) ([]byte, []byte, int32, error) {
		return []byte("out " + strings.Join(cmd, " ")), []byte("err"), 3, nil
	})
	resp, err = c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"check"}})
	if err != nil || resp.ExitCode != 3 || string(resp.Stdout) != "out check" || string(resp.Stderr) != "err" {
		t.Errorf("ExecSync with handler = %v, %v", resp, err)
	}
	execs := s.ExecCalls()
	if len(execs) != 3 || execs[1].ContainerID != id || strings.Join(execs[1].Cmd, " ") != "cat /tmp/healthy" || execs[1].Timeout != 1 {
		t.Errorf("exec calls = %+v", execs)
	}

	if _, err := c.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}}); err != nil {
		t.Fatal(err)
	}
	if cs := containerStatus(t, c, id); cs.Resources.GetLinux().GetCpuShares() != 512 {
		t.Errorf("resources = %v", cs.Resources)
	}
	if _, err := c.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Error(err)
	}

	// StopContainer: exit 0, as if SIGTERM was handled.
	if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 30}); err != nil {
		t.Fatal(err)
	}
	cs = containerStatus(t, c, id)
	if cs.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.ExitCode != 0 || cs.Reason != "Completed" || cs.FinishedAt < cs.StartedAt {
		t.Errorf("stopped: %v", cs)
	}
	finished := cs.FinishedAt
	if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("stopping an exited container: %v", err)
	}
	if cs := containerStatus(t, c, id); cs.FinishedAt != finished {
		t.Error("stopping an exited container changed it")
	}
	_, err = c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	wantCode(t, err, codes.FailedPrecondition)

	if _, err := c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	_, err = c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	wantCode(t, err, codes.NotFound)
	if _, err := c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("removing a removed container: %v", err)
	}
	_, err = c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id})
	wantCode(t, err, codes.NotFound)
	// The name is free again.
	createContainer(t, c, sb, sbCfg, cfg)
}

func TestSetContainerExited(t *testing.T) {
	s, c := start(t, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	sbCfg := sandboxConfig("job", false)
	sb := runSandbox(t, c, sbCfg)
	tests := []struct {
		name       string
		code       int32
		reason     string
		wantReason string
	}{
		{"success", 0, "", "Completed"},
		{"failure", 1, "", "Error"},
		{"oom", 137, "OOMKilled", "OOMKilled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := createContainer(t, c, sb, sbCfg, containerConfig(tt.name, "busybox"))
			if err := s.SetContainerExited(id, tt.code, tt.reason); err == nil {
				t.Error("SetContainerExited on a created container succeeded")
			}
			if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
				t.Fatal(err)
			}
			before := time.Now().UnixNano()
			if err := s.SetContainerExited(id, tt.code, tt.reason); err != nil {
				t.Fatal(err)
			}
			cs := containerStatus(t, c, id)
			if cs.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.ExitCode != tt.code || cs.Reason != tt.wantReason || cs.FinishedAt < before {
				t.Errorf("status = %s exit %d reason %q finished %d", cs.State, cs.ExitCode, cs.Reason, cs.FinishedAt)
			}
		})
	}
	if err := s.SetContainerExited("nope", 0, ""); status.Code(err) != codes.NotFound {
		t.Errorf("unknown container: %v", err)
	}
}

func TestUnknownStates(t *testing.T) {
	s, c := start(t, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	sbCfg := sandboxConfig("p", false)
	sb := runSandbox(t, c, sbCfg)
	id := createContainer(t, c, sb, sbCfg, containerConfig("a", "busybox"))
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetContainerUnknown(id); err != nil {
		t.Fatal(err)
	}
	if cs := containerStatus(t, c, id); cs.State != runtimeapi.ContainerState_CONTAINER_UNKNOWN {
		t.Errorf("state = %s", cs.State)
	}
	if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if cs := containerStatus(t, c, id); cs.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("state after stop = %s", cs.State)
	}
	if err := s.SetSandboxNotReady(sb); err != nil {
		t.Fatal(err)
	}
	if st := sandboxStatus(t, c, sb); st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("sandbox state = %s", st.State)
	}
}

func TestListFilters(t *testing.T) {
	_, c := start(t, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	aCfg, bCfg := sandboxConfig("a", false), sandboxConfig("b", false)
	bCfg.Labels["app"] = "db"
	a, b := runSandbox(t, c, aCfg), runSandbox(t, c, bCfg)
	a1 := createContainer(t, c, a, aCfg, containerConfig("one", "busybox"))
	a2 := createContainer(t, c, a, aCfg, containerConfig("two", "busybox"))
	b1 := createContainer(t, c, b, bCfg, containerConfig("one", "busybox"))
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: a1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}

	sandboxTests := []struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}{
		{"all", nil, []string{a, b}},
		{"by id", &runtimeapi.PodSandboxFilter{Id: b}, []string{b}},
		{"by id prefix", &runtimeapi.PodSandboxFilter{Id: a[:10]}, []string{a}},
		{"unknown id", &runtimeapi.PodSandboxFilter{Id: "zzz"}, nil},
		{"ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}, []string{a}},
		{"not ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, []string{b}},
		{"label", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "db"}}, []string{b}},
		{"two labels", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "web", "io.kubernetes.pod.name": "a"}}, []string{a}},
		{"label mismatch", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "cache"}}, nil},
	}
	for _, tt := range sandboxTests {
		t.Run("sandbox/"+tt.name, func(t *testing.T) {
			resp, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: tt.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range resp.Items {
				got = append(got, it.Id)
				if it.Metadata == nil || it.CreatedAt == 0 || it.Labels["app"] == "" {
					t.Errorf("item = %v", it)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}

	containerTests := []struct {
		name   string
		filter *runtimeapi.ContainerFilter
		want   []string
	}{
		{"all", nil, []string{a1, a2, b1}},
		{"by id", &runtimeapi.ContainerFilter{Id: a2}, []string{a2}},
		{"by sandbox", &runtimeapi.ContainerFilter{PodSandboxId: a}, []string{a1, a2}},
		{"by sandbox prefix", &runtimeapi.ContainerFilter{PodSandboxId: b[:8]}, []string{b1}},
		{"unknown sandbox", &runtimeapi.ContainerFilter{PodSandboxId: "zzz"}, nil},
		{"running", &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}, []string{a1}},
		{"created", &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_CREATED}}, []string{a2, b1}},
		{"label", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.container.name": "one"}}, []string{a1, b1}},
		{"label and sandbox", &runtimeapi.ContainerFilter{PodSandboxId: b, LabelSelector: map[string]string{"io.kubernetes.container.name": "one"}}, []string{b1}},
	}
	for _, tt := range containerTests {
		t.Run("container/"+tt.name, func(t *testing.T) {
			resp, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: tt.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range resp.Containers {
				got = append(got, it.Id)
				if it.PodSandboxId == "" || it.Metadata == nil || it.Image == nil || it.ImageRef == "" || it.CreatedAt == 0 {
					t.Errorf("item = %v", it)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStreamLists(t *testing.T) {
	_, c := start(t, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	const n = 250 // more than one chunk
	for i := range n {
		cfg := sandboxConfig(fmt.Sprintf("p%d", i), false)
		createContainer(t, c, runSandbox(t, c, cfg), cfg, containerConfig("c", "busybox"))
	}
	sandboxes, err := c.rt.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	total, msgs := 0, 0
	for {
		resp, err := sandboxes.Recv()
		if err != nil {
			break
		}
		total += len(resp.PodSandboxes)
		msgs++
	}
	if total != n || msgs != 3 {
		t.Errorf("streamed %d sandboxes in %d messages, want %d in 3", total, msgs, n)
	}
	containers, err := c.rt.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	total = 0
	for {
		resp, err := containers.Recv()
		if err != nil {
			break
		}
		total += len(resp.Containers)
	}
	if total != n {
		t.Errorf("streamed %d containers, want %d", total, n)
	}
}

func TestImages(t *testing.T) {
	_, c := start(t, Config{Images: []string{"nginx:1.27", pauseImage}})
	ctx := context.Background()
	status := func(ref string) *runtimeapi.Image {
		t.Helper()
		resp, err := c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Image
	}
	list, err := c.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 2 {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	img := status("nginx:1.27")
	if img == nil || img.RepoTags[0] != "docker.io/library/nginx:1.27" || !strings.HasPrefix(img.Id, "sha256:") || img.Size == 0 || len(img.RepoDigests) != 1 {
		t.Fatalf("ImageStatus(nginx:1.27) = %v", img)
	}
	// The same image by full name, id, bare id and digest.
	for _, ref := range []string{"docker.io/library/nginx:1.27", "docker.io/nginx:1.27", img.Id, strings.TrimPrefix(img.Id, "sha256:"), img.RepoDigests[0]} {
		if got := status(ref); got == nil || got.Id != img.Id {
			t.Errorf("ImageStatus(%q) = %v", ref, got)
		}
	}
	if got := status("nginx:1.28"); got != nil {
		t.Errorf("ImageStatus of an absent image = %v, want nil", got)
	}
	if got := status("nginx"); got != nil {
		t.Errorf("ImageStatus(nginx) = %v: nginx is nginx:latest, not present", got)
	}

	filtered, err := c.img.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: pauseImage}}})
	if err != nil || len(filtered.Images) != 1 || filtered.Images[0].RepoTags[0] != pauseImage {
		t.Errorf("ListImages(filter) = %v, %v", filtered, err)
	}

	pull, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "quay.io/app/server:v2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := status("quay.io/app/server:v2"); got == nil || got.Id != pull.ImageRef {
		t.Errorf("after pull: %v (ref %q)", got, pull.ImageRef)
	}
	again, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "quay.io/app/server:v2"}})
	if err != nil || again.ImageRef != pull.ImageRef {
		t.Errorf("second pull = %v, %v", again, err)
	}
	_, err = c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{}})
	wantCode(t, err, codes.InvalidArgument)

	if _, err := c.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: pull.ImageRef}}); err != nil {
		t.Fatal(err)
	}
	if got := status("quay.io/app/server:v2"); got != nil {
		t.Errorf("after remove: %v", got)
	}
	if _, err := c.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "quay.io/app/server:v2"}}); err != nil {
		t.Errorf("removing an absent image: %v", err)
	}

	fs, err := c.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.Value == 0 || fs.ImageFilesystems[0].FsId.Mountpoint == "" {
		t.Errorf("ImageFsInfo = %v, %v", fs, err)
	}
}

func TestNormalizeRef(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nginx", "docker.io/library/nginx:latest"},
		{"nginx:1.27", "docker.io/library/nginx:1.27"},
		{"library/nginx", "docker.io/library/nginx:latest"},
		{"me/app:1", "docker.io/me/app:1"},
		{"docker.io/nginx", "docker.io/library/nginx:latest"},
		{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"},
		{"localhost/app", "localhost/app:latest"},
		{"localhost:5000/app", "localhost:5000/app:latest"},
		{"my.registry:5000/team/app:v1", "my.registry:5000/team/app:v1"},
		{"nginx@sha256:abcd", "docker.io/library/nginx@sha256:abcd"},
		{"sha256:abcd", "sha256:abcd"},
	}
	for _, tt := range tests {
		if got := normalizeRef(tt.in); got != tt.want {
			t.Errorf("normalizeRef(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestInjectErrorAndCalls(t *testing.T) {
	s, c := start(t, Config{})
	ctx := context.Background()
	s.InjectError("RunPodSandbox", status.Error(codes.Unavailable, "network not ready"))
	s.InjectError("RunPodSandbox", errors.New("plain failure"))
	s.InjectError("PullImage", status.Error(codes.Unknown, "pull access denied"))

	_, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("a", false)})
	wantCode(t, err, codes.Unavailable)
	_, err = c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("a", false)})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "plain failure") {
		t.Errorf("second injected error = %v", err)
	}
	runSandbox(t, c, sandboxConfig("a", false)) // the injected errors are used up
	_, err = c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "x"}})
	wantCode(t, err, codes.Unknown)
	if _, err = c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "x"}}); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if calls["RunPodSandbox"] != 3 || calls["PullImage"] != 2 || calls["Version"] != 0 {
		t.Errorf("calls = %v", calls)
	}
	calls["RunPodSandbox"] = 100 // a copy
	if s.Calls()["RunPodSandbox"] != 3 {
		t.Error("Calls returned the server's own map")
	}
}

func TestLatency(t *testing.T) {
	_, c := start(t, Config{Latency: 30 * time.Millisecond})
	begin := time.Now()
	if _, err := c.rt.Version(context.Background(), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Errorf("call took %s, want at least the 30ms latency", d)
	}
	// A caller's deadline cuts the latency short.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	wantCode(t, err, codes.DeadlineExceeded)
}

func TestContainerEvents(t *testing.T) {
	s, c := start(t, Config{Images: []string{"busybox"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := c.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is registered by the server's handler; wait until it is there.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.subscribers)
		s.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event subscriber")
		}
		time.Sleep(time.Millisecond)
	}

	sbCfg := sandboxConfig("p", false)
	sb := runSandbox(t, c, sbCfg)
	id := createContainer(t, c, sb, sbCfg, containerConfig("a", "busybox"))
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetContainerExited(id, 1, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id string
		t  runtimeapi.ContainerEventType
	}{
		{sb, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{sb, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
	}
	for i, w := range want {
		ev, err := events.Recv()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.ContainerId != w.id || ev.ContainerEventType != w.t || ev.CreatedAt == 0 || ev.PodSandboxStatus.GetId() != sb {
			t.Errorf("event %d = %s %s (sandbox %s), want %s %s", i, ev.ContainerId, ev.ContainerEventType, ev.PodSandboxStatus.GetId(), w.id, w.t)
		}
		if w.id == id && w.t == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			if len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].ExitCode != 1 {
				t.Errorf("stopped event statuses = %v", ev.ContainersStatuses)
			}
		}
	}
}

func TestServeReplacesStaleSocketAndStops(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sub", "cri.sock")
	first := New(Config{})
	if err := first.Serve(sock); err != nil {
		t.Fatal(err)
	}
	if err := first.Serve(sock); err == nil {
		t.Error("serving twice succeeded")
	}
	first.Stop()
	first.Stop() // twice is fine

	second := New(Config{})
	if err := second.Serve(sock); err != nil {
		t.Fatalf("Serve after a stopped server: %v", err)
	}
	defer second.Stop()
	conn, err := grpc.NewClient(second.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := runtimeapi.NewRuntimeServiceClient(conn).Version(context.Background(), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentPods runs many pods' lifecycles at once; run with -race.
func TestConcurrentPods(t *testing.T) {
	s, c := start(t, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	const pods = 50
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- podLifecycle(ctx, c, fmt.Sprintf("pod-%d", i))
		}()
	}
	go func() {
		for range 20 {
			_, _ = c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			_ = s.Calls()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("sandboxes left: %d, %v", len(list.GetItems()), err)
	}
	if n := s.Calls()["RunPodSandbox"]; n != pods {
		t.Errorf("RunPodSandbox calls = %d", n)
	}
}

// podLifecycle is what a node agent does for one pod: sandbox, two containers, stop, remove.
func podLifecycle(ctx context.Context, c clients, name string) error {
	cfg := sandboxConfig(name, false)
	sb, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return err
	}
	for _, cn := range []string{"app", "sidecar"} {
		cc, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: containerConfig(cn, "busybox"), SandboxConfig: cfg})
		if err != nil {
			return err
		}
		if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
			return err
		}
		if _, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: cc.ContainerId}); err != nil {
			return err
		}
	}
	if _, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		return err
	}
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		return err
	}
	_, err = c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId})
	return err
}

// BenchmarkPodLifecycle measures one pod's full lifecycle through the gRPC client.
func BenchmarkPodLifecycle(b *testing.B) {
	_, c := start(b, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := podLifecycle(ctx, c, fmt.Sprintf("pod-%d", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkList500 measures a relist of a node with 500 pods of two containers.
func BenchmarkList500(b *testing.B) {
	_, c := start(b, Config{Images: []string{"busybox"}})
	ctx := context.Background()
	for i := range 500 {
		cfg := sandboxConfig(fmt.Sprintf("pod-%d", i), false)
		sb := runSandbox(b, c, cfg)
		createContainer(b, c, sb, cfg, containerConfig("app", "busybox"))
		createContainer(b, c, sb, cfg, containerConfig("sidecar", "busybox"))
	}
	for b.Loop() {
		if _, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
