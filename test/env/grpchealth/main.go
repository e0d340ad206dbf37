// Command grpchealth is the gRPC server of the integration tests of grpc probes. It serves the
// standard health service (grpc.health.v1.Health, Check and Watch) on -port, on every address:
//
//	grpchealth [-port 9090] [-service NAME] [-fail-file PATH] [-poll 200ms]
//
// The server as a whole ("") and -service, when given, are SERVING, and both are NOT_SERVING
// while the file -fail-file exists: a test flips the probe's outcome with `touch` and `rm` (an
// exec in the container, or a file in a shared volume). Any other service name is unknown
// (NotFound), as with every standard health server. Each change of status is a line on stderr.
//
// SIGTERM or SIGINT stops it cleanly (exit 0). It is built static for a scratch image:
// CGO_ENABLED=0 go build ./test/env/grpchealth.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// config is what the flags say.
type config struct {
	service  string
	failFile string
	poll     time.Duration
}

func main() {
	port := flag.Int("port", 9090, "TCP port to serve on, on every address")
	var cfg config
	flag.StringVar(&cfg.service, "service", "", "a service name reported SERVING besides the server as a whole (\"\")")
	flag.StringVar(&cfg.failFile, "fail-file", "", "while this file exists, report NOT_SERVING")
	flag.DurationVar(&cfg.poll, "poll", 200*time.Millisecond, "how often to look for -fail-file")
	flag.Parse()
	if flag.NArg() != 0 || *port < 1 || *port > 65535 || cfg.poll <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpchealth:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, lis, cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "grpchealth:", err)
		os.Exit(1)
	}
}

// run serves on lis until ctx ends, then stops (waiting a moment for calls in flight).
func run(ctx context.Context, lis net.Listener, cfg config, logw io.Writer) error {
	hs := health.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	current := healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	update := func() {
		st := healthpb.HealthCheckResponse_SERVING
		if cfg.failFile != "" {
			if _, err := os.Stat(cfg.failFile); err == nil {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
		}
		if st == current {
			return
		}
		current = st
		hs.SetServingStatus("", st)
		if cfg.service != "" {
			hs.SetServingStatus(cfg.service, st)
		}
		fmt.Fprintf(logw, "grpchealth: %s on %s (service %q, fail file %q)\n", st, lis.Addr(), cfg.service, cfg.failFile)
	}
	update()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	tick := time.NewTicker(cfg.poll)
	defer tick.Stop()
	for {
		select {
		case err := <-served:
			return err
		case <-tick.C:
			update()
		case <-ctx.Done():
			hs.Shutdown() // NOT_SERVING for everyone, and Watch streams learn it
			stopped := make(chan struct{})
			go func() { srv.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second): // a Watch stream would hold GracefulStop forever
				srv.Stop()
			}
			if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return err
			}
			fmt.Fprintln(logw, "grpchealth: stopped")
			return nil
		}
	}
}
