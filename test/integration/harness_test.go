//go:build integration

// Package integration runs the berth binary against the real containerd that test/env/runtime.sh
// starts (make integration sets CONTAINER_RUNTIME_ENDPOINT and BERTH_BIN). Tests run one after the
// other: one Berth owns a runtime, and each test leaves the runtime empty.
package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/cri"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const nodeName = "itest-node"

// env is one test's Berth: its own manifest, root and log directories, and a CRI client of the
// test's own to check what really runs.
type env struct {
	t         *testing.T
	endpoint  string
	bin       string
	rt        *cri.Client
	manifests string
	rootDir   string
	logsDir   string
	config    string
	proc      *exec.Cmd
	procDone  chan struct{}
	logPath   string
	// nodeName is the node Berth runs as; extraArgs are added to every start (cluster mode's
	// --kubeconfig).
	nodeName  string
	extraArgs []string
	// wrap, when set, runs Berth under this command (nsenter into a PID namespace); signals then go
	// to Berth itself, the wrapper's child, since nsenter does not forward them. wrapEnv is added
	// to Berth's environment.
	wrap    []string
	wrapEnv []string
	// cgroupRoot is this test's own cgroupRoot (/berth-it-<random>): tests never share, and never
	// touch, the /kubepods of another Berth on the machine. Removed, in every hierarchy, at cleanup.
	cgroupRoot string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	endpoint := os.Getenv("CONTAINER_RUNTIME_ENDPOINT")
	bin := os.Getenv("BERTH_BIN")
	if endpoint == "" || bin == "" {
		t.Fatal("CONTAINER_RUNTIME_ENDPOINT and BERTH_BIN must be set: run the suite with `make integration`")
	}
	dir := t.TempDir()
	e := &env{
		t:         t,
		endpoint:  endpoint,
		bin:       bin,
		manifests: filepath.Join(dir, "manifests"),
		rootDir:   filepath.Join(dir, "root"),
		logsDir:   filepath.Join(dir, "logs"),
		config:    filepath.Join(dir, "config.yaml"),
		logPath:   filepath.Join(dir, "berth.log"),
		nodeName:  nodeName,
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	e.cgroupRoot = "/berth-it-" + hex.EncodeToString(rnd[:])
	for _, d := range []string{e.manifests, e.rootDir, e.logsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf("kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\npodLogsDir: %s\nfileCheckFrequency: 20s\ncgroupRoot: %s\n", e.logsDir, e.cgroupRoot)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := cri.NewClient(cri.ClientConfig{Endpoint: endpoint, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rt.WaitReady(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("runtime: %v", err)
	}
	e.removeAllPods() // a clean runtime, whatever an earlier failed test left
	t.Cleanup(func() {
		e.stop()
		if t.Failed() || os.Getenv("BERTH_TEST_LOGS") != "" { // BERTH_TEST_LOGS=1: always show Berth's log
			if b, err := os.ReadFile(e.logPath); err == nil {
				t.Logf("berth log:\n%s", tail(string(b), 150))
			}
		}
		e.removeAllPods()
		// A test that failed before its pods were removed through Berth leaves their volume mounts
		// (tmpfs, subPath bind mounts) behind: unmount them, or the machine keeps them.
		unmountUnder(t, e.rootDir)
		removeCgroupTree(t, e.cgroupRoot)
		rt.Close()
	})
	return e
}

// removeCgroupTree removes a test's cgroupRoot from every mounted cgroup hierarchy, innermost
// first; the pods are gone by then, and the runtime removes its containers' cgroups shortly after.
func removeCgroupTree(t *testing.T, root string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", root))
	for _, top := range dirs {
		var all []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = syscall.Rmdir(all[i]); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil && !os.IsNotExist(err) {
				t.Logf("cleanup: cgroup %s: %v", all[i], err)
			}
		}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// start runs berth in the background; it returns once the local socket answers.
func (e *env) start(args ...string) {
	e.t.Helper()
	log, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	all := append([]string{
		"--config", e.config,
		"--container-runtime-endpoint", e.endpoint,
		"--pod-manifest-path", e.manifests,
		"--root-dir", e.rootDir,
		"--hostname-override", e.nodeName,
	}, append(append([]string{}, e.extraArgs...), args...)...)
	cmd := exec.Command(e.bin, all...)
	if len(e.wrap) > 0 {
		cmd = exec.Command(e.wrap[0], append(append(append([]string{}, e.wrap[1:]...), e.bin), all...)...)
		cmd.Env = append(os.Environ(), e.wrapEnv...)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.proc = cmd
	e.procDone = make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(e.procDone) }()
	if len(e.wrap) > 0 {
		go resumeStopped(cmd.Process.Pid, e.procDone)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.tryPods(); err == nil {
			return
		}
		select {
		case <-e.procDone:
			b, _ := os.ReadFile(e.logPath)
			e.t.Fatalf("berth exited at startup:\n%s", tail(string(b), 40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	e.t.Fatal("berth's local socket did not answer within 15s")
}

// resumeStopped sends SIGCONT to pid whenever it is stopped, until done: nsenter stops itself
// when its child stops, and a systemd shutting down stops every process of its PID namespace
// (SIGSTOP, SIGTERM, SIGCONT) — the SIGCONT reaches the child, not nsenter, which would then never
// reap it.
func resumeStopped(pid int, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-time.After(100 * time.Millisecond):
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// stop sends SIGTERM and waits: Berth stops, the pods stay.
func (e *env) stop() { e.signal(syscall.SIGTERM) }

// kill9 kills Berth with no chance to clean up.
func (e *env) kill9() { e.signal(syscall.SIGKILL) }

func (e *env) signal(sig syscall.Signal) {
	if e.proc == nil {
		return
	}
	if len(e.wrap) > 0 {
		// Berth is the wrapper's only child.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", e.proc.Process.Pid, e.proc.Process.Pid)); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, sig)
				}
			}
		}
	} else {
		_ = e.proc.Process.Signal(sig)
	}
	select {
	case <-e.procDone:
	case <-time.After(20 * time.Second):
		e.t.Errorf("berth did not exit within 20s of %v", sig)
		_ = e.proc.Process.Kill()
		<-e.procDone
	}
	e.proc = nil
}

// pods runs `berth pods -o json`, the user's view.
func (e *env) pods() agent.PodList {
	e.t.Helper()
	l, err := e.tryPods()
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) tryPods() (agent.PodList, error) {
	var l agent.PodList
	out, err := exec.Command(e.bin, "pods", "-o", "json", "--root-dir", e.rootDir).CombinedOutput()
	if err != nil {
		return l, fmt.Errorf("berth pods: %v: %s", err, out)
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return l, fmt.Errorf("berth pods -o json: %v: %s", err, out)
	}
	return l, nil
}

func (e *env) podsTable() string {
	out, err := exec.Command(e.bin, "pods", "--root-dir", e.rootDir).CombinedOutput()
	if err != nil {
		e.t.Fatalf("berth pods: %v: %s", err, out)
	}
	return string(out)
}

// waitPods polls the local view until cond holds.
func (e *env) waitPods(what string, timeout time.Duration, cond func(agent.PodList) bool) agent.PodList {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var l agent.PodList
	for {
		var err error
		l, err = e.tryPods()
		if err == nil && cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(l, "", "  ")
			e.t.Fatalf("timed out after %s waiting for %s; last view:\n%s (err %v)", timeout, what, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) writeManifest(file, body string) {
	e.t.Helper()
	// Write then rename, as a careful operator (or config management) does; tests of half-written
	// files write in place on purpose.
	tmp := filepath.Join(e.manifests, "."+file+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.manifests, file)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) removeManifest(file string) {
	e.t.Helper()
	if err := os.Remove(filepath.Join(e.manifests, file)); err != nil {
		e.t.Fatal(err)
	}
}

// findPod finds a static pod by its manifest name (the pod name without the node suffix) or an API
// pod by its name.
func findPod(l agent.PodList, name string) *agent.PodView {
	for i := range l.Pods {
		switch l.Pods[i].Name {
		case name + "-" + nodeName, name + "-" + clusterNode, name:
			return &l.Pods[i]
		}
	}
	return nil
}

func podRunning(name string) func(agent.PodList) bool {
	return func(l agent.PodList) bool {
		p := findPod(l, name)
		return p != nil && p.Phase == "Running" && p.Ready == p.Total && p.Total > 0
	}
}

func podPhase(name, phase string) func(agent.PodList) bool {
	return func(l agent.PodList) bool {
		p := findPod(l, name)
		return p != nil && p.Phase == phase
	}
}

// sandboxes lists the Berth sandboxes the runtime has, for a pod UID or all ("").
func (e *env) sandboxes(uid string) []*runtimeapi.PodSandbox {
	e.t.Helper()
	sel := map[string]string{cri.LabelManagedBy: cri.ManagedByValue}
	if uid != "" {
		sel[cri.LabelPodUID] = uid
	}
	l, err := e.rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) containers(uid string) []*runtimeapi.Container {
	e.t.Helper()
	sel := map[string]string{cri.LabelManagedBy: cri.ManagedByValue}
	if uid != "" {
		sel[cri.LabelPodUID] = uid
	}
	l, err := e.rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// removeAllPods removes every Berth sandbox from the runtime, directly through the CRI.
func (e *env) removeAllPods() {
	ctx := context.Background()
	sel := map[string]string{cri.LabelManagedBy: cri.ManagedByValue}
	sbs, err := e.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		e.t.Logf("cleanup: %v", err)
		return
	}
	for _, sb := range sbs {
		_ = e.rt.StopPodSandbox(ctx, sb.Id)
		if err := e.rt.RemovePodSandbox(ctx, sb.Id); err != nil {
			e.t.Logf("cleanup: remove sandbox %s: %v", sb.Id, err)
		}
	}
}

// httpGet fetches http://ip:port/path from the host, over the pod network.
func httpGet(ip string, port int, path string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, fmt.Sprint(port)) + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// netnsPath returns the network namespace path of a sandbox, from the runtime's verbose status.
func (e *env) netnsPath(sandboxID string) string {
	e.t.Helper()
	resp, err := e.rawSandboxStatus(sandboxID)
	if err != nil {
		e.t.Fatal(err)
	}
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string } `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		e.t.Fatalf("sandbox info: %v", err)
	}
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

func (e *env) rawSandboxStatus(id string) (*runtimeapi.PodSandboxStatusResponse, error) {
	conn := e.rt.Conn()
	return runtimeapi.NewRuntimeServiceClient(conn).PodSandboxStatus(context.Background(),
		&runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
}

// containerPid returns the host pid of a running container, from the runtime's verbose status.
func (e *env) containerPid(id string) int {
	e.t.Helper()
	resp, err := runtimeapi.NewRuntimeServiceClient(e.rt.Conn()).ContainerStatus(context.Background(),
		&runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		e.t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		e.t.Fatalf("container info: %v", err)
	}
	return info.Pid
}

// exec runs a command in a container through the CRI.
func (e *env) exec(id string, cmd ...string) string {
	e.t.Helper()
	out, stderr, code, err := e.rt.ExecSync(context.Background(), id, cmd, 10*time.Second)
	if err != nil || code != 0 {
		e.t.Fatalf("exec %v in %s: code %d err %v stderr %s", cmd, id, code, err, stderr)
	}
	return string(bytes.TrimSpace(out))
}

func typesUID(s string) types.UID { return types.UID(s) }

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
