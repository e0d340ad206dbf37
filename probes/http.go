package probes

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// maxRedirects is how many redirects an httpGet probe follows (to the same host) before it stops
// and judges the last redirect response, as a success with a warning.
const maxRedirects = 10

// httpProber runs httpGet probes. Its one transport is shared by every probe of a Manager and
// never keeps a connection open: each attempt dials, sends one request with "Connection: close",
// and the connection is closed when the body has been read. A hundred pods probed every ten
// seconds therefore hold no file descriptor between attempts.
type httpProber struct {
	client *http.Client
}

func newHTTPProber() *httpProber {
	transport := &http.Transport{
		Proxy:             nil, // a probe goes straight to the pod, whatever HTTP_PROXY says
		DialContext:       (&net.Dialer{}).DialContext,
		DisableKeepAlives: true,
		// The kubelet does not verify the certificates of HTTPS probes: pods serve self-signed ones.
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet
		DisableCompression: true,
	}
	return &httpProber{client: &http.Client{Transport: transport, CheckRedirect: checkRedirect}}
}

// checkRedirect follows redirects to the same host name (any port or scheme) up to maxRedirects;
// a redirect elsewhere, or one too many, stops there and the redirect response is the result.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() || len(via) > maxRedirects {
		return http.ErrUseLastResponse
	}
	return nil
}

// probeURL builds the URL of an httpGet probe. Path may carry a query string.
func probeURL(scheme, host string, port int, path string) *url.URL {
	u, err := url.Parse(path)
	if err != nil || u.Scheme != "" || u.Host != "" {
		u = &url.URL{Path: path}
	}
	u.Scheme = strings.ToLower(scheme)
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	if u.Path == "" {
		u.Path = "/"
	}
	return u
}

// probe sends the GET and judges the response: 200–299 passes, 300–399 (a redirect not followed)
// passes with a warning, anything else fails with the status and the start of the body; a
// connection error or a timeout fails with the error.
func (hp *httpProber) probe(ctx context.Context, g *v1.HTTPGetAction, t target, timeout time.Duration) attempt {
	port, err := resolvePort(g.Port, t.container)
	if err != nil {
		return errorf("httpGet probe: %v", err)
	}
	host, err := hostOf(g.Host, t)
	if err != nil {
		return errorf("httpGet probe: %v", err)
	}
	u := probeURL(string(g.Scheme), host, port, g.Path)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return errorf("httpGet probe: %v", err)
	}
	SetHeaders(req, g.HTTPHeaders, UserAgent)
	resp, err := hp.client.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return fail("HTTP probe failed with statuscode: %d, reading the body: %v", resp.StatusCode, err)
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return pass(string(body))
	case code >= 300 && code < 400:
		return warn("Probe terminated redirects, Response body: %s", body)
	default:
		if len(body) == 0 {
			return fail("HTTP probe failed with statuscode: %d", code)
		}
		return fail("HTTP probe failed with statuscode: %d, body: %s", code, body)
	}
}

// SetHeaders sets the kubelet's default headers (User-Agent userAgent, Accept: */*) and then the
// given ones: a header replaces a default of the same name, a "Host" header sets the request's host,
// and a default header given with an empty value is not sent at all. Probes and lifecycle hooks'
// httpGet both use it.
func SetHeaders(req *http.Request, headers []v1.HTTPHeader, userAgent string) {
	h := http.Header{}
	for _, hh := range headers {
		name := textproto.CanonicalMIMEHeaderKey(hh.Name)
		if name == "Host" {
			req.Host = hh.Value
			continue
		}
		h[name] = append(h[name], hh.Value)
	}
	if _, ok := h["User-Agent"]; !ok {
		h.Set("User-Agent", userAgent)
	} else if onlyEmpty(h["User-Agent"]) {
		h["User-Agent"] = []string{""} // net/http sends no User-Agent for an empty one
	}
	if _, ok := h["Accept"]; !ok {
		h.Set("Accept", "*/*")
	} else if onlyEmpty(h["Accept"]) {
		delete(h, "Accept")
	}
	req.Header = h
}

func onlyEmpty(vs []string) bool {
	for _, v := range vs {
		if v != "" {
			return false
		}
	}
	return true
}

// close releases the transport's resources (it keeps no idle connection, so there is little).
func (hp *httpProber) close() {
	hp.client.CloseIdleConnections()
}
