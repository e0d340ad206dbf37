package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
	"github.com/berth-dev/berth/kubeclient/clientset"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// statusHistory records every status the agent publishes from now on; the returned function gives
// the statuses so far. It catches states that last a single sync.
func (n *fakeNode) statusHistory() func() []v1.PodStatus {
	var mu sync.Mutex
	var hist []v1.PodStatus
	st := n.agent.store
	st.mu.Lock()
	st.onChange = func(uid types.UID) {
		if r := st.get(uid); r != nil {
			mu.Lock()
			hist = append(hist, *r.status.DeepCopy())
			mu.Unlock()
		}
	}
	st.mu.Unlock()
	return func() []v1.PodStatus {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(hist)
	}
}

// podStatus is the API status the agent computed for a pod of the local view.
func (n *fakeNode) podStatus(name string) v1.PodStatus {
	n.t.Helper()
	p := viewPod(n.agent.PodList(), name)
	if p == nil {
		n.t.Fatalf("no pod %s", name)
	}
	return n.agent.store.get(types.UID(p.UID)).status
}

func containerView(l PodList, pod, name string) ContainerView {
	if p := viewPod(l, pod); p != nil {
		for _, c := range p.Containers {
			if c.Name == name {
				return c
			}
		}
	}
	return ContainerView{}
}

// TestPostStartHookFailureKillsAndRestarts: a failing postStart hook kills the container, which
// waits with PostStartHookError and the hook's output, and the restart policy restarts it.
func TestPostStartHookFailureKillsAndRestarts(t *testing.T) {
	n := newFakeNode(t, nil)
	history := n.statusHistory()
	var calls atomic.Int32
	n.srv.SetExecHandler(func(_ string, cmd []string) ([]byte, []byte, int32, error) {
		if cmd[0] == "warm-up" && calls.Add(1) == 1 {
			return []byte("cache not ready"), nil, 3, nil
		}
		return nil, nil, 0, nil
	})
	n.write("hook.yaml", pod("hook", "Always", `    lifecycle:
      postStart:
        exec: {command: ["warm-up"]}
`))
	n.stepUntil("restarted after the failed hook", runningWith("hook", 1))

	if got, want := n.rt.recorded("start ", "stop "), []string{"start main", "stop main", "start main"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if g := n.rt.stopGraces(); !slices.Equal(g, []int64{7}) {
		t.Errorf("kill graces = %v, want [7]", g)
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("postStart ran %d times, want 2", c)
	}
	const want = `Exec lifecycle hook ([warm-up]) for Container "main" in Pod "default/hook-node" failed - error: command 'warm-up' exited with 3: cache not ready`
	found := false
	for _, st := range history() {
		if w := st.ContainerStatuses[0].State.Waiting; w != nil && w.Reason == reasonPostStartHookError {
			found = true
			if !strings.Contains(w.Message, want) {
				t.Errorf("waiting message %q does not contain %q", w.Message, want)
			}
		}
	}
	if !found {
		t.Errorf("no status showed %s", reasonPostStartHookError)
	}
}

// TestPreStopHooksRunBeforeStopWithinGrace: on termination each preStop hook runs before its
// container's stop signal, and the time it took is taken from the grace period StopContainer gets.
func TestPreStopHooksRunBeforeStopWithinGrace(t *testing.T) {
	n := newFakeNode(t, map[string]string{"stop.yaml": `apiVersion: v1
kind: Pod
metadata: {name: stop}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    lifecycle:
      preStop:
        sleep: {seconds: 3}
  - name: side
    image: busybox
    imagePullPolicy: IfNotPresent
    lifecycle:
      preStop:
        exec: {command: ["drain"]}
  - name: plain
    image: busybox
    imagePullPolicy: IfNotPresent
`})
	n.srv.SetExecHandler(func(id string, cmd []string) ([]byte, []byte, int32, error) {
		n.rt.note("exec " + n.rt.name(id) + " " + cmd[0])
		return nil, nil, 0, nil
	})
	n.waitView("running", func(l PodList) bool { p := viewPod(l, "stop"); return p != nil && p.Ready == 3 })
	if err := os.Remove(filepath.Join(n.manifests, "stop.yaml")); err != nil {
		t.Fatal(err)
	}
	n.stepUntil("pod removed", func(l PodList) bool { return len(l.Pods) == 0 })

	n.rt.mu.Lock()
	graces := map[string]int64{}
	for k, v := range n.rt.graceOf {
		graces[k] = v
	}
	n.rt.mu.Unlock()
	if want := map[string]int64{"main": 7, "side": 10, "plain": 10}; !equalMaps(graces, want) {
		t.Errorf("StopContainer graces = %v, want %v (main's 3 s sleep hook taken from its 10 s)", graces, want)
	}
	calls := n.rt.recorded("exec ", "stop ")
	if i, j := slices.Index(calls, "exec side drain"), slices.Index(calls, "stop side"); i < 0 || j < i {
		t.Errorf("calls = %v: the preStop exec must come before the stop", calls)
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPreStopHookOnLivenessKill: a container killed for its liveness probe gets its preStop hook
// first.
func TestPreStopHookOnLivenessKill(t *testing.T) {
	n := newFakeNode(t, nil)
	var live atomic.Bool
	live.Store(true)
	n.srv.SetExecHandler(func(id string, cmd []string) ([]byte, []byte, int32, error) {
		switch cmd[0] {
		case "drain":
			n.rt.note("exec " + cmd[0])
		case "live":
			if !live.Load() {
				return []byte("dead"), nil, 1, nil
			}
		}
		return nil, nil, 0, nil
	})
	n.write("live.yaml", pod("live", "Always", `    livenessProbe:
      exec: {command: ["live"]}
      periodSeconds: 1
      failureThreshold: 1
    lifecycle:
      preStop:
        exec: {command: ["drain"]}
`))
	n.stepUntil("running", runningWith("live", 0))
	live.Store(false)
	for i := 0; ; i++ {
		if p := viewPod(n.agent.PodList(), "live"); p != nil && p.Restarts >= 1 {
			break
		}
		if i == 20 {
			t.Fatalf("no restart after failing liveness probes: %+v", n.agent.PodList())
		}
		n.tick(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	live.Store(true)
	if got, want := n.rt.recorded("exec ", "stop "), []string{"exec drain", "stop main"}; !slices.Equal(got[:min(2, len(got))], want) {
		t.Errorf("calls = %v, want %v first", got, want)
	}
}

const sidecarPod = `apiVersion: v1
kind: Pod
metadata: {name: side}
spec:
  terminationGracePeriodSeconds: 7
  initContainers:
  - {name: log, image: busybox, imagePullPolicy: IfNotPresent, restartPolicy: Always}
  - {name: setup, image: busybox, imagePullPolicy: IfNotPresent}
  - name: proxy
    image: busybox
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    startupProbe:
      exec: {command: ["proxy-ready"]}
      periodSeconds: 1
      failureThreshold: 30
  containers:
  - {name: main, image: busybox, imagePullPolicy: IfNotPresent}
`

// TestSidecars: sidecars start in order without blocking the next init container (once started,
// and once their startup probe passed), run beside the app container, are restarted when they exit
// and are stopped after the app container, in reverse order.
func TestSidecars(t *testing.T) {
	n := newFakeNode(t, nil)
	var proxyReady atomic.Bool
	n.srv.SetExecHandler(func(_ string, cmd []string) ([]byte, []byte, int32, error) {
		if cmd[0] == "proxy-ready" && !proxyReady.Load() {
			return []byte("not yet"), nil, 1, nil
		}
		return nil, nil, 0, nil
	})
	n.write("side.yaml", sidecarPod)
	state := func(l PodList, name string) string { return containerView(l, "side", name).State }
	l := n.stepUntil("log and setup running", func(l PodList) bool {
		return state(l, "log") == "running" && state(l, "setup") == "running"
	})
	if p := viewPod(l, "side"); p.Phase != "Pending" || containerView(l, "side", "proxy").ID != "" || containerView(l, "side", "main").ID != "" {
		t.Fatalf("while setup runs: %+v", p)
	}

	n.srv.SetContainerExited(containerView(l, "side", "setup").ID, 0, "")
	n.tick(time.Second)
	n.waitView("proxy running", func(l PodList) bool { return state(l, "proxy") == "running" })
	n.tick(3 * time.Second)
	n.holds("main waits for the proxy's startup probe", func(l PodList) bool {
		return containerView(l, "side", "main").ID == "" && viewPod(l, "side").Phase == "Pending"
	})
	proxyReady.Store(true)
	n.tick(2 * time.Second)
	l = n.waitView("everything running", func(l PodList) bool {
		p := viewPod(l, "side")
		return p.Phase == "Running" && state(l, "main") == "running" && state(l, "log") == "running" && p.Ready == 3 && p.Total == 3
	})
	if got, want := n.rt.recorded("create "), []string{"create log", "create setup", "create proxy", "create main"}; !slices.Equal(got, want) {
		t.Errorf("creation order = %v, want %v", got, want)
	}

	// A sidecar that exits is restarted, whatever the pod's restart policy; the app goes on.
	n.srv.SetContainerExited(containerView(l, "side", "log").ID, 1, "")
	n.tick(time.Second)
	n.waitView("log restarted", func(l PodList) bool {
		return state(l, "log") == "running" && containerView(l, "side", "log").Restarts == 1 && containerView(l, "side", "main").Restarts == 0
	})

	if err := os.Remove(filepath.Join(n.manifests, "side.yaml")); err != nil {
		t.Fatal(err)
	}
	n.stepUntil("pod removed", func(l PodList) bool { return len(l.Pods) == 0 })
	if got, want := n.rt.recorded("stop "), []string{"stop main", "stop proxy", "stop log"}; !slices.Equal(got, want) {
		t.Errorf("stop order = %v, want %v (app first, then sidecars in reverse order)", got, want)
	}
}

// TestJobWithSidecarCompletes: when the app containers of a Never or OnFailure pod have all
// finished, its sidecars are stopped (preStop hooks included) and the pod ends Succeeded or
// Failed by the apps' exit codes.
func TestJobWithSidecarCompletes(t *testing.T) {
	job := func(name string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 7
  initContainers:
  - name: proxy
    image: busybox
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    lifecycle:
      preStop:
        exec: {command: ["drain"]}
  containers:
  - {name: job, image: busybox, imagePullPolicy: IfNotPresent}
`
	}
	n := newFakeNode(t, map[string]string{"ok.yaml": job("ok"), "bad.yaml": job("bad")})
	n.srv.SetExecHandler(func(id string, cmd []string) ([]byte, []byte, int32, error) {
		n.rt.note("exec " + n.rt.name(id) + " " + cmd[0])
		return nil, nil, 0, nil
	})
	l := n.waitView("running", func(l PodList) bool {
		return viewPod(l, "ok") != nil && viewPod(l, "ok").Ready == 2 && viewPod(l, "bad") != nil && viewPod(l, "bad").Ready == 2
	})
	n.srv.SetContainerExited(containerView(l, "ok", "job").ID, 0, "")
	n.srv.SetContainerExited(containerView(l, "bad", "job").ID, 1, "")
	n.tick(time.Second)
	n.waitView("completed", func(l PodList) bool {
		return viewPod(l, "ok").Phase == "Succeeded" && viewPod(l, "bad").Phase == "Failed" &&
			containerView(l, "ok", "proxy").State == "exited" && containerView(l, "bad", "proxy").State == "exited"
	})
	calls := n.rt.recorded("exec ", "stop ")
	if len(calls) != 4 || !strings.HasPrefix(calls[0], "exec proxy drain") && !strings.HasPrefix(calls[1], "exec proxy drain") {
		t.Errorf("calls = %v: two preStop hooks and two stops of the proxy", calls)
	}
	for _, c := range calls {
		if c != "exec proxy drain" && c != "stop proxy" {
			t.Errorf("unexpected call %q", c)
		}
	}
	n.tick(3 * time.Second)
	n.holds("the sidecars stay stopped", func(l PodList) bool {
		return containerView(l, "ok", "proxy").State == "exited" && containerView(l, "ok", "proxy").Restarts == 0
	})
}

// TestTerminationMessages: the file mounted at terminationMessagePath is read after the exit; with
// FallbackToLogsOnError an empty file and a failure give the end of the log. The pod directory goes
// with the pod.
func TestTerminationMessages(t *testing.T) {
	n := newFakeNode(t, map[string]string{"msg.yaml": `apiVersion: v1
kind: Pod
metadata: {name: msg}
spec:
  restartPolicy: Never
  containers:
  - {name: file, image: busybox, imagePullPolicy: IfNotPresent, terminationMessagePath: /tmp/term}
  - {name: logs, image: busybox, imagePullPolicy: IfNotPresent, terminationMessagePolicy: FallbackToLogsOnError}
  - {name: quiet, image: busybox, imagePullPolicy: IfNotPresent, terminationMessagePolicy: FallbackToLogsOnError}
`})
	l := n.waitView("running", func(l PodList) bool { p := viewPod(l, "msg"); return p != nil && p.Ready == 3 })
	uid := types.UID(viewPod(l, "msg").UID)

	n.rt.mu.Lock()
	mounts := n.rt.configs["file"].Mounts
	n.rt.mu.Unlock()
	host := filepath.Join(n.root, "pods", string(uid), "containers", "file", "0")
	if len(mounts) != 1 || mounts[0].ContainerPath != "/tmp/term" || mounts[0].HostPath != host || mounts[0].Readonly || mounts[0].SelinuxRelabel {
		t.Fatalf("mounts = %v, want a read-write bind of %s at /tmp/term", mounts, host)
	}
	if info, err := os.Stat(host); err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o666 || info.Size() != 0 {
		t.Fatalf("termination message file: %v %v", info, err)
	}
	if err := os.WriteFile(host, []byte("bye bye"), 0o666); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(n.logs, "default_msg-node_"+string(uid), "logs", "0.log")
	log := "2024-01-01T00:00:00.000000000Z stdout F starting\n" +
		"2024-01-01T00:00:01.000000000Z stderr P fatal: \n" +
		"2024-01-01T00:00:01.000000001Z stderr F disk full\n"
	if err := os.WriteFile(logFile, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, code := range map[string]int32{"file": 0, "logs": 2, "quiet": 0} {
		n.srv.SetContainerExited(containerView(l, "msg", name).ID, code, "")
	}
	n.tick(time.Second)
	n.waitView("failed", func(l PodList) bool { return viewPod(l, "msg").Phase == "Failed" })
	messages := map[string]string{}
	for _, cs := range n.podStatus("msg").ContainerStatuses {
		messages[cs.Name] = cs.State.Terminated.Message
	}
	if want := map[string]string{"file": "bye bye", "logs": "starting\nfatal: disk full\n", "quiet": ""}; !equalMaps(messages, want) {
		t.Errorf("messages = %q, want %q", messages, want)
	}

	if err := os.Remove(filepath.Join(n.manifests, "msg.yaml")); err != nil {
		t.Fatal(err)
	}
	n.stepUntil("pod removed", func(l PodList) bool { return len(l.Pods) == 0 })
	if _, err := os.Stat(filepath.Join(n.root, "pods", string(uid))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod directory still there: %v", err)
	}
}

func TestLastLogLines(t *testing.T) {
	dir := t.TempDir()
	write := func(lines ...string) string {
		p := filepath.Join(dir, "0.log")
		if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var many []string
	for i := range 100 {
		many = append(many, "2024-01-01T00:00:00Z stdout F line "+string(rune('a'+i%26))+"\n")
	}
	got := lastLogLines(write(many...), 80, 2048)
	if n := strings.Count(got, "\n"); n != 80 {
		t.Errorf("%d lines, want 80", n)
	}
	long := "2024-01-01T00:00:00Z stdout F " + strings.Repeat("x", 5000) + "end\n"
	if got := lastLogLines(write(long), 80, 2048); len(got) != 2048 || !strings.HasSuffix(got, "end\n") {
		t.Errorf("long line: %d bytes, suffix %q", len(got), got[max(0, len(got)-8):])
	}
	if got := lastLogLines(write("2024-01-01T00:00:00Z stdout P no end"), 80, 2048); got != "no end" {
		t.Errorf("partial last line: %q", got)
	}
	if got := lastLogLines(filepath.Join(dir, "missing"), 80, 2048); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

// workersHarness runs pod workers for API pods on a fake CRI and a fake clientset, without the
// rest of cluster mode.
type workersHarness struct {
	clock   *clocktesting.FakeClock
	srv     *fakecri.Server
	rt      *recordingRuntime
	client  *fake.Clientset
	store   *statusStore
	workers *podWorkers
}

func newWorkersHarness(t *testing.T, objects ...runtime.Object) *workersHarness {
	t.Helper()
	dir := t.TempDir()
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	srv := fakecri.New(fakecri.Config{Images: []string{"busybox"}, Clock: clk})
	if err := srv.Serve(filepath.Join(dir, "cri.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	client, err := cri.NewClient(cri.ClientConfig{Endpoint: srv.Endpoint(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	h := &workersHarness{clock: clk, srv: srv, rt: &recordingRuntime{Client: client}, client: fake.NewClientset(objects...), store: newStatusStore()}
	cfg := &Config{
		NodeName: "node", RootDir: filepath.Join(dir, "root"), PodLogsDir: filepath.Join(dir, "logs"),
		SyncFrequency: time.Minute, Runtime: h.rt, RuntimeName: "fakecri", NodeIPs: []string{"192.0.2.10"},
		Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Cluster: &ClusterConfig{Client: clientset.Wrap(h.client)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.workers, err = newPodWorkers(ctx, cfg, h.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); h.workers.wait(); h.workers.prober.Stop() })
	return h
}

func (h *workersHarness) waitStatus(t *testing.T, uid types.UID, what string, cond func(v1.PodStatus) bool) v1.PodStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := h.store.get(uid); r != nil && cond(r.status) {
			return r.status
		}
		if time.Now().After(deadline) {
			r := h.store.get(uid)
			t.Fatalf("timed out waiting for %s; status: %+v", what, r)
		}
		h.clock.Step(100 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEnvFromConfigMapsAndSecrets: an API pod's environment from ConfigMaps and Secrets, fetched
// with GETs only; a missing required object gives CreateContainerConfigError (not a crash loop)
// until it exists.
func TestEnvFromConfigMapsAndSecrets(t *testing.T) {
	secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "db"}, Data: map[string][]byte{"password": []byte("s3cret"), "user": []byte("admin")}}
	h := newWorkersHarness(t, secret)
	ref := func(name string) v1.LocalObjectReference { return v1.LocalObjectReference{Name: name} }
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "env", UID: "env-uid"},
		Spec: v1.PodSpec{
			RestartPolicy:                 v1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []v1.Container{{
				Name: "app", Image: "busybox", ImagePullPolicy: v1.PullIfNotPresent,
				EnvFrom: []v1.EnvFromSource{{Prefix: "DB_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: ref("db")}}},
				Env: []v1.EnvVar{
					{Name: "LEVEL", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("settings"), Key: "level"}}},
					{Name: "EXTRA", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("extras"), Key: "x", Optional: ptr.To(true)}}},
					{Name: "PASS", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("db"), Key: "password"}}},
				},
			}},
		},
	}
	h.workers.update(p)
	st := h.waitStatus(t, p.UID, "CreateContainerConfigError", func(st v1.PodStatus) bool {
		w := st.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == reasonCreateContainerConfig
	})
	if msg := st.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, `env LEVEL: configmap "settings" not found`) {
		t.Errorf("waiting message %q", msg)
	}
	if st.ContainerStatuses[0].RestartCount != 0 || h.srv.Calls()["CreateContainer"] != 0 {
		t.Errorf("a container was created: %+v", st.ContainerStatuses[0])
	}

	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "settings"}, Data: map[string]string{"level": "3"}}
	if _, err := h.client.CoreV1().ConfigMaps("apps").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(t, p.UID, "running", func(st v1.PodStatus) bool { return st.ContainerStatuses[0].State.Running != nil })
	h.rt.mu.Lock()
	env := map[string]string{}
	for _, kv := range h.rt.configs["app"].Envs {
		env[kv.Key] = string(kv.Value)
	}
	h.rt.mu.Unlock()
	if want := map[string]string{"DB_password": "s3cret", "DB_user": "admin", "LEVEL": "3", "PASS": "s3cret"}; !equalMaps(env, want) {
		t.Errorf("env = %v, want %v", env, want)
	}
	for _, a := range h.client.Actions() {
		if r, verb := a.GetResource().Resource, a.GetVerb(); (r == "configmaps" || r == "secrets") && (verb == "list" || verb == "watch") {
			t.Errorf("%s %s: the node may only get them", verb, r)
		}
	}
}

// TestPreStopHookOnSpecChange: a container replaced because its spec changed gets its preStop hook
// before its stop, then the new instance starts.
func TestPreStopHookOnSpecChange(t *testing.T) {
	h := newWorkersHarness(t)
	h.srv.SetExecHandler(func(id string, cmd []string) ([]byte, []byte, int32, error) {
		h.rt.note("exec " + h.rt.name(id) + " " + cmd[0])
		return nil, nil, 0, nil
	})
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web", UID: "web-uid"},
		Spec: v1.PodSpec{
			RestartPolicy:                 v1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](9),
			Containers: []v1.Container{{
				Name: "main", Image: "busybox", ImagePullPolicy: v1.PullIfNotPresent, Args: []string{"v1"},
				Lifecycle: &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}},
			}},
		},
	}
	h.workers.update(p)
	h.waitStatus(t, p.UID, "running", func(st v1.PodStatus) bool { return st.ContainerStatuses[0].State.Running != nil })
	p2 := p.DeepCopy()
	p2.Spec.Containers[0].Args = []string{"v2"}
	h.workers.update(p2)
	h.waitStatus(t, p.UID, "replaced", func(st v1.PodStatus) bool {
		return st.ContainerStatuses[0].State.Running != nil && st.ContainerStatuses[0].RestartCount == 1
	})
	want := []string{"create main", "exec main drain", "stop main", "create main"}
	if got := h.rt.recorded("create ", "exec ", "stop "); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if g := h.rt.stopGraces(); !slices.Equal(g, []int64{9}) {
		t.Errorf("graces = %v, want [9]", g)
	}
}

// TestPodDirsLeftBehindAreRemoved: a pod directory no worker and no runtime object knows (its pod
// went away while Berth was down, with its containers) is removed; the running pods' are kept.
func TestPodDirsLeftBehindAreRemoved(t *testing.T) {
	n := newFakeNode(t, map[string]string{"a.yaml": pod("a", "Always", "")})
	l := n.waitView("running", runningWith("a", 0))
	stale := filepath.Join(n.root, "pods", "0b9c7f1e-0000-4000-8000-000000000000")
	if err := os.MkdirAll(filepath.Join(stale, "containers", "main"), 0o750); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(stale); errors.Is(err, os.ErrNotExist) {
			break
		}
		if i == 100 {
			t.Fatal("stale pod directory not removed")
		}
		n.tick(time.Second)
	}
	if _, err := os.Stat(filepath.Join(n.root, "pods", viewPod(l, "a").UID)); err != nil {
		t.Errorf("running pod's directory: %v", err)
	}
}
