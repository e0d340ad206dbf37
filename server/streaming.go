package server

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamFlag reads a boolean stream parameter under the kubelet's name (input, output, error, tty)
// or the API's (stdin, stdout, stderr).
func streamFlag(q url.Values, names ...string) bool {
	for _, n := range names {
		if v := q.Get(n); v != "" {
			b, _ := strconv.ParseBool(v)
			if b {
				return true
			}
		}
	}
	return false
}

// exec serves /exec/{ns}/{pod}/{container}?command=...: the runtime prepares the session and the
// client's upgraded connection (SPDY or WebSocket) is proxied to its streaming server.
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	p, err := s.findPod(r)
	if err != nil {
		writeError(w, err)
		return
	}
	id, err := s.runningContainer(r.Context(), p, r.PathValue("container"))
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 {
		writeError(w, errorf(http.StatusBadRequest, "exec: no command"))
		return
	}
	u, err := s.cfg.Runtime.Exec(r.Context(), &runtimeapi.ExecRequest{
		ContainerId: id, Cmd: cmd,
		Tty:    streamFlag(q, "tty"),
		Stdin:  streamFlag(q, "input", "stdin"),
		Stdout: streamFlag(q, "output", "stdout"),
		Stderr: streamFlag(q, "error", "stderr"),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxyStream(w, r, u)
}

// attach serves /attach/{ns}/{pod}/{container}, as exec.
func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	p, err := s.findPod(r)
	if err != nil {
		writeError(w, err)
		return
	}
	id, err := s.runningContainer(r.Context(), p, r.PathValue("container"))
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	u, err := s.cfg.Runtime.Attach(r.Context(), &runtimeapi.AttachRequest{
		ContainerId: id,
		Tty:         streamFlag(q, "tty"),
		Stdin:       streamFlag(q, "input", "stdin"),
		Stdout:      streamFlag(q, "output", "stdout"),
		Stderr:      streamFlag(q, "error", "stderr"),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxyStream(w, r, u)
}

// portForward serves /portForward/{ns}/{pod}: the ports come with the streams (SPDY) or as port=
// parameters (WebSocket), which the runtime's streaming server reads.
func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	p, err := s.findPod(r)
	if err != nil {
		writeError(w, err)
		return
	}
	sb, err := s.readySandbox(r.Context(), p)
	if err != nil {
		writeError(w, err)
		return
	}
	var ports []int32
	for _, v := range r.URL.Query()["port"] {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			writeError(w, errorf(http.StatusBadRequest, "port %q is not a valid port", v))
			return
		}
		ports = append(ports, int32(n))
	}
	u, err := s.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: ports})
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxyStream(w, r, u)
}

// proxyStream proxies the request, upgrade included, to the runtime's streaming URL. The API
// server does not follow redirects for these, so Berth proxies as the kubelet does for remote
// runtimes.
func (s *Server) proxyStream(w http.ResponseWriter, r *http.Request, streamURL string) {
	target, err := url.Parse(streamURL)
	if err != nil || target.Host == "" {
		writeError(w, fmt.Errorf("runtime streaming URL %q: not an absolute URL", streamURL))
		return
	}
	if target.RawQuery == "" {
		target.RawQuery = r.URL.RawQuery
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("node server: streaming proxy", "url", target.Redacted(), "err", err)
			http.Error(w, "streaming: "+err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}
