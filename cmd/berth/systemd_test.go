package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri/fakecri"
)

// The daemon runs in a child process (this test binary, re-run with BERTH_TEST_DAEMON_ARGS), so
// that NOTIFY_SOCKET and signals are its own.
const daemonArgsEnv = "BERTH_TEST_DAEMON_ARGS"

// TestDaemonProcess is the child: it is runDaemon with the arguments in BERTH_TEST_DAEMON_ARGS,
// exiting as main does. Without that variable it does nothing.
func TestDaemonProcess(t *testing.T) {
	raw := os.Getenv(daemonArgsEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	if err := runDaemon(args); err != nil {
		os.Stderr.WriteString("berth: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// syncBuffer is a child's stderr, read while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const testPod = `apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  namespace: default
spec:
  containers:
  - name: sleep
    image: busybox
    command: ["sleep", "3600"]
`

// TestSystemdNotify runs Berth as systemd would start it (NOTIFY_SOCKET, WATCHDOG_USEC) against the
// fake CRI server: STATUS lines, then READY=1 once it has synced, watchdog pings, a SIGHUP reload
// that changes the log level live and names what needs a restart, and on SIGTERM STOPPING=1, exit
// 0 and the pod left running.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	dir, err := os.MkdirTemp("", "berth-sd") // short: socket paths are at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	runtime := fakecri.New(fakecri.Config{Images: []string{"busybox"}})
	if err := runtime.Serve(filepath.Join(dir, "cri.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runtime.Stop)

	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "sleeper.yaml"), []byte(testPod), 0o644); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "config.yaml")
	writeConfig := func(extra string) {
		t.Helper()
		cfg := "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n" +
			"staticPodPath: " + manifests + "\n" +
			"containerRuntimeEndpoint: " + runtime.Endpoint() + "\n" +
			"podLogsDir: " + filepath.Join(dir, "logs") + "\n" +
			"resolvConf: \"\"\n" +
			// A unit test must not make cgroups on the host (docs/cgroups.md; the integration tests
			// cover them).
			"cgroupsPerQOS: false\nenforceNodeAllocatable: []\n" + extra
		if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("")

	args, _ := json.Marshal([]string{"--config", configPath, "--root-dir", filepath.Join(dir, "root"),
		"--hostname-override", "sd-node", "--node-ip", "127.0.0.1"})
	cmd := exec.Command(os.Args[0], "-test.run=^TestDaemonProcess$", "-test.count=1")
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, daemonArgsEnv+"="+string(args), "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=1000000")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("berth's log:\n%s", stderr.String())
		}
	}()

	// read returns the notify messages until one satisfies until, failing after d.
	read := func(d time.Duration, until func(string) bool) []string {
		t.Helper()
		var msgs []string
		deadline := time.Now().Add(d)
		buf := make([]byte, 4096)
		for {
			notify.SetReadDeadline(deadline)
			n, err := notify.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("timed out after %s; messages so far: %q", d, msgs)
				}
				t.Fatal(err)
			}
			msg := string(buf[:n])
			msgs = append(msgs, msg)
			if until(msg) {
				return msgs
			}
		}
	}
	is := func(want string) func(string) bool { return func(m string) bool { return m == want } }

	start := time.Now()
	msgs := read(15*time.Second, is("READY=1"))
	t.Logf("READY=1 after %s, after %q", time.Since(start).Round(time.Millisecond), msgs)
	wantPrefix := []string{
		"STATUS=waiting for the container runtime at " + runtime.Endpoint(),
		"STATUS=connected to fakecri 0.1.0 at " + runtime.Endpoint() + "; starting",
	}
	for i, w := range wantPrefix {
		if i >= len(msgs) || msgs[i] != w {
			t.Errorf("message %d: got %q, want %q", i, msgs, w)
		}
	}
	if len(msgs) < 2 || msgs[len(msgs)-2] != "STATUS=running (standalone mode, node sd-node, runtime fakecri)" {
		t.Errorf("before READY=1: got %q, want the running status", msgs)
	}
	read(5*time.Second, is("WATCHDOG=1"))

	// The pod starts.
	deadline := time.Now().Add(15 * time.Second)
	for runtime.Calls()["StartContainer"] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the static pod's container was not started; calls: %v", runtime.Calls())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// SIGHUP: verbosity 4 turns debug logs on at once; maxPods needs a restart.
	writeConfig("maxPods: 50\nlogging:\n  verbosity: 4\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	read(5*time.Second, func(m string) bool { return strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") })
	read(5*time.Second, is("READY=1"))
	for _, want := range []string{`log level changed" from=INFO to=DEBUG`, `require a restart`, `fields=[maxPods]`} {
		// The log reaches stderr before READY=1 is sent, and this process a moment later.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), want); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("log after SIGHUP lacks %q", want)
				break
			}
		}
	}

	// SIGTERM: STOPPING=1, exit 0, the pod untouched.
	before := runtime.Calls()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	read(10*time.Second, is("STOPPING=1"))
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("berth exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("berth did not exit within 30s of SIGTERM")
	}
	after := runtime.Calls()
	for _, m := range []string{"StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox"} {
		if after[m] != before[m] {
			t.Errorf("%s called %d times during shutdown; pods must survive a stop of Berth", m, after[m]-before[m])
		}
	}
	if !strings.Contains(stderr.String(), "berth stopped; pods keep running") {
		t.Errorf("no clean stop in the log")
	}
}

// TestShippedConfig: deploy/systemd/config.yaml, which `make install` puts in /etc/berth, is valid
// and says what the unit expects.
func TestShippedConfig(t *testing.T) {
	d, err := parseDaemonArgs([]string{"--config", "../../deploy/systemd/config.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if d.config.StaticPodPath != "/etc/berth/manifests" || d.config.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" {
		t.Errorf("staticPodPath %q, containerRuntimeEndpoint %q", d.config.StaticPodPath, d.config.ContainerRuntimeEndpoint)
	}
	if changed := changedFields(defaultConfiguration(), d.config); len(changed) != 1 || changed[0] != "staticPodPath" {
		t.Errorf("the shipped config differs from the defaults in %v, want only staticPodPath", changed)
	}
	if l, err := d.logLevel(); err != nil || l != slog.LevelInfo {
		t.Errorf("log level %v, %v; want info", l, err)
	}
}

// TestLogLevel: --log-level when given, else logging.verbosity (4 and above: debug), else info.
func TestLogLevel(t *testing.T) {
	dir := t.TempDir()
	n := 0
	config := func(s string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", n))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		args []string
		want slog.Level
	}{
		{nil, slog.LevelInfo},
		{[]string{"--log-level", "warn"}, slog.LevelWarn},
		{[]string{"--config", config("logging: {verbosity: 3}\n")}, slog.LevelInfo},
		{[]string{"--config", config("logging: {verbosity: 4}\n")}, slog.LevelDebug},
		{[]string{"--config", config("logging: {verbosity: 4}\n"), "--log-level", "error"}, slog.LevelError},
	}
	for _, tt := range tests {
		d, err := parseDaemonArgs(tt.args)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d.logLevel(); err != nil || got != tt.want {
			t.Errorf("%v: level %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
	if _, err := parseDaemonArgs([]string{"--config", config("logging: {format: json}\n")}); err == nil || !strings.Contains(err.Error(), `unknown field "format"`) {
		t.Errorf("logging.format: err = %v, want it named as unknown", err)
	}
}
