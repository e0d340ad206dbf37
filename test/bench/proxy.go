package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// apiProxy is a counting reverse proxy in front of kube-apiserver: the agent under test talks to
// it as if it were the API server (TLS with a certificate signed by the test CA), and it forwards
// every request with the node's own client certificate. It records the verb and resource of each
// request, which is how the harness counts an agent's API traffic without touching its code.
type apiProxy struct {
	url string // https://127.0.0.1:<port>
	srv *http.Server

	mu   sync.Mutex
	reqs []apiRequest
	// lastPod is when the last pod-scoped request (pods, pods/status, events) was made.
	lastPod time.Time
	// writes, when set, gets one line per write request with its body (-log-writes).
	writes io.Writer
}

// logWrites sends a line per write request, with its body, to w (nil: stop).
func (p *apiProxy) logWrites(w io.Writer) {
	p.mu.Lock()
	p.writes = w
	p.mu.Unlock()
}

type apiRequest struct {
	at       time.Time
	verb     string // get, list, watch, create, update, patch, delete, deletecollection
	resource string // pods, pods/status, events, nodes/status, leases, ...
	code     int    // HTTP status of the answer (0: none yet, a watch still open)
}

// startAPIProxy serves on 127.0.0.1 and forwards to upstream (the API server's URL) as the node
// whose client certificate and key are nodeCert and nodeKey. The serving certificate is made here
// and signed by the CA in caCert/caKey.
func startAPIProxy(upstream, caCert, caKey, nodeCert, nodeKey string) (*apiProxy, error) {
	up, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caCert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", caCert)
	}
	client, err := tls.LoadX509KeyPair(nodeCert, nodeKey)
	if err != nil {
		return nil, fmt.Errorf("node client certificate: %w", err)
	}
	serving, err := servingCert(caCert, caKey)
	if err != nil {
		return nil, fmt.Errorf("proxy serving certificate: %w", err)
	}
	p := &apiProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
			r.Out.Host = up.Host
		},
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 100,
			IdleConnTimeout:     90 * time.Second,
		},
		FlushInterval: -1, // watches stream
		ErrorLog:      nil,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.url = "https://" + l.Addr().String()
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i := p.record(r)
			p.mu.Lock()
			out := p.writes
			p.mu.Unlock()
			if out != nil && r.Method != http.MethodGet && r.Body != nil {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				p.mu.Lock()
				fmt.Fprintf(out, "%s %s %s %s\n", time.Now().Format("15:04:05.000"), r.Method, r.URL.RequestURI(), body)
				p.mu.Unlock()
			}
			cw := &codeWriter{ResponseWriter: w}
			rp.ServeHTTP(cw, r)
			p.mu.Lock()
			p.reqs[i].code = cw.code
			p.mu.Unlock()
		}),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serving},
			// The agent presents the node's certificate, as to the real API server; the proxy
			// asks for it (same handshake cost) but forwards as the node whatever it gets.
			ClientAuth: tls.RequestClientCert,
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.srv.ServeTLS(l, "", "") }()
	return p, nil
}

func (p *apiProxy) Close() { _ = p.srv.Close() }

func (p *apiProxy) record(r *http.Request) int {
	verb, res := classify(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.reqs = append(p.reqs, apiRequest{at: now, verb: verb, resource: res})
	if podScoped(res) && verb != "watch" {
		p.lastPod = now
	}
	return len(p.reqs) - 1
}

// waitPodQuiet waits until the agent has made no pod-scoped request (pods, their status, events)
// for quiet, or until max has passed. It returns the time of the last such request.
func (p *apiProxy) waitPodQuiet(quiet, max time.Duration) time.Time {
	deadline := time.Now().Add(max)
	for {
		p.mu.Lock()
		last := p.lastPod
		p.mu.Unlock()
		if time.Since(last) >= quiet || time.Now().After(deadline) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// codeWriter remembers the status code of a response; it passes Flush on (watches stream).
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *codeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Since returns the requests made at or after t (and before until, if not zero).
func (p *apiProxy) Between(from, until time.Time) []apiRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []apiRequest
	for _, r := range p.reqs {
		if !r.at.Before(from) && (until.IsZero() || r.at.Before(until)) {
			out = append(out, r)
		}
	}
	return out
}

// classify turns an API request into the verb and resource the API server would log.
func classify(r *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// /api/v1/... or /apis/<group>/<version>/...
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(r.Method), "nonresource:" + r.URL.Path
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:] // namespaced resource
	}
	named := len(parts) >= 2
	resource = "-"
	if len(parts) >= 1 {
		resource = parts[0]
	}
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		if named {
			verb = "delete"
		} else {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(r.Method)
	}
	return verb, resource
}

func isWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// podScoped tells whether a resource is part of a pod's lifecycle (the pod, its status, its
// events), as opposed to the node's own background traffic (lease, node status).
func podScoped(resource string) bool {
	switch resource {
	case "pods", "pods/status", "events":
		return true
	}
	return false
}

// countByVerb counts requests by "verb resource", and those answered with an error by
// "verb resource -> code".
func countByVerb(reqs []apiRequest) map[string]int {
	m := map[string]int{}
	for _, r := range reqs {
		m[r.verb+" "+r.resource]++
		if r.code >= 300 {
			m[fmt.Sprintf("%s %s -> %d", r.verb, r.resource, r.code)]++
		}
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// servingCert makes a certificate for 127.0.0.1 signed by the test CA.
func servingCert(caCertFile, caKeyFile string) (tls.Certificate, error) {
	ca, err := tls.LoadX509KeyPair(caCertFile, caKeyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "berth-bench-api-proxy"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// writeProxyKubeconfig copies the node's kubeconfig to dir/kubeconfig with its server replaced by
// the proxy's URL (same CA, same client certificate).
func writeProxyKubeconfig(nodeKubeconfig, proxyURL, dir string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(nodeKubeconfig)
	if err != nil {
		return "", err
	}
	for _, c := range cfg.Clusters {
		c.Server = proxyURL
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}
