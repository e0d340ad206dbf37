package fakecri_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
)

// TestWithCRIClient drives the fake runtime through Berth's own CRI client.
func TestWithCRIClient(t *testing.T) {
	s := fakecri.New(fakecri.Config{})
	if err := s.Serve(filepath.Join(t.TempDir(), "cri.sock")); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	client, err := cri.NewClient(cri.ClientConfig{Endpoint: s.Endpoint(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()

	v, err := client.WaitReady(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || v.RuntimeName != fakecri.RuntimeName {
		t.Fatalf("WaitReady = %v, %v", v, err)
	}
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}}
	sb, err := client.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	cCfg := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox:1.36"}}
	if _, err := client.CreateContainer(ctx, sb, cCfg, sbCfg); !cri.IsNotFound(err) {
		t.Errorf("CreateContainer with an absent image: %v, want NotFound", err)
	}
	ref, err := client.PullImage(ctx, "busybox:1.36", sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	cCfg.Image.Image = ref
	id, err := client.CreateContainer(ctx, sb, cCfg, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, _, code, err := client.ExecSync(ctx, id, []string{"true"}, time.Second); err != nil || code != 0 {
		t.Errorf("ExecSync = %d, %v", code, err)
	}
	s.InjectError("StopContainer", status.Error(codes.DeadlineExceeded, "stop timed out"))
	if err := client.StopContainer(ctx, id, 30); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("StopContainer with an injected error: %v", err)
	}
	if err := client.StopContainer(ctx, id, 30); err != nil {
		t.Fatal(err)
	}
	st, err := client.ContainerStatus(ctx, id)
	if err != nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 {
		t.Errorf("ContainerStatus = %v, %v", st, err)
	}
	if err := client.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ContainerStatus(ctx, id); !cri.IsNotFound(err) {
		t.Errorf("ContainerStatus after the sandbox was removed: %v, want NotFound", err)
	}
	if n := s.Calls()["StopContainer"]; n != 2 {
		t.Errorf("StopContainer calls = %d, want 2", n)
	}
}
