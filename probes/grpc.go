package probes

import (
	"context"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
)

// grpcProbe calls grpc.health.v1.Health/Check with the probe's service ("" when unset) on the pod
// IP and port, over a plain-text connection made for this attempt and closed after it. SERVING
// passes; anything else — NOT_SERVING, an unknown service, a server without the health service, no
// connection within the timeout — fails with a message that says which.
func grpcProbe(ctx context.Context, g *v1.GRPCAction, t target, timeout time.Duration) attempt {
	if g.Port < 1 || g.Port > 65535 {
		return errorf("grpc probe: port %d: out of range 1-65535", g.Port)
	}
	if t.podIP == "" {
		return errorf("grpc probe: the pod has no IP address yet")
	}
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	addr := net.JoinHostPort(t.podIP, strconv.Itoa(int(g.Port)))
	// passthrough: the address is an IP, no resolver (and none of its goroutines) is needed.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(UserAgent),
	)
	if err != nil {
		return errorf("grpc probe: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		s := status.Convert(err)
		switch s.Code() {
		case codes.Unimplemented:
			return fail("this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", s.Message())
		case codes.NotFound:
			return fail("service %q is unknown to the health server: %s", service, s.Message())
		case codes.DeadlineExceeded:
			return fail("timeout: health rpc to %s did not complete within %s", addr, timeout)
		case codes.Unavailable:
			return fail("failed to connect to %s: %s", addr, s.Message())
		}
		return fail("health rpc to %s failed: %s: %s", addr, s.Code(), s.Message())
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fail("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return pass("")
}
