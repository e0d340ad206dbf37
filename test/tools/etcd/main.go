// Command etcd runs a single-member etcd server (go.etcd.io/etcd/server/v3/embed) for Berth's
// cluster-mode tests: plain HTTP on the given URLs, one data folder, no TLS. It prints "ready"
// on stdout once the member serves clients, and stops cleanly on SIGINT or SIGTERM.
//
//	etcd -data-dir DIR [-listen-client-url http://127.0.0.1:23790] [-listen-peer-url http://127.0.0.1:23800]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	name := flag.String("name", "berth-test", "member name")
	dataDir := flag.String("data-dir", "", "data folder (required)")
	clientURL := flag.String("listen-client-url", "http://127.0.0.1:23790", "client URL (listen and advertise)")
	peerURL := flag.String("listen-peer-url", "http://127.0.0.1:23800", "peer URL (listen and advertise)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	noFsync := flag.Bool("unsafe-no-fsync", false, "do not fsync the WAL and database: faster, and loses data on a crash (tests only)")
	timeout := flag.Duration("ready-timeout", time.Minute, "give up when not ready within this time")
	flag.Parse()
	if *dataDir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: etcd -data-dir DIR [-listen-client-url URL] [-listen-peer-url URL] [-log-level LEVEL] [-unsafe-no-fsync]")
		os.Exit(2)
	}
	if err := run(*name, *dataDir, *clientURL, *peerURL, *logLevel, *noFsync, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		os.Exit(1)
	}
}

func parseURL(flagName, s string) (url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, fmt.Errorf("-%s %q: %v", flagName, s, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return url.URL{}, fmt.Errorf("-%s %q: want http://HOST:PORT", flagName, s)
	}
	return *u, nil
}

func run(name, dataDir, clientURL, peerURL, logLevel string, noFsync bool, timeout time.Duration) error {
	cu, err := parseURL("listen-client-url", clientURL)
	if err != nil {
		return err
	}
	pu, err := parseURL("listen-peer-url", peerURL)
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(name)
	cfg.LogLevel = logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = noFsync
	// No metrics listener, no pprof: nothing listens beyond the two URLs above.

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	start := time.Now()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start (data %s, client %s, peer %s): %w", dataDir, clientURL, peerURL, err)
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
		fmt.Printf("ready: %s serves clients on %s after %d ms\n", name, clientURL, time.Since(start).Milliseconds())
	case err := <-e.Err():
		return fmt.Errorf("before ready: %w", err)
	case <-time.After(timeout):
		e.Server.Stop()
		return fmt.Errorf("not ready after %s", timeout)
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "etcd: %s before ready, stopping\n", s)
		return nil
	}

	select {
	case err := <-e.Err():
		return fmt.Errorf("serving: %w", err)
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "etcd: %s, stopping\n", s)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { e.Close(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("did not stop within 10 s")
		}
		return nil
	}
}
