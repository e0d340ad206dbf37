// Package kubeclient is Berth's own narrow client of the API server: the few resources a node
// agent reads and writes, and nothing else.
//
// Why not client-go's clientset (k8s.io/client-go/kubernetes)? It registers every API group the
// API server serves (apps, batch, networking, storage, resource, rbac, ...) in its scheme at init,
// and links discovery, the apply configurations of every type and the OpenAPI machinery behind
// them. Berth uses none of that, yet paid for it on every node: the clientset was most of Berth's
// binary and of the pages its package initialisation touches, i.e. of its resident memory
// (docs/design.md, "Berth's own API client", has the numbers).
//
// What is here:
//
//	Interface                the API surface Berth uses, shaped as the clientset's
//	  CoreV1()               Pods, Nodes, ConfigMaps, Secrets, ServiceAccounts (TokenRequest), Events
//	  CoordinationV1()       Leases (the node lease)
//	  AuthenticationV1()     TokenReviews (node server authentication)
//	  AuthorizationV1()      SubjectAccessReviews (node server authorization)
//	New(*rest.Config)        the production client: one REST client per group version, all sharing
//	                         one HTTP client (one connection pool) and one rate limiter, as the
//	                         clientset's NewForConfig does
//	Scheme, Codecs,          a scheme holding only core/v1, coordination/v1, authentication/v1 and
//	ParameterCodec           authorization/v1 (and meta/v1), for the REST clients and the event
//	                         recorder's object references
//	EventSink                record.EventSink on Events (what typedcorev1.EventSinkImpl was)
//
// Every method has exactly the signature of the clientset's typed client for the same resource
// (k8s.io/client-go/kubernetes/typed/...), so the method sets here are subsets of client-go's. That
// is what lets unit tests keep using client-go's fake clientset: package kubeclient/clientset wraps
// any kubernetes.Interface into an Interface. Only tests may import that package: importing it
// links the whole clientset back into the binary. The requests are the clientset's too: the same
// paths, query parameters, content types (protobuf where the generated client prefers it; the Event
// calls the recorder makes in the config's content type, which Berth sets to protobuf, the kubelet's
// contentType default), user agent, rate limiting and watch-list semantics.
//
// To use a new API call: add the method, with client-go's signature, to the resource's interface
// here and to the REST implementation (rest.go); the fake clientset already has it. A new resource
// also needs its group in Scheme when the group is new, and a line in package clientset.
//
// This package must not import agent: cmd, agent and server import it.
package kubeclient
