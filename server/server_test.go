package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/kubeclient/clientset"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakePods []*v1.Pod

func (f fakePods) Pods() []*v1.Pod { return f }

type fakeRuntime struct {
	containers []*runtimeapi.Container
	logPaths   map[string]string
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	return []*runtimeapi.PodSandbox{{Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY}}, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		match := true
		for k, v := range filter.GetLabelSelector() {
			match = match && c.Labels[k] == v
		}
		if match {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	for _, c := range f.containers {
		if c.Id == id {
			return &runtimeapi.ContainerStatus{Id: id, State: c.State, LogPath: f.logPaths[id]}, nil
		}
	}
	return nil, io.EOF
}

func (f *fakeRuntime) ImageFsInfo(context.Context) ([]*runtimeapi.FilesystemUsage, error) {
	return []*runtimeapi.FilesystemUsage{{Timestamp: 1e18, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/"},
		UsedBytes: &runtimeapi.UInt64Value{Value: 1 << 20}, InodesUsed: &runtimeapi.UInt64Value{Value: 10}}}, nil
}

func (f *fakeRuntime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	var out []*runtimeapi.ContainerStats
	for _, c := range f.containers {
		out = append(out, &runtimeapi.ContainerStats{
			Attributes: &runtimeapi.ContainerAttributes{Id: c.Id},
			Cpu:        &runtimeapi.CpuUsage{Timestamp: 1e18, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 2500000000}},
			Memory:     &runtimeapi.MemoryUsage{Timestamp: 1e18, WorkingSetBytes: &runtimeapi.UInt64Value{Value: 4096}},
		})
	}
	return out, nil
}

func (f *fakeRuntime) Exec(context.Context, *runtimeapi.ExecRequest) (string, error) {
	return "", io.EOF
}
func (f *fakeRuntime) Attach(context.Context, *runtimeapi.AttachRequest) (string, error) {
	return "", io.EOF
}
func (f *fakeRuntime) PortForward(context.Context, *runtimeapi.PortForwardRequest) (string, error) {
	return "", io.EOF
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) client(t *testing.T, cn string, groups ...string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestServer(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := filepath.Join(dir, "ca.crt")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644)
	logFile := filepath.Join(dir, "0.log")
	os.WriteFile(logFile, []byte(criLog), 0o644)

	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main"}}}}
	rt := &fakeRuntime{
		containers: []*runtimeapi.Container{{Id: "c1", State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: 1,
			Labels: map[string]string{cri.LabelPodUID: "uid1", cri.LabelContainerName: "main", cri.LabelManagedBy: cri.ManagedByValue, cri.LabelPodName: "web", cri.LabelPodNamespace: "ns"}}},
		logPaths: map[string]string{"c1": logFile},
	}
	client := fake.NewClientset()
	var sars []authzv1.SubjectAccessReviewSpec
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		sars = append(sars, sar.Spec)
		sar.Status.Allowed = sar.Spec.User == "admin"
		return true, sar, nil
	})
	s, err := New(Config{NodeName: "n1", ClientCAFile: caFile, AuthorizationMode: AuthorizationWebhook, Client: clientset.Wrap(client),
		Pods: fakePods{pod}, Runtime: rt, Health: func() error { return nil }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = s.tls
	ts.StartTLS()
	defer ts.Close()

	get := func(cert *tls.Certificate, path string) (int, string) {
		t.Helper()
		tc := &tls.Config{InsecureSkipVerify: true}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(nil, "/pods"); code != 401 {
		t.Errorf("anonymous: %d, want 401", code)
	}
	nobody := ca.client(t, "nobody")
	if code, body := get(&nobody, "/pods"); code != 403 || !strings.Contains(body, "subresource=proxy") {
		t.Errorf("nobody: %d %q, want 403", code, body)
	}
	admin := ca.client(t, "admin", "ops")
	code, body := get(&admin, "/pods")
	if code != 200 {
		t.Fatalf("admin /pods: %d %s", code, body)
	}
	var list v1.PodList
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Items) != 1 || list.Kind != "PodList" {
		t.Errorf("/pods: %v %s", err, body)
	}
	if code, body := get(&admin, "/containerLogs/ns/web/main?tailLines=1"); code != 200 || body != "\n" {
		t.Errorf("logs: %d %q", code, body)
	}
	if code, body := get(&admin, "/containerLogs/ns/web/main?tailLines=2&timestamps=true"); code != 200 || !strings.HasPrefix(body, "2026-01-02T03:04:08Z three\n") {
		t.Errorf("logs: %d %q", code, body)
	}
	if code, _ := get(&admin, "/containerLogs/ns/web/main?previous=true"); code != 400 {
		t.Errorf("previous logs: %d, want 400", code)
	}
	if code, _ := get(&admin, "/containerLogs/ns/nope/main"); code != 404 {
		t.Errorf("logs of a missing pod: %d, want 404", code)
	}
	code, body = get(&admin, "/metrics")
	if code != 200 || !strings.Contains(body, "kubelet_running_pods 1") || !strings.Contains(body, `kubelet_running_containers{container_state="running"} 1`) {
		t.Errorf("metrics: %d %s", code, body)
	}
	code, body = get(&admin, "/metrics/resource")
	for _, want := range []string{
		`container_cpu_usage_seconds_total{container="main",namespace="ns",pod="web"} 2.5 1000000000000`,
		`container_memory_working_set_bytes{container="main",namespace="ns",pod="web"} 4096 1000000000000`,
		`pod_cpu_usage_seconds_total{namespace="ns",pod="web"} 2.5 1000000000000`,
		`pod_memory_working_set_bytes{namespace="ns",pod="web"} 4096 1000000000000`,
		`container_start_time_seconds{container="main",namespace="ns",pod="web"} 1e-09`,
		"node_cpu_usage_seconds_total ", "node_memory_working_set_bytes ", "scrape_error 0",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics/resource: no %q in %d %s", want, code, body)
		}
	}
	code, body = get(&admin, "/stats/summary")
	var sum summary
	if code != 200 || json.Unmarshal([]byte(body), &sum) != nil || sum.Node.NodeName != "n1" || sum.Node.Memory == nil ||
		len(sum.Pods) != 1 || len(sum.Pods[0].Containers) != 1 || *sum.Pods[0].Memory.WorkingSetBytes != 4096 ||
		*sum.Pods[0].Containers[0].CPU.UsageCoreNanoSeconds != 2500000000 || sum.Pods[0].PodRef.UID != "uid1" {
		t.Errorf("/stats/summary: %d %s", code, body)
	}
	if sars[len(sars)-1].ResourceAttributes.Subresource != "stats" {
		t.Errorf("/stats/summary authorized as %+v", sars[len(sars)-1].ResourceAttributes)
	}
	if code, body := get(&admin, "/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
	// Fine-grained first: nobody's /pods asked nodes/pods, then nodes/proxy; admin's /healthz
	// was allowed by nodes/healthz alone.
	if sars[0].ResourceAttributes.Subresource != "pods" || sars[1].ResourceAttributes.Subresource != "proxy" ||
		sars[len(sars)-1].ResourceAttributes.Subresource != "healthz" {
		t.Errorf("SubjectAccessReviews: %+v", sars)
	}
	last := sars[len(sars)-1]
	if last.User != "admin" || last.ResourceAttributes.Resource != "nodes" || last.ResourceAttributes.Name != "n1" ||
		last.ResourceAttributes.Verb != "get" {
		t.Errorf("SubjectAccessReview: %+v", last)
	}
	seenMetrics := false
	for _, s := range sars {
		seenMetrics = seenMetrics || s.ResourceAttributes.Subresource == "metrics"
	}
	if !seenMetrics {
		t.Error("no SubjectAccessReview for nodes/metrics")
	}

	// enableProfilingHandler: off here, so /debug/pprof does not exist; on, it is served to whoever
	// may use nodes/proxy.
	if code, _ := get(&admin, "/debug/pprof/cmdline"); code != 404 {
		t.Errorf("/debug/pprof with profiling off: %d, want 404", code)
	}
	ps, err := New(Config{NodeName: "n1", ClientCAFile: caFile, AuthorizationMode: AuthorizationWebhook, Client: clientset.Wrap(client),
		Pods: fakePods{pod}, Runtime: rt, Health: func() error { return nil }, EnableProfiling: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = ps.Handler()
	if code, body := get(&admin, "/debug/pprof/cmdline"); code != 200 || body == "" {
		t.Errorf("admin /debug/pprof/cmdline: %d %q", code, body)
	}
	if sub := sars[len(sars)-1].ResourceAttributes.Subresource; sub != "proxy" {
		t.Errorf("/debug/pprof authorized as nodes/%s, want nodes/proxy", sub)
	}
	if code, _ := get(&nobody, "/debug/pprof/"); code != 403 {
		t.Errorf("nobody /debug/pprof/: %d, want 403", code)
	}
}

func TestLogContainerFromStatus(t *testing.T) {
	s := &Server{cfg: Config{Runtime: &fakeRuntime{}}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main"}}}}
	running := v1.ContainerStatus{Name: "main", ContainerID: "containerd://c2",
		State:                v1.ContainerState{Running: &v1.ContainerStateRunning{}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ContainerID: "containerd://c1"}}}
	backoff := v1.ContainerStatus{Name: "main", ContainerID: "containerd://c2",
		State:                v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ContainerID: "containerd://c2"}}}
	for _, tc := range []struct {
		st       v1.ContainerStatus
		previous bool
		want     string
	}{
		{running, false, "c2"}, {running, true, "c1"}, {backoff, false, "c2"}, {backoff, true, "c2"},
	} {
		pod.Status.ContainerStatuses = []v1.ContainerStatus{tc.st}
		got, err := s.logContainer(context.Background(), pod, "main", tc.previous)
		if err != nil || got != tc.want {
			t.Errorf("previous=%v: %q %v, want %q", tc.previous, got, err, tc.want)
		}
	}
	pod.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "main", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}, ContainerID: "containerd://c1"}}
	if _, err := s.logContainer(context.Background(), pod, "main", true); err == nil || !strings.Contains(err.Error(), "previous terminated container") {
		t.Errorf("no previous: %v", err)
	}
	if _, err := s.logContainer(context.Background(), pod, "nope", false); err == nil {
		t.Error("unknown container accepted")
	}
}

func TestTokenReviewAndAnonymous(t *testing.T) {
	client := fake.NewClientset()
	reviews := 0
	client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		reviews++
		if tr.Spec.Token == "good" {
			tr.Status.Authenticated = true
			tr.Status.User = authnv1.UserInfo{Username: "alice", Groups: []string{"devs"}}
		}
		return true, tr, nil
	})
	var users []string
	client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		users = append(users, sar.Spec.User)
		sar.Status.Allowed = true
		return true, sar, nil
	})
	for _, anonymous := range []bool{false, true} {
		s, err := New(Config{NodeName: "n1", WebhookAuthentication: true, Anonymous: anonymous, AuthorizationMode: AuthorizationWebhook,
			Client: clientset.Wrap(client), Pods: fakePods{}, Runtime: &fakeRuntime{}, Health: func() error { return nil },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		do := func(token string) int {
			r := httptest.NewRequest("GET", "/healthz", nil)
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			return w.Code
		}
		wantAnon := 401
		if anonymous {
			wantAnon = 200
		}
		if got := do(""); got != wantAnon {
			t.Errorf("anonymous=%v, no token: %d, want %d", anonymous, got, wantAnon)
		}
		if got := do("bad"); got != 401 {
			t.Errorf("bad token: %d", got)
		}
		if got := do("good"); got != 200 {
			t.Errorf("good token: %d", got)
		}
		if got := do("good"); got != 200 {
			t.Errorf("good token again: %d", got)
		}
	}
	if reviews != 4 { // per server: bad and good once each, then cached
		t.Errorf("%d TokenReviews, want 4", reviews)
	}
	if fmt.Sprint(users) != "[alice system:anonymous alice]" { // per server, alice is reviewed once, then cached
		t.Errorf("SubjectAccessReviews for %v", users)
	}
}
