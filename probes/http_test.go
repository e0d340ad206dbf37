package probes

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testServer is an httptest server on 127.0.0.1 whose handler the test sets, recording requests.
type testServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	port int
}

func newTestServer(t *testing.T, tls bool, h http.HandlerFunc) *testServer {
	ts := &testServer{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, r.Clone(context.Background()))
		ts.mu.Unlock()
		h(w, r)
	})
	if tls {
		ts.Server = httptest.NewTLSServer(handler)
	} else {
		ts.Server = httptest.NewServer(handler)
	}
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL)
	ts.port, _ = strconv.Atoi(u.Port())
	return ts
}

func (ts *testServer) requests() []*http.Request {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]*http.Request(nil), ts.reqs...)
}

func TestHTTPProbe(t *testing.T) {
	hp := newHTTPProber()
	defer hp.close()
	var srv *testServer
	srv = newTestServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine"))
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/399":
			w.WriteHeader(399)
		case "/404":
			http.NotFound(w, r)
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/500-body":
			http.Error(w, "database is down", http.StatusInternalServerError)
		case "/redirect-same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/redirect-same-abs":
			http.Redirect(w, r, "http://127.0.0.1:"+strconv.Itoa(srv.port)+"/500", http.StatusMovedPermanently)
		case "/redirect-other":
			http.Redirect(w, r, "http://localhost:"+strconv.Itoa(srv.port)+"/500", http.StatusFound)
		case "/redirect-loop":
			http.Redirect(w, r, "/redirect-loop", http.StatusFound)
		case "/query":
			if r.URL.RawQuery != "deep=1" {
				w.WriteHeader(http.StatusBadRequest)
			}
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	})
	get := func(path string) *v1.HTTPGetAction {
		return &v1.HTTPGetAction{Path: path, Port: intstr.FromInt32(int32(srv.port)), Scheme: v1.URISchemeHTTP}
	}
	tgt := target{podIP: "127.0.0.1"}
	for _, tc := range []struct {
		name    string
		get     *v1.HTTPGetAction
		tgt     target
		want    Outcome
		wantOut string // prefix
	}{
		{"200", get("/ok"), tgt, Passed, "fine"},
		{"204", get("/204"), tgt, Passed, ""},
		{"399 is a redirect status not followed", get("/399"), tgt, Warned, "Probe terminated redirects, Response body:"},
		{"404", get("/404"), tgt, Failed, "HTTP probe failed with statuscode: 404, body: 404 page not found"},
		{"500 without a body", get("/500"), tgt, Failed, "HTTP probe failed with statuscode: 500"},
		{"500 with a body", get("/500-body"), tgt, Failed, "HTTP probe failed with statuscode: 500, body: database is down"},
		{"418", get("/other"), tgt, Failed, "HTTP probe failed with statuscode: 418"},
		{"redirect to the same host is followed", get("/redirect-same"), tgt, Passed, "fine"},
		{"absolute redirect to the same host is followed", get("/redirect-same-abs"), tgt, Failed, "HTTP probe failed with statuscode: 500"},
		{"redirect to another host passes with a warning", get("/redirect-other"), tgt, Warned, "Probe terminated redirects, Response body: <a href="},
		{"too many redirects pass with a warning", get("/redirect-loop"), tgt, Warned, "Probe terminated redirects"},
		{"query string", get("/query?deep=1"), tgt, Passed, ""},
		{"empty path", get(""), tgt, Failed, "HTTP probe failed with statuscode: 418"},
		{"explicit host", &v1.HTTPGetAction{Host: "127.0.0.1", Path: "/ok", Port: intstr.FromInt32(int32(srv.port))}, target{}, Passed, "fine"},
		{"no pod IP", get("/ok"), target{}, Errored, "httpGet probe: the pod has no IP address yet"},
		{"named port", &v1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("http")}, target{podIP: "127.0.0.1", container: &v1.Container{Ports: []v1.ContainerPort{{Name: "metrics", ContainerPort: 1}, {Name: "http", ContainerPort: int32(srv.port)}}}}, Passed, "fine"},
		{"unknown port name", &v1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("http")}, target{podIP: "127.0.0.1", container: &v1.Container{}}, Errored, `httpGet probe: port "http": the container has no port of that name`},
		{"port out of range", &v1.HTTPGetAction{Path: "/ok", Port: intstr.FromInt32(70000)}, tgt, Errored, "httpGet probe: port 70000: out of range 1-65535"},
		{"connection refused", &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(closedPort(t)))}, tgt, Failed, `Get "http://127.0.0.1:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := hp.probe(context.Background(), tc.get, tc.tgt, 5*time.Second)
			if a.outcome != tc.want || !strings.HasPrefix(a.output, tc.wantOut) {
				t.Errorf("got %s %q, want %s %q…", a.outcome, a.output, tc.want, tc.wantOut)
			}
		})
	}
	// The loop: the first request and ten redirects followed, then the 11th redirect is the result.
	n := 0
	for _, r := range srv.requests() {
		if r.URL.Path == "/redirect-loop" {
			n++
		}
	}
	if n != maxRedirects+1 {
		t.Errorf("redirect loop: %d requests, want %d", n, maxRedirects+1)
	}
}

func TestHTTPProbeHeaders(t *testing.T) {
	hp := newHTTPProber()
	defer hp.close()
	srv := newTestServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		name    string
		headers []v1.HTTPHeader
		check   func(r *http.Request) string
	}{
		{"defaults", nil, func(r *http.Request) string {
			if r.UserAgent() != "kube-probe/1.37" || r.Header.Get("Accept") != "*/*" || r.Host != "127.0.0.1:"+strconv.Itoa(srv.port) || r.Header.Get("Connection") != "close" && !r.Close {
				return "default headers wrong"
			}
			return ""
		}},
		{"custom headers", []v1.HTTPHeader{{Name: "X-Probe", Value: "a"}, {Name: "x-probe", Value: "b"}, {Name: "Authorization", Value: "Bearer t"}}, func(r *http.Request) string {
			if got := r.Header.Values("X-Probe"); len(got) != 2 || got[0] != "a" || got[1] != "b" || r.Header.Get("Authorization") != "Bearer t" {
				return "custom headers missing"
			}
			return ""
		}},
		{"host header", []v1.HTTPHeader{{Name: "host", Value: "example.com"}}, func(r *http.Request) string {
			if r.Host != "example.com" {
				return "host is " + r.Host
			}
			return ""
		}},
		{"user agent and accept replaced", []v1.HTTPHeader{{Name: "User-Agent", Value: "mine/1"}, {Name: "Accept", Value: "application/json"}}, func(r *http.Request) string {
			if r.UserAgent() != "mine/1" || r.Header.Get("Accept") != "application/json" {
				return "not replaced"
			}
			return ""
		}},
		{"user agent and accept removed by empty values", []v1.HTTPHeader{{Name: "User-Agent", Value: ""}, {Name: "Accept", Value: ""}}, func(r *http.Request) string {
			if _, ok := r.Header["User-Agent"]; ok {
				return "User-Agent sent: " + r.UserAgent()
			}
			if _, ok := r.Header["Accept"]; ok {
				return "Accept sent"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.requests())
			g := &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(srv.port)), HTTPHeaders: tc.headers}
			if a := hp.probe(context.Background(), g, target{podIP: "127.0.0.1"}, 5*time.Second); a.outcome != Passed {
				t.Fatalf("got %s %q", a.outcome, a.output)
			}
			reqs := srv.requests()
			if len(reqs) != before+1 {
				t.Fatalf("%d requests", len(reqs)-before)
			}
			if msg := tc.check(reqs[before]); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestHTTPProbeHTTPS(t *testing.T) {
	hp := newHTTPProber()
	defer hp.close()
	srv := newTestServer(t, true, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secure")) })
	g := &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(srv.port)), Scheme: v1.URISchemeHTTPS}
	// The test server's certificate is not trusted: the probe does not check it, as the kubelet.
	if a := hp.probe(context.Background(), g, target{podIP: "127.0.0.1"}, 5*time.Second); a.outcome != Passed || a.output != "secure" {
		t.Errorf("got %s %q", a.outcome, a.output)
	}
}

// TestHTTPProbeBodyCap checks that an endless body is not read: the probe returns as soon as it has
// its 10 KiB, long before its timeout, and the message keeps 1 KiB of it.
func TestHTTPProbeBodyCap(t *testing.T) {
	hp := newHTTPProber()
	defer hp.close()
	for _, code := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		srv := newTestServer(t, false, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			chunk := []byte(strings.Repeat("x", 4096))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		g := &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(srv.port))}
		start := time.Now()
		a := hp.probe(context.Background(), g, target{podIP: "127.0.0.1"}, 10*time.Second)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%d: took %s: the body was read beyond the cap", code, took)
		}
		if len(a.output) > maxOutput {
			t.Errorf("%d: output of %d bytes", code, len(a.output))
		}
		want := Passed
		if code != http.StatusOK {
			want = Failed
		}
		if a.outcome != want {
			t.Errorf("%d: got %s %.60q", code, a.outcome, a.output)
		}
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	hp := newHTTPProber()
	defer hp.close()
	release := make(chan struct{})
	srv := newTestServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	g := &v1.HTTPGetAction{Path: "/slow", Port: intstr.FromInt32(int32(srv.port))}
	start := time.Now()
	a := hp.probe(context.Background(), g, target{podIP: "127.0.0.1"}, time.Second)
	if took := time.Since(start); took < time.Second || took > 3*time.Second {
		t.Errorf("took %s, want about the 1s timeout", took)
	}
	if a.outcome != Failed || !strings.Contains(a.output, "context deadline exceeded") {
		t.Errorf("got %s %q", a.outcome, a.output)
	}
}

func TestProbeURL(t *testing.T) {
	for _, tc := range []struct {
		scheme, host string
		port         int
		path, want   string
	}{
		{"HTTP", "10.0.0.1", 80, "/healthz", "http://10.0.0.1:80/healthz"},
		{"HTTPS", "10.0.0.1", 443, "healthz", "https://10.0.0.1:443/healthz"},
		{"", "fd00::1", 8080, "/a?b=c", "http://[fd00::1]:8080/a?b=c"},
		{"HTTP", "10.0.0.1", 80, "", "http://10.0.0.1:80/"},
		// An absolute URL as path stays a path: the probe never leaves the host.
		{"HTTP", "10.0.0.1", 80, "http://elsewhere/x", "http://10.0.0.1:80/http://elsewhere/x"},
	} {
		if got := probeURL(tc.scheme, tc.host, tc.port, tc.path).String(); got != tc.want {
			t.Errorf("probeURL(%q, %q, %d, %q) = %q, want %q", tc.scheme, tc.host, tc.port, tc.path, got, tc.want)
		}
	}
}

// closedPort returns a port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
