package main

import (
	"context"
	"log/slog"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/cri"
	"net"
	"time"

	"github.com/berth-dev/berth/server"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node server's part of the KubeletConfiguration (docs/node-server.md): address, port,
// healthzBindAddress, healthzPort, enableProfilingHandler, tlsCertFile, tlsPrivateKeyFile, authentication and
// authorization, with the config file's (secure) defaults: no anonymous access, bearer tokens
// checked by TokenReview, everything authorized by SubjectAccessReview.

// KubeletAuthentication is the kubelet's authentication section.
type KubeletAuthentication struct {
	X509      KubeletX509Authentication      `json:"x509"`
	Webhook   KubeletWebhookAuthentication   `json:"webhook"`
	Anonymous KubeletAnonymousAuthentication `json:"anonymous"`
}

// KubeletX509Authentication: client certificates signed by ClientCAFile authenticate as their CN
// (user) and O (groups).
type KubeletX509Authentication struct {
	ClientCAFile string `json:"clientCAFile,omitempty"`
}

// KubeletWebhookAuthentication: bearer tokens are checked with a TokenReview, answers cached for
// CacheTTL.
type KubeletWebhookAuthentication struct {
	Enabled  *bool           `json:"enabled,omitempty"`
	CacheTTL metav1.Duration `json:"cacheTTL,omitempty"`
}

// KubeletAnonymousAuthentication lets requests without credentials in as system:anonymous.
type KubeletAnonymousAuthentication struct {
	Enabled *bool `json:"enabled,omitempty"`
}

// KubeletAuthorization is the kubelet's authorization section: mode Webhook or AlwaysAllow.
type KubeletAuthorization struct {
	Mode    string                      `json:"mode,omitempty"`
	Webhook KubeletWebhookAuthorization `json:"webhook"`
}

// KubeletWebhookAuthorization caches SubjectAccessReview answers.
type KubeletWebhookAuthorization struct {
	CacheAuthorizedTTL   metav1.Duration `json:"cacheAuthorizedTTL,omitempty"`
	CacheUnauthorizedTTL metav1.Duration `json:"cacheUnauthorizedTTL,omitempty"`
}

func defaultServerConfiguration(c *Configuration) {
	yes, no := true, false
	healthz := int32(10248)
	c.Address = "0.0.0.0"
	c.Port = 10250
	c.HealthzBindAddress = "127.0.0.1"
	c.HealthzPort = &healthz
	c.EnableProfilingHandler = &yes
	c.Authentication = &KubeletAuthentication{
		Webhook:   KubeletWebhookAuthentication{Enabled: &yes, CacheTTL: metav1.Duration{Duration: 2 * time.Minute}},
		Anonymous: KubeletAnonymousAuthentication{Enabled: &no},
	}
	c.Authorization = &KubeletAuthorization{Mode: server.AuthorizationWebhook, Webhook: KubeletWebhookAuthorization{
		CacheAuthorizedTTL:   metav1.Duration{Duration: 5 * time.Minute},
		CacheUnauthorizedTTL: metav1.Duration{Duration: 30 * time.Second},
	}}
}

// overlayServerConfiguration sets on into what the file c sets, field by field (a nested section
// that names one field keeps the defaults of the others).
func overlayServerConfiguration(c, into *Configuration) {
	if c.Address != "" {
		into.Address = c.Address
	}
	if c.Port != 0 {
		into.Port = c.Port
	}
	if c.HealthzBindAddress != "" {
		into.HealthzBindAddress = c.HealthzBindAddress
	}
	if c.HealthzPort != nil {
		into.HealthzPort = c.HealthzPort
	}
	into.ReadOnlyPort = c.ReadOnlyPort
	if c.EnableProfilingHandler != nil {
		into.EnableProfilingHandler = c.EnableProfilingHandler
	}
	if c.TLSCertFile != "" {
		into.TLSCertFile = c.TLSCertFile
	}
	if c.TLSPrivateKeyFile != "" {
		into.TLSPrivateKeyFile = c.TLSPrivateKeyFile
	}
	if a := c.Authentication; a != nil {
		if a.X509.ClientCAFile != "" {
			into.Authentication.X509.ClientCAFile = a.X509.ClientCAFile
		}
		if a.Webhook.Enabled != nil {
			into.Authentication.Webhook.Enabled = a.Webhook.Enabled
		}
		if a.Webhook.CacheTTL.Duration != 0 {
			into.Authentication.Webhook.CacheTTL = a.Webhook.CacheTTL
		}
		if a.Anonymous.Enabled != nil {
			into.Authentication.Anonymous.Enabled = a.Anonymous.Enabled
		}
	}
	if a := c.Authorization; a != nil {
		if a.Mode != "" {
			into.Authorization.Mode = a.Mode
		}
		if a.Webhook.CacheAuthorizedTTL.Duration != 0 {
			into.Authorization.Webhook.CacheAuthorizedTTL = a.Webhook.CacheAuthorizedTTL
		}
		if a.Webhook.CacheUnauthorizedTTL.Duration != 0 {
			into.Authorization.Webhook.CacheUnauthorizedTTL = a.Webhook.CacheUnauthorizedTTL
		}
	}
}

func (c *Configuration) validateServer(bad func(field, format string, a ...any)) {
	if c.Port < 1 || c.Port > 65535 {
		bad("port", "must be between 1 and 65535, got %d", c.Port)
	}
	if c.HealthzPort != nil && (*c.HealthzPort < 0 || *c.HealthzPort > 65535) {
		bad("healthzPort", "must be between 0 (off) and 65535, got %d", *c.HealthzPort)
	}
	if net.ParseIP(c.Address) == nil {
		bad("address", "%q is not an IP address", c.Address)
	}
	if net.ParseIP(c.HealthzBindAddress) == nil {
		bad("healthzBindAddress", "%q is not an IP address", c.HealthzBindAddress)
	}
	if c.ReadOnlyPort != 0 {
		bad("readOnlyPort", "Berth has no unauthenticated read-only port: leave it 0 (the default)")
	}
	if (c.TLSCertFile == "") != (c.TLSPrivateKeyFile == "") {
		bad("tlsCertFile", "tlsCertFile and tlsPrivateKeyFile go together")
	}
	if m := c.Authorization.Mode; m != server.AuthorizationWebhook && m != server.AuthorizationAlwaysAllow {
		bad("authorization.mode", "%q: want Webhook or AlwaysAllow", m)
	}
}

// serverConfig is the node server's configuration from c.
func serverConfig(c *Configuration) server.Config {
	healthz := 0
	if c.HealthzPort != nil {
		healthz = int(*c.HealthzPort)
	}
	return server.Config{
		Address:               c.Address,
		Port:                  int(c.Port),
		HealthzAddress:        c.HealthzBindAddress,
		HealthzPort:           healthz,
		TLSCertFile:           c.TLSCertFile,
		TLSPrivateKeyFile:     c.TLSPrivateKeyFile,
		ClientCAFile:          c.Authentication.X509.ClientCAFile,
		WebhookAuthentication: *c.Authentication.Webhook.Enabled,
		WebhookCacheTTL:       c.Authentication.Webhook.CacheTTL.Duration,
		Anonymous:             *c.Authentication.Anonymous.Enabled,
		AuthorizationMode:     c.Authorization.Mode,
		CacheAuthorizedTTL:    c.Authorization.Webhook.CacheAuthorizedTTL.Duration,
		CacheUnauthorizedTTL:  c.Authorization.Webhook.CacheUnauthorizedTTL.Duration,
		EnableProfiling:       *c.EnableProfilingHandler,
	}
}

// startNodeServer serves the node server (cluster mode only) until ctx ends; a port that cannot
// be bound is a startup error, as with the kubelet.
func startNodeServer(ctx context.Context, c *Configuration, nodeName, rootDir string, cluster *agent.ClusterConfig, a *agent.Agent, rt *cri.Client, log *slog.Logger) error {
	cfg := serverConfig(c)
	cfg.NodeName = nodeName
	cfg.Client = cluster.Client
	cfg.Pods = a
	cfg.Runtime = rt
	cfg.RootDir, cfg.PodLogsDir = rootDir, c.PodLogsDir
	cfg.Health = a.Healthy
	cfg.Logger = log.With("component", "node-server")
	s, err := server.New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
