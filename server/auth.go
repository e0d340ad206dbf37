package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// user is who a request authenticated as.
type user struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

const (
	anonymousUser  = "system:anonymous"
	unauthenticatd = "system:unauthenticated"
)

// authenticator tries, in order, a verified client certificate, a bearer token (TokenReview) and
// anonymous access.
type authenticator struct {
	cfg   Config
	cache *ttlCache[*user] // token -> user (nil: rejected)
}

func newAuthenticator(cfg Config) *authenticator {
	return &authenticator{cfg: cfg, cache: newTTLCache[*user]()}
}

// authenticate returns the user, or nil when the request has no acceptable credentials.
func (a *authenticator) authenticate(r *http.Request) (*user, error) {
	if r.TLS != nil && a.cfg.ClientCAFile != "" && len(r.TLS.VerifiedChains) > 0 {
		c := r.TLS.VerifiedChains[0][0]
		if c.Subject.CommonName != "" {
			groups := append([]string{}, c.Subject.Organization...)
			return &user{Name: c.Subject.CommonName, Groups: append(groups, "system:authenticated")}, nil
		}
	}
	if h := r.Header.Get("Authorization"); a.cfg.WebhookAuthentication && h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			return nil, nil
		}
		if u, ok := a.cache.get(token); ok {
			return u, nil
		}
		tr, err := a.cfg.Client.AuthenticationV1().TokenReviews().Create(r.Context(),
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("TokenReview: %w", err)
		}
		var u *user
		if tr.Status.Authenticated {
			ui := tr.Status.User
			u = &user{Name: ui.Username, UID: ui.UID, Groups: ui.Groups, Extra: map[string][]string{}}
			for k, v := range ui.Extra {
				u.Extra[k] = v
			}
		}
		a.cache.set(token, u, a.cfg.WebhookCacheTTL)
		return u, nil
	}
	if a.cfg.Anonymous {
		return &user{Name: anonymousUser, Groups: []string{unauthenticatd}}, nil
	}
	return nil, nil
}

// attributes is what a request asks to do, in the kubelet's terms: a verb on a subresource of
// the node.
type attributes struct {
	Verb        string
	Subresource string
}

// requestAttributes maps a request as the kubelet does (see "Kubelet authorization" in the
// Kubernetes docs): /stats/* → nodes/stats, /metrics/* → nodes/metrics, /logs/* → nodes/log,
// /spec/* → nodes/spec, anything else → nodes/proxy; the verb from the HTTP method.
func requestAttributes(r *http.Request) attributes {
	verb := strings.ToLower(r.Method)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		verb = "get"
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	sub := "proxy"
	for _, m := range []struct{ prefix, sub string }{
		{"/stats", "stats"}, {"/metrics", "metrics"}, {"/logs", "log"}, {"/spec", "spec"},
	} {
		if r.URL.Path == m.prefix || strings.HasPrefix(r.URL.Path, m.prefix+"/") {
			sub = m.sub
			break
		}
	}
	return attributes{Verb: verb, Subresource: sub}
}

// fineGrained is the narrower subresource a read-only path may be authorized with instead of
// nodes/proxy: GET /pods → nodes/pods, GET /healthz → nodes/healthz.
func fineGrained(r *http.Request, a attributes) *attributes {
	if a.Verb != "get" {
		return nil
	}
	switch r.URL.Path {
	case "/pods", "/pods/":
		return &attributes{Verb: "get", Subresource: "pods"}
	case "/healthz":
		return &attributes{Verb: "get", Subresource: "healthz"}
	}
	return nil
}

type authorizer interface {
	authorize(ctx context.Context, u *user, a attributes) (allowed bool, reason string, err error)
}

type alwaysAllow struct{}

func (alwaysAllow) authorize(context.Context, *user, attributes) (bool, string, error) {
	return true, "", nil
}

// webhookAuthorizer asks the API server with a SubjectAccessReview, caching the answers.
type webhookAuthorizer struct {
	cfg   Config
	cache *ttlCache[sarResult]
}

type sarResult struct {
	allowed bool
	reason  string
}

func newWebhookAuthorizer(cfg Config) *webhookAuthorizer {
	return &webhookAuthorizer{cfg: cfg, cache: newTTLCache[sarResult]()}
}

func (w *webhookAuthorizer) authorize(ctx context.Context, u *user, a attributes) (bool, string, error) {
	groups := append([]string{}, u.Groups...)
	sort.Strings(groups)
	key := strings.Join([]string{u.Name, u.UID, strings.Join(groups, ","), fmt.Sprint(u.Extra), a.Verb, a.Subresource}, "\x00")
	if r, ok := w.cache.get(key); ok {
		return r.allowed, r.reason, nil
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Name, UID: u.UID, Groups: u.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Verb: a.Verb, Group: "", Version: "v1", Resource: "nodes", Subresource: a.Subresource, Name: w.cfg.NodeName,
		},
	}}
	if len(u.Extra) > 0 {
		sar.Spec.Extra = map[string]authzv1.ExtraValue{}
		for k, v := range u.Extra {
			sar.Spec.Extra[k] = v
		}
	}
	out, err := w.cfg.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("SubjectAccessReview: %w", err)
	}
	r := sarResult{allowed: out.Status.Allowed && !out.Status.Denied, reason: out.Status.Reason}
	ttl := w.cfg.CacheAuthorizedTTL
	if !r.allowed {
		ttl = w.cfg.CacheUnauthorizedTTL
	}
	w.cache.set(key, r, ttl)
	return r.allowed, r.reason, nil
}

// withAuth authenticates (401 when it cannot) and authorizes (403 when denied) every request.
func (s *Server) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authn.authenticate(r)
		if err != nil {
			s.log.Warn("node server: authentication failed", "err", err, "path", r.URL.Path)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if u == nil {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		a := requestAttributes(r)
		if fine := fineGrained(r, a); fine != nil {
			// The kubelet's fine-grained authorization: nodes/pods (or nodes/healthz) is enough
			// for those paths; without it, nodes/proxy is checked as for any other path.
			if ok, _, err := s.authz.authorize(r.Context(), u, *fine); err == nil && ok {
				next.ServeHTTP(w, r)
				return
			}
		}
		ok, reason, err := s.authz.authorize(r.Context(), u, a)
		if err != nil {
			s.log.Warn("node server: authorization failed", "err", err, "user", u.Name, "path", r.URL.Path)
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s)", u.Name, a.Verb, a.Subresource), http.StatusInternalServerError)
			return
		}
		if !ok {
			msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", u.Name, a.Verb, a.Subresource)
			if reason != "" {
				msg += ": " + reason
			}
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ttlCache is a small map with expiry, enough for the few identities that call a node.
type ttlCache[V any] struct {
	mu sync.Mutex
	m  map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[V any]() *ttlCache[V] { return &ttlCache[V]{m: map[string]ttlEntry[V]{}} }

func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || time.Now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) set(k string, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.m) > 1024 {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(ttl)}
}

// selfSigned makes a serving certificate for the node name, localhost and the loopback addresses.
func selfSigned(nodeName string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeName + "@" + fmt.Sprint(time.Now().Unix())},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{nodeName, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
