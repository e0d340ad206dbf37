package probes

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
)

// startHealthServer serves the standard health service on 127.0.0.1 and returns its port.
func startHealthServer(t *testing.T, hs *health.Server) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	if hs != nil {
		healthpb.RegisterHealthServer(s, hs)
	}
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port
}

func TestGRPCProbe(t *testing.T) {
	hs := health.NewServer() // "" is SERVING
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("cache", healthpb.HealthCheckResponse_NOT_SERVING)
	port := int32(startHealthServer(t, hs))
	bare := int32(startHealthServer(t, nil)) // a gRPC server without the health service
	closed := int32(closedPort(t))
	svc := func(s string) *string { return &s }
	for _, tc := range []struct {
		name    string
		g       *v1.GRPCAction
		want    Outcome
		wantOut string // substring
	}{
		{"serving, no service", &v1.GRPCAction{Port: port}, Passed, ""},
		{"serving, empty service", &v1.GRPCAction{Port: port, Service: svc("")}, Passed, ""},
		{"serving service", &v1.GRPCAction{Port: port, Service: svc("db")}, Passed, ""},
		{"not serving", &v1.GRPCAction{Port: port, Service: svc("cache")}, Failed, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", &v1.GRPCAction{Port: port, Service: svc("nope")}, Failed, `service "nope" is unknown to the health server`},
		{"no health service", &v1.GRPCAction{Port: bare}, Failed, "this server does not implement the grpc health protocol"},
		{"unreachable", &v1.GRPCAction{Port: closed}, Failed, "failed to connect to 127.0.0.1:"},
		{"port out of range", &v1.GRPCAction{Port: 0}, Errored, "grpc probe: port 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := grpcProbe(context.Background(), tc.g, target{podIP: "127.0.0.1"}, 2*time.Second)
			if a.outcome != tc.want || !strings.Contains(a.output, tc.wantOut) {
				t.Errorf("got %s %q, want %s …%q…", a.outcome, a.output, tc.want, tc.wantOut)
			}
		})
	}
	if a := grpcProbe(context.Background(), &v1.GRPCAction{Port: port}, target{}, time.Second); a.outcome != Errored {
		t.Errorf("no pod IP: got %s %q", a.outcome, a.output)
	}
}

// TestGRPCProbeTimeout: a peer that accepts but never speaks HTTP/2 fails the probe at its timeout.
func TestGRPCProbeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	defer func() { l.Close(); <-done }()
	go func() {
		defer close(done)
		var conns []net.Conn // held open, silent
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	start := time.Now()
	a := grpcProbe(context.Background(), &v1.GRPCAction{Port: int32(l.Addr().(*net.TCPAddr).Port)}, target{podIP: "127.0.0.1"}, time.Second)
	if took := time.Since(start); took < time.Second || took > 3*time.Second {
		t.Errorf("took %s, want about the 1s timeout", took)
	}
	if a.outcome != Failed || !strings.Contains(a.output, "timeout") {
		t.Errorf("got %s %q", a.outcome, a.output)
	}
	t.Logf("%s: %s", a.outcome, a.output)
}
