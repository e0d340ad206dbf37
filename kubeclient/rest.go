package kubeclient

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// New returns the client for config, as client-go's kubernetes.NewForConfig would: one REST
// client per group version, all sharing one HTTP client (transport and connection pool) and one
// token-bucket rate limiter of config.QPS and config.Burst (none when QPS <= 0), with
// client-go's default user agent when config has none.
func New(config *rest.Config) (Interface, error) {
	c := *config
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, err
	}
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("burst is required to be greater than 0 when RateLimiter is not set and QPS is set to greater than 0")
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	var cl client
	for _, g := range []struct {
		into    *rest.Interface
		gv      schema.GroupVersion
		apiPath string
	}{
		{&cl.core, corev1.SchemeGroupVersion, "/api"},
		{&cl.coordination, coordinationv1.SchemeGroupVersion, "/apis"},
		{&cl.authentication, authenticationv1.SchemeGroupVersion, "/apis"},
		{&cl.authorization, authorizationv1.SchemeGroupVersion, "/apis"},
	} {
		gc := c
		gv := g.gv
		gc.GroupVersion = &gv
		gc.APIPath = g.apiPath
		gc.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(Scheme, Codecs).WithoutConversion()
		rc, err := rest.RESTClientForConfigAndClient(&gc, httpClient)
		if err != nil {
			return nil, err
		}
		*g.into = rc
	}
	return &cl, nil
}

// client holds one REST client per group version.
type client struct {
	core, coordination, authentication, authorization rest.Interface
}

func (c *client) CoreV1() CoreV1Interface                 { return coreV1{c.core} }
func (c *client) CoordinationV1() CoordinationV1Interface { return coordinationV1{c.coordination} }
func (c *client) AuthenticationV1() AuthenticationV1Interface {
	return authenticationV1{c.authentication}
}
func (c *client) AuthorizationV1() AuthorizationV1Interface { return authorizationV1{c.authorization} }

type coreV1 struct{ rest rest.Interface }

func (c coreV1) Pods(namespace string) PodInterface {
	return newResource(c.rest, "pods", namespace, func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} })
}

func (c coreV1) Nodes() NodeInterface {
	return newResource(c.rest, "nodes", "", func() *corev1.Node { return &corev1.Node{} }, func() *corev1.NodeList { return &corev1.NodeList{} })
}

func (c coreV1) ConfigMaps(namespace string) ConfigMapInterface {
	return newResource(c.rest, "configmaps", namespace, func() *corev1.ConfigMap { return &corev1.ConfigMap{} }, func() *corev1.ConfigMapList { return &corev1.ConfigMapList{} })
}

func (c coreV1) Secrets(namespace string) SecretInterface {
	return newResource(c.rest, "secrets", namespace, func() *corev1.Secret { return &corev1.Secret{} }, func() *corev1.SecretList { return &corev1.SecretList{} })
}

func (c coreV1) ServiceAccounts(namespace string) ServiceAccountInterface {
	return serviceAccounts{c.rest, namespace}
}

func (c coreV1) Events(namespace string) EventInterface { return events{c.rest, namespace} }

type coordinationV1 struct{ rest rest.Interface }

func (c coordinationV1) Leases(namespace string) LeaseInterface {
	return newResource(c.rest, "leases", namespace, func() *coordinationv1.Lease { return &coordinationv1.Lease{} }, func() *coordinationv1.LeaseList { return &coordinationv1.LeaseList{} })
}

type authenticationV1 struct{ rest rest.Interface }

func (c authenticationV1) TokenReviews() TokenReviewInterface {
	return newResource(c.rest, "tokenreviews", "", func() *authenticationv1.TokenReview { return &authenticationv1.TokenReview{} }, func() *metav1.List { return &metav1.List{} })
}

type authorizationV1 struct{ rest rest.Interface }

func (c authorizationV1) SubjectAccessReviews() SubjectAccessReviewInterface {
	return newResource(c.rest, "subjectaccessreviews", "", func() *authorizationv1.SubjectAccessReview { return &authorizationv1.SubjectAccessReview{} }, func() *metav1.List { return &metav1.List{} })
}

// object is what a resource holds: a runtime.Object with a name (Update puts to it).
type object interface {
	runtime.Object
	GetName() string
}

// resource is the generated typed client (client-go's gentype.Client) for the resources Berth
// uses, all of which client-gen marks as preferring protobuf. Its requests are built exactly as
// gentype builds them. (gentype itself is not used: it links client-go's fake machinery,
// k8s.io/client-go/testing, with managed fields and structured-merge-diff behind it.)
type resource[T object, L runtime.Object] struct {
	rest      rest.Interface
	name      string // "pods"
	namespace string // "" for cluster-scoped resources
	newObject func() T
	newList   func() L
}

func newResource[T object, L runtime.Object](c rest.Interface, name, namespace string, newObject func() T, newList func() L) *resource[T, L] {
	return &resource[T, L]{rest: c, name: name, namespace: namespace, newObject: newObject, newList: newList}
}

func (r *resource[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	result := r.newObject()
	err := r.rest.Get().
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		Name(name).
		VersionedParams(&opts, ParameterCodec).
		Do(ctx).
		Into(result)
	return result, err
}

func (r *resource[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	list := r.newList()
	err := r.rest.Get().
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		VersionedParams(&opts, ParameterCodec).
		Timeout(timeoutOf(opts)).
		Do(ctx).
		Into(list)
	return list, err
}

func (r *resource[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	timeout := timeoutOf(opts)
	opts.Watch = true
	return r.rest.Get().
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		VersionedParams(&opts, ParameterCodec).
		Timeout(timeout).
		Watch(ctx)
}

func (r *resource[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	result := r.newObject()
	err := r.rest.Post().
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		VersionedParams(&opts, ParameterCodec).
		Body(obj).
		Do(ctx).
		Into(result)
	return result, err
}

func (r *resource[T, L]) Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	result := r.newObject()
	err := r.rest.Put().
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		Name(obj.GetName()).
		VersionedParams(&opts, ParameterCodec).
		Body(obj).
		Do(ctx).
		Into(result)
	return result, err
}

func (r *resource[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.rest.Delete().
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		Name(name).
		Body(&opts).
		Do(ctx).
		Error()
}

func (r *resource[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error) {
	result := r.newObject()
	err := r.rest.Patch(pt).
		UseProtobufAsDefault().
		NamespaceIfScoped(r.namespace, r.namespace != "").
		Resource(r.name).
		Name(name).
		SubResource(subresources...).
		VersionedParams(&opts, ParameterCodec).
		Body(data).
		Do(ctx).
		Into(result)
	return result, err
}

// timeoutOf is the request timeout of a list or watch: its timeoutSeconds.
func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}

// serviceAccounts asks for service account tokens (the serviceaccounts/token subresource).
type serviceAccounts struct {
	rest      rest.Interface
	namespace string
}

func (s serviceAccounts) CreateToken(ctx context.Context, serviceAccountName string, tokenRequest *authenticationv1.TokenRequest, opts metav1.CreateOptions) (*authenticationv1.TokenRequest, error) {
	result := &authenticationv1.TokenRequest{}
	err := s.rest.Post().
		UseProtobufAsDefault().
		Namespace(s.namespace).
		Resource("serviceaccounts").
		Name(serviceAccountName).
		SubResource("token").
		VersionedParams(&opts, ParameterCodec).
		Body(tokenRequest).
		Do(ctx).
		Into(result)
	return result, err
}

// events writes Events into the event's own namespace. As client-go's event expansion, these
// requests use the config's content type (JSON unless set; Berth sets contentType, protobuf by
// default), not the protobuf the generated calls prefer.
type events struct {
	rest      rest.Interface
	namespace string // "": any
}

func (e events) check(verb string, event *corev1.Event) error {
	if e.namespace != "" && event.Namespace != e.namespace {
		return fmt.Errorf("can't %s an event with namespace '%v' in namespace '%v'", verb, event.Namespace, e.namespace)
	}
	return nil
}

func (e events) CreateWithEventNamespaceWithContext(ctx context.Context, event *corev1.Event) (*corev1.Event, error) {
	if err := e.check("create", event); err != nil {
		return nil, err
	}
	result := &corev1.Event{}
	err := e.rest.Post().
		NamespaceIfScoped(event.Namespace, len(event.Namespace) > 0).
		Resource("events").
		Body(event).
		Do(ctx).
		Into(result)
	return result, err
}

func (e events) UpdateWithEventNamespaceWithContext(ctx context.Context, event *corev1.Event) (*corev1.Event, error) {
	if err := e.check("update", event); err != nil {
		return nil, err
	}
	result := &corev1.Event{}
	err := e.rest.Put().
		NamespaceIfScoped(event.Namespace, len(event.Namespace) > 0).
		Resource("events").
		Name(event.Name).
		Body(event).
		Do(ctx).
		Into(result)
	return result, err
}

func (e events) PatchWithEventNamespaceWithContext(ctx context.Context, event *corev1.Event, data []byte) (*corev1.Event, error) {
	if err := e.check("patch", event); err != nil {
		return nil, err
	}
	result := &corev1.Event{}
	err := e.rest.Patch(types.StrategicMergePatchType).
		NamespaceIfScoped(event.Namespace, len(event.Namespace) > 0).
		Resource("events").
		Name(event.Name).
		Body(data).
		Do(ctx).
		Into(result)
	return result, err
}
