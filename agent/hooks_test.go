package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// TestHTTPGetHook: the request goes to the pod IP and the port (by number or name) with the hook's
// path and headers; any response succeeds, whatever its status, and only no response fails.
func TestHTTPGetHook(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	h := newHookRunner(nil, clocktesting.NewFakeClock(time.Now()))
	c := &v1.Container{Name: "web", Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	call := hookCall{kind: "PostStart", pod: "default/web", container: c, podIP: host}

	err := h.run(context.Background(), call, &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{
		Path: "started?x=1", Port: intstr.FromString("http"), HTTPHeaders: []v1.HTTPHeader{{Name: "X-Hook", Value: "yes"}},
	}})
	if err != nil {
		t.Fatalf("a 500 answer is a success for a hook: %v", err)
	}
	mu.Lock()
	r := got[0]
	mu.Unlock()
	if r.URL.Path != "/started" || r.URL.RawQuery != "x=1" || r.Header.Get("X-Hook") != "yes" ||
		!strings.HasPrefix(r.Header.Get("User-Agent"), "kube-lifecycle/") || r.Header.Get("Accept") != "*/*" {
		t.Errorf("request: %s %s %v", r.Method, r.URL, r.Header)
	}

	srv.Close()
	err = h.run(context.Background(), call, &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/stop", Port: intstr.FromInt32(int32(port))}})
	if err == nil || !strings.Contains(err.Error(), `HTTP lifecycle hook (/stop) for Container "web" in Pod "default/web" failed - error:`) {
		t.Errorf("no server: %v", err)
	}
	err = h.run(context.Background(), call, &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromString("admin")}})
	if err == nil || !strings.Contains(err.Error(), `no port named "admin"`) {
		t.Errorf("unknown port name: %v", err)
	}
	call.podIP = ""
	if err := h.run(context.Background(), call, &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(80)}}); err == nil {
		t.Errorf("no pod IP: no error")
	}
}

func TestSleepHookFollowsTheClock(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	h := newHookRunner(nil, clk)
	call := hookCall{kind: "PreStop", pod: "default/web", container: &v1.Container{Name: "web"}}
	done := make(chan error, 1)
	go func() {
		done <- h.run(context.Background(), call, &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}})
	}()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(4 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("returned after 4 of 5 seconds: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Step(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.run(ctx, call, &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}); err == nil || !strings.Contains(err.Error(), "terminated before sleep hook finished") {
		t.Errorf("cancelled sleep: %v", err)
	}
}

// TestStopPlan: app containers first; sidecars after the apps and after the sidecars declared
// after them; a pod without a spec takes its hooks from the annotations.
func TestStopPlan(t *testing.T) {
	always := ptr.To(v1.ContainerRestartPolicyAlways)
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "a", RestartPolicy: always}, {Name: "setup"}, {Name: "b", RestartPolicy: always,
			Lifecycle: &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}}}},
		Containers: []v1.Container{{Name: "main"}},
	}}
	rec := func(name, typ string, state runtimeapi.ContainerState) *containerRecord {
		return &containerRecord{id: name, name: name, typ: typ, state: state}
	}
	running := runtimeapi.ContainerState_CONTAINER_RUNNING
	recs := []*containerRecord{
		rec("a", cri.ContainerTypeInit, running),
		rec("setup", cri.ContainerTypeInit, runtimeapi.ContainerState_CONTAINER_EXITED),
		rec("b", cri.ContainerTypeInit, running),
		rec("main", cri.ContainerTypeApp, running),
	}
	plan := stopPlan(pod, recs)
	after := map[string][]string{}
	for _, tg := range plan {
		for _, o := range tg.after {
			after[tg.rec.name] = append(after[tg.rec.name], o.rec.name)
		}
	}
	if len(plan) != 3 || strings.Join(after["a"], ",") != "main,b" || strings.Join(after["b"], ",") != "main" || len(after["main"]) != 0 {
		t.Errorf("plan: %d targets, after = %v", len(plan), after)
	}
	for _, tg := range plan {
		if (tg.rec.name == "b") != (tg.preStop != nil) {
			t.Errorf("preStop of %s: %v", tg.rec.name, tg.preStop)
		}
	}

	orphan := []*containerRecord{rec("main", cri.ContainerTypeApp, running), rec("side", cri.ContainerTypeInit, running)}
	orphan[0].preStop = `{"sleep":{"seconds":2}}`
	plan = stopPlan(nil, orphan)
	if len(plan) != 2 || plan[0].preStop == nil || plan[0].preStop.Sleep.Seconds != 2 || len(plan[1].after) != 1 {
		t.Errorf("orphan plan: %+v", plan)
	}
}
