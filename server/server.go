// Package server is Berth's node server: the kubelet's HTTPS API on port 10250 that the API server
// calls for logs, exec, attach and port-forward, and that monitoring scrapes for metrics. It knows
// nothing of the agent: it reads pods through a PodLister, talks to the runtime through Runtime and
// asks Health whether the agent is alive.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodLister lists the pods on the node, with the status the agent computed.
type PodLister interface {
	Pods() []*v1.Pod
}

// Runtime is what the server needs of the CRI: finding containers and sandboxes, their log paths
// and states, and the streaming URLs of exec, attach and port-forward.
type Runtime interface {
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error)
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (string, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (string, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (string, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	ImageFsInfo(ctx context.Context) ([]*runtimeapi.FilesystemUsage, error)
}

// Config is the node server's configuration, from the KubeletConfiguration fields of the same names.
type Config struct {
	NodeName string
	// Address and Port are where HTTPS is served (0.0.0.0:10250).
	Address string
	Port    int
	// HealthzAddress and HealthzPort serve /healthz in plain HTTP (127.0.0.1:10248); port 0: off.
	HealthzAddress string
	HealthzPort    int
	// TLSCertFile and TLSPrivateKeyFile are the serving certificate; when empty a self-signed one
	// is made at startup (with a warning: the API server cannot verify it).
	TLSCertFile       string
	TLSPrivateKeyFile string

	// ClientCAFile enables client-certificate authentication (authentication.x509.clientCAFile).
	ClientCAFile string
	// WebhookAuthentication authenticates bearer tokens with TokenReview; cached for
	// WebhookCacheTTL (2m).
	WebhookAuthentication bool
	WebhookCacheTTL       time.Duration
	// Anonymous lets requests without credentials through as system:anonymous (off by default:
	// they get 401).
	Anonymous bool
	// AuthorizationMode is "Webhook" (SubjectAccessReview) or "AlwaysAllow".
	AuthorizationMode    string
	CacheAuthorizedTTL   time.Duration // 5m
	CacheUnauthorizedTTL time.Duration // 30s
	// EnableProfiling serves Go's profiles under /debug/pprof/ (enableProfilingHandler), authorized
	// as nodes/proxy like any path without a narrower subresource.
	EnableProfiling bool

	// Client is the node's API client, for TokenReview and SubjectAccessReview.
	Client kubeclient.Interface

	// RootDir (Berth's --root-dir) and PodLogsDir locate the node's filesystem and the containers'
	// logs for /stats/summary.
	RootDir    string
	PodLogsDir string

	Pods    PodLister
	Runtime Runtime
	Health  func() error
	Logger  *slog.Logger
}

// Authorization modes.
const (
	AuthorizationWebhook     = "Webhook"
	AuthorizationAlwaysAllow = "AlwaysAllow"
)

// Server is the node server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	authn   *authenticator
	authz   authorizer
	handler http.Handler
	metrics *metrics
	tls     *tls.Config
	started time.Time
	nodeCPU cpuSampler
}

// New checks cfg, loads the certificates and builds the handlers; nothing listens until Run.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Pods == nil || cfg.Runtime == nil || cfg.Health == nil {
		return nil, errors.New("node server: pods, runtime and health are required")
	}
	if cfg.WebhookCacheTTL == 0 {
		cfg.WebhookCacheTTL = 2 * time.Minute
	}
	if cfg.CacheAuthorizedTTL == 0 {
		cfg.CacheAuthorizedTTL = 5 * time.Minute
	}
	if cfg.CacheUnauthorizedTTL == 0 {
		cfg.CacheUnauthorizedTTL = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, started: time.Now()}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	switch {
	case cfg.TLSCertFile != "" || cfg.TLSPrivateKeyFile != "":
		if cfg.TLSCertFile == "" || cfg.TLSPrivateKeyFile == "" {
			return nil, errors.New("node server: tlsCertFile and tlsPrivateKeyFile go together")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSPrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("node server: serving certificate %s / %s: %w", cfg.TLSCertFile, cfg.TLSPrivateKeyFile, err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	default:
		cert, err := selfSigned(cfg.NodeName)
		if err != nil {
			return nil, fmt.Errorf("node server: self-signed certificate: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
		s.log.Warn("node server: no tlsCertFile/tlsPrivateKeyFile, serving with a self-signed certificate that clients (the API server) cannot verify")
	}
	if cfg.ClientCAFile != "" {
		data, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("node server: authentication.x509.clientCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("node server: authentication.x509.clientCAFile %s: no PEM certificate in it", cfg.ClientCAFile)
		}
		tlsCfg.ClientCAs = pool
		tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	s.tls = tlsCfg
	if cfg.WebhookAuthentication && cfg.Client == nil {
		return nil, errors.New("node server: authentication.webhook.enabled needs the API server (--kubeconfig)")
	}
	s.authn = newAuthenticator(cfg)
	switch cfg.AuthorizationMode {
	case AuthorizationWebhook:
		if cfg.Client == nil {
			return nil, errors.New("node server: authorization.mode Webhook needs the API server (--kubeconfig)")
		}
		s.authz = newWebhookAuthorizer(cfg)
	case AuthorizationAlwaysAllow:
		s.authz = alwaysAllow{}
	default:
		return nil, fmt.Errorf("node server: authorization.mode %q: want Webhook or AlwaysAllow", cfg.AuthorizationMode)
	}
	s.metrics = newMetrics(cfg.Runtime, cfg.NodeName)
	s.handler = s.withAuth(s.routes())
	return s, nil
}

// Handler is the authenticated and authorized HTTPS handler (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /pods", s.pods)
	mux.HandleFunc("GET /pods/{$}", s.pods)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("GET /metrics/resource", newResourceMetrics(s.cfg.Runtime))
	mux.HandleFunc("GET /stats/summary", s.statsSummary)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.containerLogs)
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /exec/{ns}/{pod}/{container}", s.exec)
		mux.HandleFunc(m+" /exec/{ns}/{pod}/{uid}/{container}", s.exec)
		mux.HandleFunc(m+" /attach/{ns}/{pod}/{container}", s.attach)
		mux.HandleFunc(m+" /attach/{ns}/{pod}/{uid}/{container}", s.attach)
		mux.HandleFunc(m+" /portForward/{ns}/{pod}", s.portForward)
		mux.HandleFunc(m+" /portForward/{ns}/{pod}/{uid}", s.portForward)
	}
	if s.cfg.EnableProfiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Run serves HTTPS on Address:Port, and plain HTTP /healthz on HealthzAddress:HealthzPort, until
// ctx ends. Listening errors (a port in use) are returned at once.
func (s *Server) Run(ctx context.Context) error {
	addr := net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node server: %w (is a kubelet or another Berth running? set port: in the config file)", err)
	}
	srv := &http.Server{Handler: s.handler, TLSConfig: s.tls, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	servers := []*http.Server{srv}
	go func() {
		if err := srv.Serve(tls.NewListener(l, s.tls)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("node server stopped", "err", err)
		}
	}()
	s.log.Info("node server listening", "address", l.Addr().String())
	if s.cfg.HealthzPort > 0 {
		haddr := net.JoinHostPort(s.cfg.HealthzAddress, strconv.Itoa(s.cfg.HealthzPort))
		hl, err := net.Listen("tcp", haddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("node server: healthz: %w (set healthzPort: in the config file, 0 for none)", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", s.healthz)
		hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, hsrv)
		go func() { _ = hsrv.Serve(hl) }()
		s.log.Info("healthz listening", "address", hl.Addr().String())
	}
	go func() {
		<-ctx.Done()
		for _, srv := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
			_ = srv.Close() // hijacked (streaming) connections are not closed by Shutdown
		}
	}()
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Health(); err != nil {
		http.Error(w, "unhealthy: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ok")
}
