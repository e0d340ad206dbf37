package kubeclient_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	"github.com/berth-dev/berth/kubeclient/clientset"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// request is what the API server sees of one call.
type request struct {
	method, path, query, contentType, accept, userAgent, body string
}

func (r request) String() string {
	return fmt.Sprintf("%s %s?%s content-type=%q accept=%q user-agent=%q body=%q", r.method, r.path, r.query, r.contentType, r.accept, r.userAgent, r.body)
}

// apiServer records every request and answers with a JSON object of the kind the path names
// (a list for a collection, an empty watch stream for a watch).
type apiServer struct {
	mu       sync.Mutex
	requests []request
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"),
		r.Header.Get("Accept"), r.Header.Get("User-Agent"), string(body)})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") == "true" {
		return
	}
	kinds := map[string]string{"pods": "Pod", "nodes": "Node", "configmaps": "ConfigMap", "secrets": "Secret",
		"events": "Event", "token": "TokenRequest", "leases": "Lease", "tokenreviews": "TokenReview",
		"subjectaccessreviews": "SubjectAccessReview"}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	apiVersion := "v1"
	if parts[0] == "apis" {
		apiVersion = parts[1] + "/" + parts[2]
	}
	last := parts[len(parts)-1]
	if last == "status" {
		last = parts[len(parts)-3]
	}
	if kind, ok := kinds[last]; ok && r.Method == http.MethodGet {
		fmt.Fprintf(w, `{"kind":%q,"apiVersion":%q,"items":[]}`, kind+"List", apiVersion)
		return
	}
	kind := kinds[parts[len(parts)-2]]
	if k, ok := kinds[last]; ok {
		kind = k
	}
	if r.Method == http.MethodDelete {
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Success"}`)
		return
	}
	fmt.Fprintf(w, `{"kind":%q,"apiVersion":%q,"metadata":{"name":"x"}}`, kind, apiVersion)
}

func (s *apiServer) take() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// calls are every call Berth makes, with options set so that their query parameters show.
var calls = []struct {
	name string
	call func(ctx context.Context, c kubeclient.Interface) error
}{
	{"pods list", func(ctx context.Context, c kubeclient.Interface) error {
		timeout := int64(30)
		_, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1", ResourceVersion: "0", TimeoutSeconds: &timeout})
		return err
	}},
	{"pods watch", func(ctx context.Context, c kubeclient.Interface) error {
		w, err := c.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1", ResourceVersion: "12", AllowWatchBookmarks: true})
		if err == nil {
			w.Stop()
		}
		return err
	}},
	{"pods get", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{ResourceVersion: "0"})
		return err
	}},
	{"pods create", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Pods("ns").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}, metav1.CreateOptions{})
		return err
	}},
	{"pods delete", func(ctx context.Context, c kubeclient.Interface) error {
		uid := types.UID("u1")
		return c.CoreV1().Pods("ns").Delete(ctx, "p", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, GracePeriodSeconds: new(int64)})
	}},
	{"pods patch status", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Pods("ns").Patch(ctx, "p", types.StrategicMergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
		return err
	}},
	{"nodes get", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{ResourceVersion: "0"})
		return err
	}},
	{"nodes create", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
		return err
	}},
	{"nodes patch", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Nodes().Patch(ctx, "n1", types.StrategicMergePatchType, []byte(`{"metadata":{}}`), metav1.PatchOptions{})
		return err
	}},
	{"nodes patch status", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Nodes().Patch(ctx, "n1", types.StrategicMergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
		return err
	}},
	{"configmaps get", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().ConfigMaps("ns").Get(ctx, "cm", metav1.GetOptions{})
		return err
	}},
	{"secrets get", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Secrets("ns").Get(ctx, "s", metav1.GetOptions{})
		return err
	}},
	{"serviceaccounts token", func(ctx context.Context, c kubeclient.Interface) error {
		expiry := int64(3600)
		_, err := c.CoreV1().ServiceAccounts("ns").CreateToken(ctx, "default", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"a"}, ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
		return err
	}},
	{"events create", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Events("").CreateWithEventNamespaceWithContext(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}, Reason: "R"})
		return err
	}},
	{"events update", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Events("").UpdateWithEventNamespaceWithContext(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}, Count: 2})
		return err
	}},
	{"events patch", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Events("").PatchWithEventNamespaceWithContext(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}}, []byte(`{"count":3}`))
		return err
	}},
	{"events in another namespace", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoreV1().Events("other").CreateWithEventNamespaceWithContext(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}})
		return err
	}},
	{"leases get", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
		return err
	}},
	{"leases create", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
		return err
	}},
	{"leases update", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.CoordinationV1().Leases("kube-node-lease").Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "5"}}, metav1.UpdateOptions{})
		return err
	}},
	{"tokenreviews create", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "t"}}, metav1.CreateOptions{})
		return err
	}},
	{"subjectaccessreviews create", func(ctx context.Context, c kubeclient.Interface) error {
		_, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "u"}}, metav1.CreateOptions{})
		return err
	}},
}

// TestRequestsAreTheClientsets checks that every call sends the very request client-go's
// clientset sends for it (path, query, content type, accept, user agent, body) and gets the same
// result, for a config without a content type (protobuf where the clientset prefers it), one
// asking for JSON and one asking for protobuf (Berth's default contentType, as the kubelet's: its
// Events are then protobuf too).
func TestRequestsAreTheClientsets(t *testing.T) {
	srv := &apiServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, contentType := range []string{"", "application/json", "application/vnd.kubernetes.protobuf"} {
		cfg := &rest.Config{Host: ts.URL, QPS: -1, UserAgent: "berth/test", ContentConfig: rest.ContentConfig{ContentType: contentType}}
		ours, err := kubeclient.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		theirs := clientset.Wrap(cs)
		for _, c := range calls {
			ctx := context.Background()
			errOurs := c.call(ctx, ours)
			got := srv.take()
			errTheirs := c.call(ctx, theirs)
			want := srv.take()
			if fmt.Sprint(errOurs) != fmt.Sprint(errTheirs) {
				t.Errorf("content type %q, %s: error %v, the clientset's %v", contentType, c.name, errOurs, errTheirs)
			}
			if len(want) == 0 && c.name != "events in another namespace" {
				t.Errorf("content type %q, %s: the clientset sent no request", contentType, c.name)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("content type %q, %s:\n sent %v\n want %v", contentType, c.name, got, want)
			}
		}
	}
}

// TestDefaultUserAgent: without a user agent, client-go's default one, as the clientset.
func TestDefaultUserAgent(t *testing.T) {
	srv := &apiServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, err := kubeclient.New(&rest.Config{Host: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.take()[0].userAgent, rest.DefaultKubernetesUserAgent(); got != want {
		t.Errorf("user agent %q, want %q", got, want)
	}
}

// TestOneRateLimiterForAllGroups: QPS and burst limit the client as a whole, as the clientset's
// shared limiter does, not each group version on its own.
func TestOneRateLimiterForAllGroups(t *testing.T) {
	srv := &apiServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, err := kubeclient.New(&rest.Config{Host: ts.URL, QPS: 5, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	// One call per group version: with a limiter each, none would wait.
	if _, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 4 calls, burst 1, 5/s: the last three wait 200 ms each.
	if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
		t.Errorf("4 calls at QPS 5, burst 1 took %v: the group versions do not share one limiter", elapsed)
	}
	if _, err := kubeclient.New(&rest.Config{Host: ts.URL, QPS: 5}); err == nil {
		t.Error("QPS without burst: no error")
	}
}
