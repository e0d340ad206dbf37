//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authnv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
)

// freePort is a TCP port nothing listens on (for the moment).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serverDefaults gives every cluster test's Berth a free node server port and no healthz port, so
// that a kubelet or another Berth on the machine (benchmarks) holding 10250/10248 does not stop it.
func (c *cluster) serverDefaults() {
	c.t.Helper()
	c.appendConfig(fmt.Sprintf("port: %d\nhealthzPort: 0\n", freePort(c.t)))
}

// appendConfig replaces the node server part of the config file with lines.
func (c *cluster) appendConfig(lines string) {
	c.t.Helper()
	b := mustRead(c.t, c.config)
	base, _, _ := strings.Cut(string(b), "# node server\n")
	if err := os.WriteFile(c.config, []byte(base+"# node server\n"+lines), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// serveNode configures the node server as a cluster's kubelet is: the control plane's serving
// certificate for the node, client certificates of its CA, TokenReview and SubjectAccessReview.
// It returns the HTTPS and healthz ports.
func (c *cluster) serveNode() (port, healthz int) {
	c.t.Helper()
	port, healthz = freePort(c.t), freePort(c.t)
	c.appendConfig(fmt.Sprintf(`port: %d
healthzPort: %d
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  x509:
    clientCAFile: %s
  webhook:
    enabled: true
  anonymous:
    enabled: false
authorization:
  mode: Webhook
`, port, healthz, filepath.Join(c.dir, "node-serving.crt"), filepath.Join(c.dir, "node-serving.key"), filepath.Join(c.dir, "ca.crt")))
	return port, healthz
}

func (c *cluster) adminConfig() *rest.Config {
	c.t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.dir, "admin.kubeconfig"))
	if err != nil {
		c.t.Fatal(err)
	}
	return rc
}

// TestNodeServer: logs, exec and port-forward through the API server, and the node server's own
// authentication, authorization and metrics.
func TestNodeServer(t *testing.T) {
	c := newCluster(t)
	port, healthz := c.serveNode()
	c.writeManifest("static.yaml", shPod("static-echo", "Always", "echo static-hello; exec sleep 3600"))
	c.start("--node-ip", "127.0.0.1")
	n := c.waitNodeReady(10 * time.Second)
	if got := n.Status.DaemonEndpoints.KubeletEndpoint.Port; got != int32(port) {
		t.Errorf("daemonEndpoints.kubeletEndpoint.port = %d, want %d", got, port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	web := webAPIPod("web")
	c.create(web)
	c.create(apiPod("ticker", "Always", "sh", "-c", `i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.3; done`))
	c.create(apiPod("crasher", "Always", "sh", "-c", `echo run-$(cat /proc/sys/kernel/random/uuid); echo oops >&2; sleep 5; exit 1`))
	c.waitPod("web", "Ready", 30*time.Second, podReady)
	c.waitPod("ticker", "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	t.Run("logs", func(t *testing.T) {
		pods := c.admin.CoreV1().Pods("default")
		time.Sleep(time.Second)
		b, err := pods.GetLogs("ticker", &v1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || !strings.HasPrefix(string(b), "tick-0\ntick-1\n") {
			t.Fatalf("logs: %v %q", err, b)
		}
		tail2 := int64(2)
		b, err = pods.GetLogs("ticker", &v1.PodLogOptions{TailLines: &tail2, Timestamps: true}).DoRaw(ctx)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if err != nil || len(lines) != 2 {
			t.Fatalf("tailLines=2: %v %q", err, b)
		}
		for _, l := range lines {
			ts, text, _ := strings.Cut(l, " ")
			if _, perr := time.Parse(time.RFC3339Nano, ts); perr != nil || !strings.HasPrefix(text, "tick-") {
				t.Errorf("timestamped line %q", l)
			}
		}

		// follow: lines written after the request arrive on the stream.
		s, err := pods.GetLogs("ticker", &v1.PodLogOptions{Follow: true, TailLines: &tail2}).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(s)
		var got []string
		start := time.Now()
		for len(got) < 6 && sc.Scan() {
			got = append(got, sc.Text())
		}
		s.Close()
		if len(got) < 6 || time.Since(start) < time.Second {
			t.Errorf("follow: %q after %s", got, time.Since(start))
		}

		// A static pod's logs, asked for by its mirror pod's name.
		mirror := "static-echo-" + clusterNode
		c.waitPod(mirror, "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
		b, err = pods.GetLogs(mirror, &v1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || string(b) != "static-hello\n" {
			t.Errorf("static pod logs: %v %q", err, b)
		}

		// previous: the output of the instance before the restart.
		c.waitPod("crasher", "restarted and running", 40*time.Second, func(p *v1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1 && p.Status.ContainerStatuses[0].State.Running != nil
		})
		b, err = pods.GetLogs("crasher", &v1.PodLogOptions{Previous: true}).DoRaw(ctx)
		// stdout and stderr are separate pipes: their order in the log is not guaranteed.
		if err != nil || !strings.Contains(string(b), "run-") || !strings.Contains(string(b), "oops\n") {
			t.Errorf("previous: %v %q", err, b)
		}
		cur, err := pods.GetLogs("crasher", &v1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(cur), "run-") || bytes.Equal(cur, b) {
			t.Errorf("current after a restart: %v %q (previous %q)", err, cur, b)
		}
	})

	rc := c.adminConfig()
	execIn := func(t *testing.T, ws bool, stdin io.Reader, cmd ...string) (string, string, error) {
		req := c.admin.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("web").SubResource("exec").
			VersionedParams(&v1.PodExecOptions{Container: "main", Command: cmd, Stdin: stdin != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		var ex remotecommand.Executor
		var err error
		if ws {
			ex, err = remotecommand.NewWebSocketExecutor(rc, "GET", req.URL().String())
		} else {
			ex, err = remotecommand.NewSPDYExecutor(rc, "POST", req.URL())
		}
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: &errOut})
		return out.String(), errOut.String(), err
	}
	t.Run("exec", func(t *testing.T) {
		if out, errOut, err := execIn(t, false, nil, "echo", "hi"); err != nil || out != "hi\n" {
			t.Errorf("SPDY echo hi: %v %q %q", err, out, errOut)
		}
		if out, errOut, err := execIn(t, false, strings.NewReader("ping\npong\n"), "cat"); err != nil || out != "ping\npong\n" {
			t.Errorf("SPDY cat: %v %q %q", err, out, errOut)
		}
		if out, errOut, err := execIn(t, true, strings.NewReader("over websocket\n"), "cat"); err != nil || out != "over websocket\n" {
			t.Errorf("WebSocket cat: %v %q %q", err, out, errOut)
		}
		if _, _, err := execIn(t, false, nil, "sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit code 3") {
			t.Errorf("exit 3: %v", err)
		}
	})

	t.Run("attach", func(t *testing.T) {
		req := c.admin.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("ticker").SubResource("attach").
			VersionedParams(&v1.PodAttachOptions{Container: "main", Stdout: true, Stderr: true}, scheme.ParameterCodec)
		ex, err := remotecommand.NewSPDYExecutor(rc, "POST", req.URL())
		if err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var out bytes.Buffer
		err = ex.StreamWithContext(actx, remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard})
		if !strings.Contains(out.String(), "tick-") {
			t.Errorf("attach: %v %q", err, out.String())
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		u := c.admin.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("web").SubResource("portforward").URL()
		transport, upgrader, err := spdy.RoundTripperFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u)
		stop, ready := make(chan struct{}), make(chan struct{})
		var out, errOut bytes.Buffer
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:80"}, stop, ready, &out, &errOut)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- fw.ForwardPorts() }()
		defer func() { close(stop); <-done }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("port-forward: %v %s", err, errOut.String())
		case <-time.After(15 * time.Second):
			t.Fatal("port-forward not ready in 15s")
		}
		ports, err := fw.GetPorts()
		if err != nil || len(ports) != 1 {
			t.Fatal(ports, err)
		}
		for range 2 {
			body, err := httpGet("127.0.0.1", int(ports[0].Local), "/")
			if err != nil || strings.TrimSpace(body) != "web" {
				t.Errorf("page through port-forward: %q %v (%s)", body, err, errOut.String())
			}
		}
	})

	// (Not through the API server's nodes/proxy: it refuses loopback node addresses.)
	t.Run("stats-summary", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(mustRead(t, filepath.Join(c.dir, "ca.crt")))
		cert, err := tls.LoadX509KeyPair(filepath.Join(c.dir, "apiserver-kubelet-client.crt"), filepath.Join(c.dir, "apiserver-kubelet-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}, Timeout: 10 * time.Second}
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/stats/summary", port))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/stats/summary: %d %s", resp.StatusCode, b)
		}
		var sum struct {
			Node struct {
				NodeName string `json:"nodeName"`
				Memory   struct {
					WorkingSetBytes uint64 `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"node"`
			Pods []struct {
				PodRef struct {
					Name string `json:"name"`
				} `json:"podRef"`
				Containers []struct {
					Name string `json:"name"`
				} `json:"containers"`
				Memory struct {
					WorkingSetBytes uint64 `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"pods"`
		}
		if err := json.Unmarshal(b, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Node.NodeName != clusterNode || sum.Node.Memory.WorkingSetBytes == 0 {
			t.Errorf("node: %+v", sum.Node)
		}
		found := false
		for _, p := range sum.Pods {
			if p.PodRef.Name == "web" {
				found = len(p.Containers) == 1 && p.Containers[0].Name == "main" && p.Memory.WorkingSetBytes > 0
			}
		}
		if !found {
			t.Errorf("no web pod with its memory in %s", b)
		}
	})

	t.Run("direct", func(t *testing.T) {
		caPEM := mustRead(t, filepath.Join(c.dir, "ca.crt"))
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		base := fmt.Sprintf("https://127.0.0.1:%d", port)
		get := func(cert *tls.Certificate, path string) (int, []byte) {
			t.Helper()
			tc := &tls.Config{RootCAs: pool} // the serving certificate verifies for 127.0.0.1
			if cert != nil {
				tc.Certificates = []tls.Certificate{*cert}
			}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
			resp, err := hc.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		if code, b := get(nil, "/pods"); code != http.StatusUnauthorized {
			t.Errorf("anonymous /pods: %d %s", code, b)
		}
		nobody := signClientCert(t, c.dir, "nobody")
		if code, b := get(&nobody, "/pods"); code != http.StatusForbidden {
			t.Errorf("nobody /pods: %d %s", code, b)
		}
		if code, b := get(&nobody, "/metrics"); code != http.StatusForbidden || !strings.Contains(string(b), "subresource=metrics") {
			t.Errorf("nobody /metrics: %d %s", code, b)
		}
		apiserver, err := tls.LoadX509KeyPair(filepath.Join(c.dir, "apiserver-kubelet-client.crt"), filepath.Join(c.dir, "apiserver-kubelet-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		code, b := get(&apiserver, "/pods")
		var list v1.PodList
		if code != http.StatusOK || json.Unmarshal(b, &list) != nil {
			t.Fatalf("kube-apiserver-kubelet-client /pods: %d %.300s", code, b)
		}
		names := map[string]v1.PodPhase{}
		for _, p := range list.Items {
			names[p.Name] = p.Status.Phase
		}
		if names["web"] != v1.PodRunning || names["ticker"] != v1.PodRunning {
			t.Errorf("/pods: %v", names)
		}

		// Bearer tokens, checked with a TokenReview: a service account bound to
		// system:kubelet-api-admin passes, one without rights is forbidden, a bad token is 401.
		withToken := func(token, path string) int {
			t.Helper()
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := withToken("not-a-token", "/pods"); code != http.StatusUnauthorized {
			t.Errorf("bad token /pods: %d", code)
		}
		if code := withToken(c.saToken("berth-plain", false), "/pods"); code != http.StatusForbidden {
			t.Errorf("plain service account /pods: %d", code)
		}
		if code := withToken(c.saToken("berth-node-reader", true), "/pods"); code != http.StatusOK {
			t.Errorf("kubelet-api-admin service account /pods: %d", code)
		}

		code, b = get(&apiserver, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %.300s", code, b)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mf, err := parser.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if f := mf["kubelet_running_pods"]; f == nil || f.Metric[0].GetGauge().GetValue() < 3 {
			t.Errorf("kubelet_running_pods: %v", f)
		}
		running := 0.0
		for _, m := range mf["kubelet_running_containers"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "container_state" && l.GetValue() == "running" {
					running = m.GetGauge().GetValue()
				}
			}
		}
		if running < 2 {
			t.Errorf("kubelet_running_containers{container_state=running} = %v", running)
		}
		if mf["kubelet_node_name"] == nil || mf["go_goroutines"] == nil {
			t.Errorf("metrics: %d families, no kubelet_node_name or go_goroutines", len(mf))
		}

		// /metrics/resource, what metrics-server reads: the web pod's container and pod figures.
		code, b = get(&apiserver, "/metrics/resource")
		if code != http.StatusOK {
			t.Fatalf("/metrics/resource: %d %.300s", code, b)
		}
		parser = expfmt.NewTextParser(model.UTF8Validation)
		mf, err = parser.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		value := func(family, pod string) float64 {
			for _, m := range mf[family].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "pod" && l.GetValue() == pod {
						return m.GetGauge().GetValue() + m.GetCounter().GetValue()
					}
				}
			}
			return -1
		}
		for _, f := range []string{"container_memory_working_set_bytes", "pod_memory_working_set_bytes", "container_cpu_usage_seconds_total", "pod_cpu_usage_seconds_total"} {
			if v := value(f, "web"); v <= 0 {
				t.Errorf("%s{pod=web} = %v", f, v)
			}
		}
		if f := mf["node_memory_working_set_bytes"]; f == nil || f.Metric[0].GetGauge().GetValue() <= 0 {
			t.Errorf("node_memory_working_set_bytes: %v", f)
		}
		if f := mf["scrape_error"]; f == nil || f.Metric[0].GetGauge().GetValue() != 0 {
			t.Errorf("scrape_error: %v", f)
		}

		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz))
		if err != nil {
			t.Fatal(err)
		}
		hb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(hb) != "ok" {
			t.Errorf("healthz: %d %q", resp.StatusCode, hb)
		}
	})
}

// signClientCert makes a client certificate for user cn, signed by the control plane's CA.
func signClientCert(t *testing.T, dir, cn string) tls.Certificate {
	t.Helper()
	caCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caCert.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// saToken is a token of a service account in default, bound to system:kubelet-api-admin when admin.
func (c *cluster) saToken(name string, admin bool) string {
	c.t.Helper()
	ctx := context.Background()
	_, err := c.admin.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		c.t.Fatal(err)
	}
	if admin {
		_, err := c.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "berth-test:" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "default"}},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			c.t.Fatal(err)
		}
	}
	exp := int64(600)
	tr, err := c.admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return tr.Status.Token
}
