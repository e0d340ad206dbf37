package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Agents under test.
const (
	agentBerth     = "berth"
	agentKubelet   = "kubelet"
	agentCRIDirect = "cri-direct"
)

// Settings both agents get, so that they compare: the API rate limits (the kubelet's defaults,
// 50 and 100, unless -api-qps and -api-burst say otherwise), a pod limit above the largest burst,
// the eviction thresholds (kubelet defaults, which Berth shares for allocatable).
var (
	apiQPS   = 50
	apiBurst = 100
)

const maxPods = 1000

// A cluster DNS address, as a real node has (nothing answers there: the pods only sleep).
// Without one the kubelet warns with a MissingClusterDNS event per pod sync.
const (
	clusterDNS    = "10.96.0.10"
	clusterDomain = "cluster.local"
)

// agentProc is one running agent (berth or kubelet) under measurement.
type agentProc struct {
	kind    string
	cmd     *exec.Cmd
	pid     int
	done    chan struct{}
	logPath string
	work    string
	rss     *rssSampler
	quit    bool // stopped with SIGQUIT: the log ends with a goroutine dump
	// serverPort is Berth's node server (https on 127.0.0.1, client certificates of the test CA,
	// AlwaysAllow), where the harness reads /debug/pprof; 0 for the kubelet.
	serverPort int
	cp         *controlPlane
}

type agentSpec struct {
	kind       string
	bin        string
	endpoint   string // CRI endpoint
	kubeconfig string // through the counting proxy
	cp         *controlPlane
	work       string // root dir, pod logs, config; removed afterwards
	logPath    string
	cpuProfile string // berth only: --cpuprofile
}

// windowProfile reads a CPU profile of the next d from Berth's /debug/pprof into path, in the
// background; the returned channel yields the outcome.
func (a *agentProc) windowProfile(d time.Duration, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- a.get(fmt.Sprintf("debug/pprof/profile?seconds=%d", int(d.Seconds())), d, path)
	}()
	return done
}

// debugPath saves what Berth's node server answers on /<what> into path.
func (a *agentProc) debugPath(what, path string) error { return a.get(what, 0, path) }

// get saves Berth's node server's answer to GET /<what> into path; d is how long the answer may
// take beyond a minute.
func (a *agentProc) get(what string, d time.Duration, path string) error {
	cert, err := tls.LoadX509KeyPair(a.cp.file("admin.crt"), a.cp.file("admin.key"))
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: d + time.Minute, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}} // a loopback read of our own agent
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/%s", a.serverPort, what))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/%s: %s: %s", what, resp.Status, b)
	}
	return os.WriteFile(path, b, 0o644)
}

// startAgent starts berth or the kubelet and waits until its Node is Ready in the API.
func startAgent(s agentSpec) (*agentProc, error) {
	if err := os.MkdirAll(s.work, 0o755); err != nil {
		return nil, err
	}
	logs := filepath.Join(s.work, "pods")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(s.work, "config.yaml")
	var args []string
	var serverPort int
	switch s.kind {
	case agentBerth:
		// A cgroupRoot of its own: the kubelet's /kubepods is never Berth's (each removes the pod
		// cgroups it does not know). Its node server on a free loopback port, client
		// certificates of the test CA, AlwaysAllow (no SubjectAccessReviews in the API counts).
		var err error
		if serverPort, err = freePort(); err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf(`kind: KubeletConfiguration
apiVersion: kubelet.config.k8s.io/v1beta1
podLogsDir: %s
maxPods: %d
kubeAPIQPS: %d
kubeAPIBurst: %d
clusterDNS: [%s]
clusterDomain: %s
cgroupRoot: %s
address: 127.0.0.1
port: %d
healthzPort: 0
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  webhook:
    enabled: false
  x509:
    clientCAFile: %s
authorization:
  mode: AlwaysAllow
`, logs, maxPods, apiQPS, apiBurst, clusterDNS, clusterDomain, berthCgroupRoot, serverPort,
			s.cp.file("node-serving.crt"), s.cp.file("node-serving.key"), s.cp.file("ca.crt"))
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		args = []string{"--config", cfgPath, "--kubeconfig", s.kubeconfig,
			"--container-runtime-endpoint", s.endpoint, "--hostname-override", s.cp.nodeName(),
			"--root-dir", filepath.Join(s.work, "root")}
		if s.cpuProfile != "" {
			args = append(args, "--cpuprofile", s.cpuProfile)
		}
	case agentKubelet:
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		// Equivalent to Berth's: cgroupfs (the runtime's driver), cgroup v1 and swap allowed,
		// the same API rate limits and pod limit; its own server on a free loopback port with a
		// certificate of the test CA, no read-only port, no healthz port, no auth (AlwaysAllow):
		// nothing here calls it.
		cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: %s
podLogsDir: %s
maxPods: %d
kubeAPIQPS: %d
kubeAPIBurst: %d
clusterDNS: [%s]
clusterDomain: %s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %s
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: 100Mi
  nodefs.available: "10%%"
  nodefs.inodesFree: "5%%"
  imagefs.available: "15%%"
`, s.endpoint, logs, maxPods, apiQPS, apiBurst, clusterDNS, clusterDomain, port,
			s.cp.file("node-serving.crt"), s.cp.file("node-serving.key"), s.cp.file("ca.crt"))
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		args = []string{"--config", cfgPath, "--kubeconfig", s.kubeconfig,
			"--hostname-override", s.cp.nodeName(), "--root-dir", filepath.Join(s.work, "root")}
	default:
		return nil, fmt.Errorf("unknown agent %q", s.kind)
	}
	s.cp.forgetNode()
	lf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// GOTRACEBACK=all: SIGQUIT at the end dumps every goroutine, which is how the harness counts
	// them without an endpoint in the agent.
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C of make is ours to handle
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	a := &agentProc{kind: s.kind, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), logPath: s.logPath, work: s.work,
		serverPort: serverPort, cp: s.cp}
	go func() { _ = cmd.Wait(); lf.Close(); close(a.done) }()
	a.rss = newRSSSampler(a.pid, 100*time.Millisecond)
	if err := a.waitNodeReady(s.cp, 2*time.Minute); err != nil {
		a.stop(false)
		return nil, err
	}
	return a, nil
}

func (a *agentProc) waitNodeReady(cp *controlPlane, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("%s exited at startup; last lines of %s:\n%s", a.kind, a.logPath, tailFile(a.logPath, 20))
		default:
		}
		n, err := cp.admin.CoreV1().Nodes().Get(context.Background(), cp.nodeName(), metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: node %s not Ready within %s; last lines of %s:\n%s", a.kind, cp.nodeName(), timeout, a.logPath, tailFile(a.logPath, 20))
}

func (a *agentProc) sample() procSample {
	s, _ := readProc(a.pid)
	return s
}

// stop ends the agent: SIGQUIT (dumps goroutines, when quit) or SIGTERM, SIGKILL after 30 s.
func (a *agentProc) stop(quit bool) {
	if a.rss != nil {
		a.rss.Close()
		a.rss = nil
	}
	sig := syscall.SIGTERM
	if quit {
		sig = syscall.SIGQUIT
		a.quit = true
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// A goroutine header: "goroutine 7 [select]:", or with GOTRACEBACK=all "goroutine 7 gp=0x… m=nil [select]:".
// Goroutine 0 (an M's g0) is not a goroutine of the program.
var goroutineHeader = regexp.MustCompile(`^goroutine [1-9]\d* .*\[`)

// goroutines counts the goroutines in the dump at the end of the log of an agent stopped with
// SIGQUIT; -1 if there is none.
func (a *agentProc) goroutines() int {
	if !a.quit {
		return -1
	}
	f, err := os.Open(a.logPath)
	if err != nil {
		return -1
	}
	defer f.Close()
	n, inDump := 0, false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "SIGQUIT: quit") {
			n, inDump = 0, true
			continue
		}
		if inDump && goroutineHeader.MatchString(l) {
			n++
		}
	}
	if !inDump {
		return -1
	}
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// cleanKubeletCgroups removes the empty cgroups the kubelet left (kubepods/...) under every
// controller, innermost first; anything still in use stays.
func cleanKubeletCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	if p := "/sys/fs/cgroup/kubepods.slice"; exists(p) {
		roots = append(roots, p)
	}
	removeCgroupTrees(roots)
}

// removeCgroupTrees removes the cgroup directories under each root and the root, innermost first;
// a cgroup still in use stays.
func removeCgroupTrees(roots []string) {
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}
