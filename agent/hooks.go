package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/probes"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/clock"
)

// Container lifecycle hooks (postStart, preStop), as the kubelet runs them:
//
//   - exec: CRI ExecSync in the container; exit code 0 succeeds, anything else fails with the
//     command's output.
//   - httpGet: GET scheme://host:port/path from Berth's own network namespace, host defaulting to
//     the pod IP, port a number or the name of one of the container's ports. Any HTTP response
//     succeeds, whatever its status: only a request that gets no response fails (the kubelet's
//     rule). Same client rules as the probes: no proxy, no connection reuse, certificates not
//     verified, redirects followed to the same host only (at most 10). An HTTPS request answered in
//     plain HTTP is retried once over HTTP, as the kubelet does.
//   - sleep: waits for the given seconds on the agent's clock.
//   - tcpSocket is deprecated and never supported as a hook: manifests with it are rejected.
//
// postStart runs right after StartContainer and the sync waits for it (no timeout beyond the
// runtime request timeout for exec, as with the kubelet the hook may hold the pod's sync); preStop
// runs before the stop signal, bounded by the grace period (stopContainers).

// lifecycleUserAgent is the User-Agent of httpGet hooks: "kube-lifecycle/<version>", the version
// being the one probes send as kube-probe/<version>.
var lifecycleUserAgent = "kube-lifecycle/" + strings.TrimPrefix(probes.UserAgent, "kube-probe/")

// maxHookRedirects is how many same-host redirects an httpGet hook follows.
const maxHookRedirects = 10

// hookRunner runs lifecycle handlers.
type hookRunner struct {
	rt     Runtime
	clock  clock.Clock
	client *http.Client
}

func newHookRunner(rt Runtime, clk clock.Clock) *hookRunner {
	transport := &http.Transport{
		Proxy:              nil, // straight to the pod, whatever HTTP_PROXY says
		DialContext:        (&net.Dialer{}).DialContext,
		DisableKeepAlives:  true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // pods serve self-signed certificates; the kubelet does not verify either
		DisableCompression: true,
	}
	client := &http.Client{Transport: transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Hostname() != via[0].URL.Hostname() || len(via) > maxHookRedirects {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return &hookRunner{rt: rt, clock: clk, client: client}
}

// hookCall is one run of a handler.
type hookCall struct {
	kind        string // "PostStart" or "PreStop"
	pod         string // namespace/name, for messages
	container   *v1.Container
	containerID string
	podIP       string
	// timeout bounds an exec hook in the runtime (0: none beyond the runtime request timeout).
	timeout time.Duration
}

// run runs handler and returns nil or an error whose message says which hook failed and why, in
// the kubelet's words (it becomes the event's message and the container's waiting message).
func (h *hookRunner) run(ctx context.Context, call hookCall, handler *v1.LifecycleHandler) error {
	name := call.container.Name
	switch {
	case handler.Exec != nil:
		cmd := handler.Exec.Command
		stdout, stderr, code, err := h.rt.ExecSync(ctx, call.containerID, cmd, call.timeout)
		if err == nil && code == 0 {
			return nil
		}
		out := strings.TrimSpace(string(stdout) + string(stderr))
		if err == nil {
			err = fmt.Errorf("command '%s' exited with %d: %s", strings.Join(cmd, " "), code, out)
		}
		return fmt.Errorf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q", cmd, name, call.pod, err, out)
	case handler.HTTPGet != nil:
		if err := h.httpGet(ctx, call, handler.HTTPGet); err != nil {
			return fmt.Errorf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v", handler.HTTPGet.Path, name, call.pod, err)
		}
		return nil
	case handler.Sleep != nil:
		select {
		case <-h.clock.After(time.Duration(handler.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return fmt.Errorf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: container terminated before sleep hook finished", handler.Sleep.Seconds, name, call.pod)
		}
	case handler.TCPSocket != nil:
		return fmt.Errorf("%s hook for Container %q in Pod %q: tcpSocket is not supported as a lifecycle handler", call.kind, name, call.pod)
	}
	return fmt.Errorf("%s hook for Container %q in Pod %q has no handler", call.kind, name, call.pod)
}

// httpGet sends the hook's request; any response is a success.
func (h *hookRunner) httpGet(ctx context.Context, call hookCall, g *v1.HTTPGetAction) error {
	host := g.Host
	if host == "" {
		host = call.podIP
	}
	if host == "" {
		return errors.New("the pod has no IP yet")
	}
	port, err := hookPort(g.Port, call.container)
	if err != nil {
		return err
	}
	u, err := url.Parse(g.Path)
	if err != nil || u.Scheme != "" || u.Host != "" {
		u = &url.URL{Path: g.Path}
	}
	u.Scheme = strings.ToLower(string(g.Scheme))
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	if u.Path == "" {
		u.Path = "/"
	} else if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	probes.SetHeaders(req, g.HTTPHeaders, lifecycleUserAgent)
	err = h.do(req)
	if err != nil && u.Scheme == "https" && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// As the kubelet: an HTTPS hook answered in plain HTTP is retried over HTTP, without the
		// Authorization header.
		retry := req.Clone(ctx)
		retry.URL.Scheme = "http"
		retry.Header.Del("Authorization")
		if h.do(retry) == nil {
			return nil
		}
	}
	return err
}

func (h *hookRunner) do(req *http.Request) error {
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.Body.Close()
}

// hookPort resolves an httpGet port: a number, a numeric string, or the name of a container port;
// an empty one is 80.
func hookPort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if p.StrVal == "" {
		return 80, nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %q has no port named %q", c.Name, p.StrVal)
}
