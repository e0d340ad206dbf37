package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// controlPlane is the test environment's etcd and kube-apiserver (test/env/controlplane.sh).
type controlPlane struct {
	script  string
	dir     string
	started bool // by us: we bring it down at the end
	env     map[string]string
	admin   kubernetes.Interface
}

// The bench's control plane uses ports of its own by default, so that it can be up while the
// integration suite's (6443, 23790, 23800) is.
var benchPorts = map[string]string{"APISERVER_PORT": "16443", "ETCD_CLIENT_PORT": "23791", "ETCD_PEER_PORT": "23801"}

func upControlPlane(repo, dir string) (*controlPlane, error) {
	for k, v := range benchPorts {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	cp := &controlPlane{script: filepath.Join(repo, "test/env/controlplane.sh"), dir: dir}
	if err := exec.Command(cp.script, "status", dir).Run(); err != nil {
		logf("starting the control plane in %s (ports: API server %s, etcd %s)", dir, os.Getenv("APISERVER_PORT"), os.Getenv("ETCD_CLIENT_PORT"))
		if _, err := runScript(cp.script, "up", dir); err != nil {
			return nil, err
		}
		cp.started = true
	} else {
		logf("control plane already running in %s: using it", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		return cp, err
	}
	cp.env = map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			cp.env[k] = v
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		return cp, err
	}
	rc.QPS, rc.Burst = 2000, 2000
	rc.UserAgent = "berth-bench"
	// Protobuf, as the agents speak: the harness shares the two cores with what it measures, and
	// decoding every pod of its watch as JSON made it slow enough for kube-apiserver to close that
	// watch in a burst ("Forcing pods watcher close due to unresponsiveness"), which delays the
	// Ready times it records by the informer's back-off.
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if cp.admin, err = kubernetes.NewForConfig(rc); err != nil {
		return cp, err
	}
	return cp, cp.prepareNamespace()
}

func (cp *controlPlane) file(name string) string { return filepath.Join(cp.dir, name) }

// pids are kube-apiserver's and etcd's, from controlplane.sh's pid files (those it can read).
func (cp *controlPlane) pids() []int {
	var out []int
	for _, f := range []string{"kube-apiserver.pid", "etcd.pid"} {
		b, err := os.ReadFile(cp.file(f))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func (cp *controlPlane) nodeName() string {
	if n := cp.env["NODE_NAME"]; n != "" {
		return n
	}
	return "berth-node"
}

// prepareNamespace creates what controllers would: the bench namespace, its default service
// account (admission refuses pods without it) and the kube-root-ca.crt ConfigMap.
func (cp *controlPlane) prepareNamespace() error {
	ctx := context.Background()
	c := cp.admin.CoreV1()
	if _, err := c.Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", benchNamespace, err)
	}
	if _, err := c.ServiceAccounts(benchNamespace).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service account: %w", err)
	}
	ca, err := os.ReadFile(cp.file("ca.crt"))
	if err != nil {
		return err
	}
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(ca)}}
	if _, err := c.ConfigMaps(benchNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("configmap: %w", err)
	}
	forceDeleteAll(ctx, cp.admin)
	return nil
}

// forgetNode deletes the Node and its Lease, so every agent registers afresh.
func (cp *controlPlane) forgetNode() {
	ctx := context.Background()
	_ = cp.admin.CoreV1().Nodes().Delete(ctx, cp.nodeName(), metav1.DeleteOptions{})
	_ = cp.admin.CoordinationV1().Leases("kube-node-lease").Delete(ctx, cp.nodeName(), metav1.DeleteOptions{})
}

func (cp *controlPlane) down() {
	if !cp.started {
		return
	}
	logf("stopping the control plane we started (%s)", cp.dir)
	if _, err := runScript(cp.script, "down", cp.dir); err != nil {
		logf("controlplane.sh down: %v", err)
	}
}

// containerd is the test environment's runtime (test/env/runtime.sh).
type containerd struct {
	script   string
	endpoint string
	started  bool
	rt       *cri.Client
}

func upContainerd(repo string) (*containerd, error) {
	c := &containerd{script: filepath.Join(repo, "test/env/runtime.sh")}
	if exec.Command(c.script, "status").Run() != nil {
		logf("starting containerd (test/env/runtime.sh up)")
		c.started = true
	} else {
		logf("containerd already running: using it")
	}
	out, err := runScript(c.script, "up") // a no-op that prints the endpoint when it runs
	if err != nil {
		return c, err
	}
	c.endpoint = strings.TrimPrefix(lastLine(out), "CONTAINER_RUNTIME_ENDPOINT=")
	if !strings.HasPrefix(c.endpoint, "unix://") {
		return c, fmt.Errorf("runtime.sh up: unexpected last line %q", lastLine(out))
	}
	c.rt, err = cri.NewClient(cri.ClientConfig{Endpoint: c.endpoint, Timeout: 2 * time.Minute})
	if err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.rt.WaitReady(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return c, err
	}
	return c, nil
}

func (c *containerd) down() {
	if c.rt != nil {
		c.rt.Close()
	}
	if !c.started {
		return
	}
	logf("stopping the containerd we started")
	if _, err := runScript(c.script, "down"); err != nil {
		logf("runtime.sh down: %v", err)
	}
}

// removeBenchPods stops and removes every sandbox of the bench namespace (and so its containers)
// from a runtime, whoever made it; nothing else is touched.
func removeBenchPods(rt *cri.Client) error {
	ctx := context.Background()
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": benchNamespace},
	})
	if err != nil {
		return err
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": benchNamespace},
	})
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			_ = rt.StopContainer(ctx, c.Id, 0)
		}
		_ = rt.RemoveContainer(ctx, c.Id)
	}
	for _, sb := range sbs {
		_ = rt.StopPodSandbox(ctx, sb.Id)
		if err := rt.RemovePodSandbox(ctx, sb.Id); err != nil {
			return err
		}
	}
	return nil
}

// benchSandboxes counts the sandboxes of the bench namespace in a runtime.
func benchSandboxes(rt *cri.Client) (int, error) {
	sbs, err := rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": benchNamespace},
	})
	return len(sbs), err
}

// runScript runs one of test/env's scripts; its stderr (progress) goes to ours.
func runScript(script string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(script, args...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", filepath.Base(script), strings.Join(args, " "), err)
	}
	return out.String(), nil
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: %s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// berthCgroupRoot is Berth's cgroupRoot in the benchmarks, apart from the kubelet's /kubepods.
const berthCgroupRoot = "/berth-bench"

// removeCgroupRoot removes the (empty, once the pods are gone) cgroup tree under root in every
// mounted cgroup hierarchy, deepest first, so that a run leaves no cgroups behind. A directory
// that still holds processes stays, and is named.
func removeCgroupRoot(root string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !(strings.HasPrefix(post, "cgroup ") || strings.HasPrefix(post, "cgroup2 ")) {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) < 5 {
			continue
		}
		top := filepath.Join(fields[4], root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				logf("cgroup %s left in place: %v", dirs[i], err)
			}
		}
	}
}

// containerdProfileWindow is how much of a containerd burst is profiled (-cpuprofile), from its
// first create: the same 30 s for containerd under every agent and under cri-direct, and for
// Berth, which covers a 30-pod burst here (15-19 s) and the quiet after it; the harness waits for
// the profiles before it deletes the pods, so no deletion is in them.
const containerdProfileWindow = 30 * time.Second

// profileContainerd starts a CPU profile of the test environment's containerd over d, read from
// its debug socket (runtime.sh sets [debug] address), into path; the channel gets its error.
func profileContainerd(d time.Duration, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		sock := os.Getenv("BERTH_RUNTIME_RUN_DIR")
		if sock == "" {
			sock = "/run/berth-test/containerd"
		}
		sock = filepath.Join(sock, "debug.sock")
		c := &http.Client{Timeout: d + time.Minute, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
		resp, err := c.Get(fmt.Sprintf("http://containerd/debug/pprof/profile?seconds=%d", int(d.Seconds())))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("containerd /debug/pprof/profile: %s: %s", resp.Status, b)
		}
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		done <- err
	}()
	return done
}
