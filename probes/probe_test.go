package probes

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // length in bytes
	}{
		{"", 0},
		{"  short\n", 5},
		{strings.Repeat("a", maxOutput), maxOutput},
		{strings.Repeat("a", maxOutput+1), maxOutput},
		{strings.Repeat("日本", 1000), 0}, // checked below: at most maxOutput, valid UTF-8
		{string([]byte{0xff, 'a'}), 2},
	} {
		got := truncate(tc.in)
		if len(got) > maxOutput || !utf8.ValidString(got) {
			t.Errorf("truncate(%.20q…) = %d bytes, valid UTF-8 %v", tc.in, len(got), utf8.ValidString(got))
		}
		if tc.want > 0 && len(got) != tc.want {
			t.Errorf("truncate(%.20q…) = %d bytes, want %d", tc.in, len(got), tc.want)
		}
		if len(tc.in) > maxOutput && !strings.HasSuffix(got, "…") {
			t.Errorf("truncate(%.20q…) is not marked as truncated", tc.in)
		}
	}
}

func TestResolvePort(t *testing.T) {
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "bad", ContainerPort: 0}}}
	for _, tc := range []struct {
		port    intstr.IntOrString
		c       *v1.Container
		want    int
		wantErr string
	}{
		{intstr.FromInt32(80), nil, 80, ""},
		{intstr.FromString("http"), c, 8080, ""},
		{intstr.FromString("9090"), c, 9090, ""},
		{intstr.FromString("grpc"), c, 0, `port "grpc": the container has no port of that name`},
		{intstr.FromString("http"), nil, 0, `port "http": the container has no port of that name`},
		{intstr.FromString("bad"), c, 0, "port bad: out of range 1-65535"},
		{intstr.FromInt32(0), nil, 0, "port 0: out of range 1-65535"},
		{intstr.FromInt32(65536), nil, 0, "port 65536: out of range 1-65535"},
	} {
		got, err := resolvePort(tc.port, tc.c)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || err != nil && err.Error() != tc.wantErr {
			t.Errorf("resolvePort(%s) = %d, %v; want %d, %q", tc.port.String(), got, err, tc.want, tc.wantErr)
		}
	}
}

func TestDefaultContainer(t *testing.T) {
	c := &v1.Container{
		LivenessProbe:  &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
		ReadinessProbe: &v1.Probe{PeriodSeconds: 3, TimeoutSeconds: 2, SuccessThreshold: 2, FailureThreshold: 5, ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}},
	}
	DefaultContainer(c)
	l := c.LivenessProbe
	if l.PeriodSeconds != 10 || l.TimeoutSeconds != 1 || l.SuccessThreshold != 1 || l.FailureThreshold != 3 || l.HTTPGet.Path != "/" || l.HTTPGet.Scheme != v1.URISchemeHTTP {
		t.Errorf("liveness defaults: %+v %+v", l, l.HTTPGet)
	}
	r := c.ReadinessProbe
	if r.PeriodSeconds != 3 || r.TimeoutSeconds != 2 || r.SuccessThreshold != 2 || r.FailureThreshold != 5 {
		t.Errorf("readiness: set values changed: %+v", r)
	}
	if c.StartupProbe != nil {
		t.Error("a startup probe appeared")
	}
	// withDefaults leaves its argument alone.
	p := &v1.Probe{}
	if d := withDefaults(p); d.PeriodSeconds != 10 || p.PeriodSeconds != 0 {
		t.Errorf("withDefaults: %d, argument %d", d.PeriodSeconds, p.PeriodSeconds)
	}
}

func TestProberDispatch(t *testing.T) {
	ex := &fakeExecer{code: 1, stdout: "no"}
	pr := newProber(ex)
	defer pr.http.close()
	a := pr.run(context.Background(), withDefaults(&v1.Probe{TimeoutSeconds: 4, ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"check"}}}}), target{containerID: "c9"})
	if a.outcome != Failed || a.output != "no" || len(ex.calls) != 1 || ex.calls[0].id != "c9" || ex.calls[0].timeout != 4*time.Second {
		t.Errorf("exec: %s %q, calls %+v", a.outcome, a.output, ex.calls)
	}
	if a := pr.run(context.Background(), withDefaults(&v1.Probe{}), target{}); a.outcome != Errored {
		t.Errorf("no handler: %s %q", a.outcome, a.output)
	}
}
