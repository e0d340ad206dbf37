package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// syncBuffer is a log writer safe to read while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRun(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	failFile := filepath.Join(t.TempDir(), "unhealthy")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, lis, config{service: "berth.test", failFile: failFile, poll: 10 * time.Millisecond}, &logs)
	}()

	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	check := func(service string) (healthpb.HealthCheckResponse_ServingStatus, codes.Code) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
		return resp.GetStatus(), status.Code(err)
	}
	expect := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			st, code := check(service)
			if code == codes.OK && st == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("service %q: %s (%s), want %s", service, st, code, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	expect("", healthpb.HealthCheckResponse_SERVING)
	expect("berth.test", healthpb.HealthCheckResponse_SERVING)
	if _, code := check("other"); code != codes.NotFound {
		t.Errorf("unknown service: %s, want NotFound", code)
	}
	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expect("", healthpb.HealthCheckResponse_NOT_SERVING)
	expect("berth.test", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := os.Remove(failFile); err != nil {
		t.Fatal(err)
	}
	expect("berth.test", healthpb.HealthCheckResponse_SERVING)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	for _, want := range []string{"SERVING on 127.0.0.1:", "NOT_SERVING on", "grpchealth: stopped"} {
		if !bytes.Contains([]byte(logs.String()), []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
