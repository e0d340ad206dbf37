package probes

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/health"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	testclock "k8s.io/utils/clock/testing"
)

// TestProbingManyPodsLeaksNothing probes 100 pods with an httpGet readiness probe every 10 s (and,
// beside them, 10 with tcpSocket and 10 with grpc) for 10 periods of a fake clock, against real
// servers on 127.0.0.1: between periods the only goroutines are one per worker and no file
// descriptor is held; after Stop, goroutines and descriptors are back to where they were.
func TestProbingManyPodsLeaksNothing(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	const httpPods, tcpPods, grpcPods, periods = 100, 10, 10, 10
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	httpPort := srv.Listener.Addr().(*net.TCPAddr).Port
	tcpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpL.Close()
	go func() {
		for {
			c, err := tcpL.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	grpcPort := startHealthServer(t, health.NewServer())

	// Warm up what the process sets up once (the network poller, the servers' first connections),
	// then take the baseline.
	warm := newProber(nil)
	for _, p := range []*v1.Probe{
		{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt(httpPort)}}},
		{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(tcpL.Addr().(*net.TCPAddr).Port)}}},
		{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(grpcPort)}}},
	} {
		if a := warm.run(t.Context(), withDefaults(p), target{podIP: "127.0.0.1"}); a.outcome != Passed {
			t.Fatalf("warm-up: %s %q", a.outcome, a.output)
		}
	}
	warm.http.close()
	hits.Store(0)
	settle := func(want func(g, fds int) bool) (g, fds int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			runtime.GC()
			g, fds = runtime.NumGoroutine(), openFDs(t)
			if want(g, fds) || time.Now().After(deadline) {
				return g, fds
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond)
	baseG, baseFDs := runtime.NumGoroutine(), openFDs(t)

	clk := testclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := NewManager(ManagerConfig{Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	probes := map[string]*v1.Probe{}
	for i := range httpPods {
		probes[fmt.Sprintf("http%d", i)] = &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("web")}}}
	}
	for i := range tcpPods {
		probes[fmt.Sprintf("tcp%d", i)] = &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(tcpL.Addr().(*net.TCPAddr).Port)}}}
	}
	for i := range grpcPods {
		probes[fmt.Sprintf("grpc%d", i)] = &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(grpcPort)}}}
	}
	workers := len(probes)
	for id, p := range probes {
		c := v1.Container{Name: "app", ReadinessProbe: p, Ports: []v1.ContainerPort{{Name: "web", ContainerPort: int32(httpPort)}}}
		m.Sync(testPod(id, c), "127.0.0.1", []ContainerState{{Name: "app", ID: id, StartedAt: clk.Now(), Running: true}})
	}
	parked := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for int64(clk.Waiters()) != m.live.Load() || clk.Waiters() != workers {
			if time.Now().After(deadline) {
				t.Fatalf("%d workers, %d parked", m.live.Load(), clk.Waiters())
			}
			time.Sleep(time.Millisecond)
		}
	}
	parked()
	for i := 1; i <= periods; i++ {
		clk.Step(10 * time.Second)
		parked()
		if got, want := hits.Load(), int64((i+1)*httpPods); got != want {
			t.Fatalf("period %d: %d HTTP requests, want %d", i, got, want)
		}
	}
	for id := range probes {
		if !m.Ready(id) {
			t.Errorf("%s is not ready", id)
		}
	}
	// Between periods: a goroutine per worker, no connection held.
	g, fds := settle(func(g, fds int) bool { return g <= baseG+workers && fds <= baseFDs })
	if g > baseG+workers || fds > baseFDs {
		t.Errorf("while parked: %d goroutines (baseline %d + %d workers), %d fds (baseline %d)", g, baseG, workers, fds, baseFDs)
	}

	m.Stop()
	g, fds = settle(func(g, fds int) bool { return g <= baseG && fds <= baseFDs })
	if g > baseG || fds > baseFDs {
		buf := make([]byte, 1<<16)
		t.Errorf("after Stop: %d goroutines (baseline %d), %d fds (baseline %d)\n%s", g, baseG, fds, baseFDs, buf[:runtime.Stack(buf, true)])
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
