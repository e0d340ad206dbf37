package probes

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Kind is the kind of a probe: what its result decides.
type Kind string

const (
	Liveness  Kind = "liveness"  // failure kills the container
	Readiness Kind = "readiness" // drives the container's ready
	Startup   Kind = "startup"   // gates the other two; failure kills the container
)

// title is the kind as the kubelet writes it at the start of event messages ("Liveness probe failed: …").
func (k Kind) title() string {
	switch k {
	case Liveness:
		return "Liveness"
	case Readiness:
		return "Readiness"
	case Startup:
		return "Startup"
	}
	return string(k)
}

// specOf returns the container's probe of this kind, nil if it has none.
func (k Kind) specOf(c *v1.Container) *v1.Probe {
	switch k {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	case Startup:
		return c.StartupProbe
	}
	return nil
}

// Result is the published result of a probe: what the agent acts on.
type Result int

const (
	// Unknown: no decision yet (a startup probe that has not passed).
	Unknown Result = iota
	// Success: past successThreshold consecutive successes (or a liveness probe's initial state).
	Success
	// Failure: past failureThreshold consecutive failures (or a readiness probe's initial state).
	Failure
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	}
	return "unknown"
}

// initialResult is a probe's result before it has run: a readiness probe starts failing (the
// container is not ready until it passes), a liveness probe starts passing (the container lives
// until it fails), a startup probe starts unknown (the container has not started).
func initialResult(k Kind) Result {
	switch k {
	case Readiness:
		return Failure
	case Liveness:
		return Success
	}
	return Unknown
}

// UserAgent is sent by httpGet and grpc probes. Applications check it (and their access logs skip
// it), so Berth sends the kubelet's, for the Kubernetes version of its API packages.
const UserAgent = "kube-probe/1.37"

// The API server's defaults for a probe's knobs, applied to zero values.
const (
	DefaultPeriodSeconds    = 10
	DefaultTimeoutSeconds   = 1
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// maxOutput caps the output kept from one attempt (event messages, log lines, the kill reason).
const maxOutput = 1024

// maxBody caps what is read of an HTTP response body: it is only used in the failure message.
const maxBody = 10 * 1024

// DefaultContainer fills in the defaults the API server would give c's probes (period, timeout,
// thresholds, httpGet path and scheme), in place. Static pods get no API server defaulting, so the
// agent calls it while defaulting a manifest; the Manager applies the same defaults to any zero
// value it is given anyway.
func DefaultContainer(c *v1.Container) {
	for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p != nil {
			defaultProbe(p)
		}
	}
}

func defaultProbe(p *v1.Probe) {
	if p.PeriodSeconds <= 0 {
		p.PeriodSeconds = DefaultPeriodSeconds
	}
	if p.TimeoutSeconds <= 0 {
		p.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if p.SuccessThreshold <= 0 {
		p.SuccessThreshold = DefaultSuccessThreshold
	}
	if p.FailureThreshold <= 0 {
		p.FailureThreshold = DefaultFailureThreshold
	}
	if p.InitialDelaySeconds < 0 {
		p.InitialDelaySeconds = 0
	}
	if h := p.HTTPGet; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Scheme == "" {
			h.Scheme = v1.URISchemeHTTP
		}
	}
}

// withDefaults returns a defaulted copy of p; p itself is left alone.
func withDefaults(p *v1.Probe) *v1.Probe {
	p = p.DeepCopy()
	defaultProbe(p)
	return p
}

func seconds(n int32) time.Duration { return time.Duration(n) * time.Second }

// target is what one attempt needs to know besides the probe itself.
type target struct {
	podIP       string
	containerID string
	container   *v1.Container // for ports by name
}

// Outcome is what one attempt of a probe found, before thresholds.
type Outcome string

const (
	// Passed: success.
	Passed Outcome = "passed"
	// Warned: success, with something worth an event (an HTTP redirect the probe did not follow).
	Warned Outcome = "warning"
	// Failed: counts towards failureThreshold.
	Failed Outcome = "failed"
	// Errored: the probe could not be run (a runtime error, a port name the container does not
	// have, no pod IP yet). As with the kubelet the attempt is reported but thrown away: it
	// neither fails nor passes, and does not break a run of failures or successes.
	Errored Outcome = "errored"
)

// attempt is the outcome of one probe run and its output (truncated).
type attempt struct {
	outcome Outcome
	output  string
}

func pass(output string) attempt { return attempt{Passed, truncate(output)} }

func warn(format string, args ...any) attempt {
	return attempt{Warned, truncate(fmt.Sprintf(format, args...))}
}

func fail(format string, args ...any) attempt {
	return attempt{Failed, truncate(fmt.Sprintf(format, args...))}
}

func errorf(format string, args ...any) attempt {
	return attempt{Errored, truncate(fmt.Sprintf(format, args...))}
}

// truncate keeps at most maxOutput bytes of s (cut on a rune boundary, marked with "…").
func truncate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxOutput {
		return strings.ToValidUTF8(s, "?")
	}
	cut := maxOutput - len("…")
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "?") + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// runFunc runs one attempt of a (defaulted) probe. The Manager's is runProbe; tests replace it.
type runFunc func(ctx context.Context, p *v1.Probe, t target) attempt

// prober runs probes of every handler type. One per Manager: it holds the HTTP transport shared by
// all httpGet probes.
type prober struct {
	exec Execer
	http *httpProber
}

func newProber(exec Execer) *prober {
	return &prober{exec: exec, http: newHTTPProber()}
}

// run runs one attempt of p against t, bounded by p's timeout.
func (pr *prober) run(ctx context.Context, p *v1.Probe, t target) attempt {
	timeout := seconds(p.TimeoutSeconds)
	switch {
	case p.Exec != nil:
		return execProbe(ctx, pr.exec, t.containerID, p.Exec.Command, timeout)
	case p.HTTPGet != nil:
		return pr.http.probe(ctx, p.HTTPGet, t, timeout)
	case p.TCPSocket != nil:
		return tcpProbe(ctx, p.TCPSocket, t, timeout)
	case p.GRPC != nil:
		return grpcProbe(ctx, p.GRPC, t, timeout)
	}
	return errorf("probe has no handler (exec, httpGet, tcpSocket or grpc)")
}

// resolvePort turns a probe's port (a number or the name of one of the container's ports) into a
// number.
func resolvePort(port intstr.IntOrString, c *v1.Container) (int, error) {
	n := 0
	if port.Type == intstr.String {
		name := port.StrVal
		found := false
		if c != nil {
			for _, p := range c.Ports {
				if p.Name == name {
					n, found = int(p.ContainerPort), true
					break
				}
			}
		}
		if !found {
			v, err := strconv.Atoi(name)
			if err != nil {
				return 0, fmt.Errorf("port %q: the container has no port of that name", name)
			}
			n = v
		}
	} else {
		n = port.IntValue()
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s: out of range 1-65535", port.String())
	}
	return n, nil
}

// hostOf is the host a probe connects to: its own host field, or the pod's IP.
func hostOf(host string, t target) (string, error) {
	if host != "" {
		return host, nil
	}
	if t.podIP == "" {
		return "", fmt.Errorf("the pod has no IP address yet")
	}
	return t.podIP, nil
}
