package cri_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
	"google.golang.org/grpc"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestEndpointParsing(t *testing.T) {
	for endpoint, wantErr := range map[string]string{
		"unix:///run/containerd/containerd.sock": "",
		"unix:/run/x.sock":                       "",
		"/run/x.sock":                            "",
		"":                                       "container runtime endpoint is empty",
		"tcp://127.0.0.1:1234":                   "only unix sockets are supported",
		"unix://relative.sock":                   "want an absolute socket path",
	} {
		c, err := cri.NewClient(cri.ClientConfig{Endpoint: endpoint})
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%q: %v", endpoint, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%q: err %v, want %q", endpoint, err, wantErr)
		}
		if c != nil {
			c.Close()
		}
	}
}

// TestMissingSocketSaysWhatToDo: no runtime at the endpoint is an error naming the socket and the
// flag to set, not a gRPC dial message.
func TestMissingSocketSaysWhatToDo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	c, err := cri.NewClient(cri.ClientConfig{Endpoint: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.WaitReady(ctx, quiet)
	if err == nil || !strings.Contains(err.Error(), sock+" does not exist") || !strings.Contains(err.Error(), "--container-runtime-endpoint") {
		t.Fatalf("err = %v", err)
	}
}

// TestNotCRIv1FailsAtOnce: a gRPC server without the CRI v1 services answers Unimplemented; waiting
// would not help, so WaitReady returns at once with ErrNotCRIv1.
func TestNotCRIv1FailsAtOnce(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "other.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go srv.Serve(l)
	defer srv.Stop()
	c, err := cri.NewClient(cri.ClientConfig{Endpoint: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.WaitReady(ctx, quiet)
	if !errors.Is(err, cri.ErrNotCRIv1) || !strings.Contains(err.Error(), "runtime.v1.RuntimeService") {
		t.Fatalf("err = %v, want ErrNotCRIv1 naming the service", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %s: should fail at once", time.Since(start))
	}
}

// TestReconnectsAfterRuntimeRestart: the same client works again once the runtime is back on its
// socket, and WaitReady waits for it meanwhile.
func TestReconnectsAfterRuntimeRestart(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	srv := fakecri.New(fakecri.Config{})
	if err := srv.Serve(sock); err != nil {
		t.Fatal(err)
	}
	c, err := cri.NewClient(cri.ClientConfig{Endpoint: sock, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if v, err := c.Version(ctx); err != nil || v.RuntimeName != fakecri.RuntimeName {
		t.Fatalf("version: %v %v", v, err)
	}
	srv.Stop()
	if _, err := c.ListPodSandbox(ctx, nil); err == nil {
		t.Fatal("a call succeeded while the runtime was down")
	}
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		srv2 := fakecri.New(fakecri.Config{})
		t.Cleanup(srv2.Stop)
		restarted <- srv2.Serve(sock)
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.WaitReady(wctx, quiet); err != nil {
		t.Fatalf("WaitReady across the restart: %v", err)
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListPodSandbox(ctx, nil); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}

func TestIsNotFound(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	srv := fakecri.New(fakecri.Config{})
	if err := srv.Serve(sock); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := cri.NewClient(cri.ClientConfig{Endpoint: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.ContainerStatus(context.Background(), strings.Repeat("a", 64))
	if !cri.IsNotFound(err) || !strings.Contains(err.Error(), "CRI ContainerStatus") {
		t.Fatalf("err = %v, want a NotFound naming the call", err)
	}
	if cri.IsNotFound(errors.New("other")) {
		t.Fatal("IsNotFound(other)")
	}
}
