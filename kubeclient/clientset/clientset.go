// Package clientset turns a client-go clientset into a kubeclient.Interface. It is for tests,
// which keep using client-go's fake clientset (its object tracker, reactors and recorded
// actions): importing this package links the whole clientset, every API group with it, which is
// what package kubeclient exists to keep out of Berth's binary. Production code must not import
// it.
package clientset

import (
	"github.com/berth-dev/berth/kubeclient"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Wrap returns cs as a kubeclient.Interface: every call goes to cs's typed clients, whose method
// sets include kubeclient's.
func Wrap(cs kubernetes.Interface) kubeclient.Interface { return wrapped{cs} }

type wrapped struct{ cs kubernetes.Interface }

func (w wrapped) CoreV1() kubeclient.CoreV1Interface { return coreV1{w.cs.CoreV1()} }
func (w wrapped) CoordinationV1() kubeclient.CoordinationV1Interface {
	return coordinationV1{w.cs}
}
func (w wrapped) AuthenticationV1() kubeclient.AuthenticationV1Interface {
	return authenticationV1{w.cs}
}
func (w wrapped) AuthorizationV1() kubeclient.AuthorizationV1Interface {
	return authorizationV1{w.cs}
}

// IsWatchListSemanticsUnSupported passes on what cs says (the fake clientset: true), which the
// informers' reflectors ask the client they are given.
func (w wrapped) IsWatchListSemanticsUnSupported() bool {
	u, ok := w.cs.(interface{ IsWatchListSemanticsUnSupported() bool })
	return ok && u.IsWatchListSemanticsUnSupported()
}

type coreV1 struct{ c typedcorev1.CoreV1Interface }

func (c coreV1) Pods(namespace string) kubeclient.PodInterface { return c.c.Pods(namespace) }
func (c coreV1) Nodes() kubeclient.NodeInterface               { return c.c.Nodes() }
func (c coreV1) ConfigMaps(namespace string) kubeclient.ConfigMapInterface {
	return c.c.ConfigMaps(namespace)
}
func (c coreV1) Secrets(namespace string) kubeclient.SecretInterface { return c.c.Secrets(namespace) }
func (c coreV1) ServiceAccounts(namespace string) kubeclient.ServiceAccountInterface {
	return c.c.ServiceAccounts(namespace)
}
func (c coreV1) Events(namespace string) kubeclient.EventInterface { return c.c.Events(namespace) }

type coordinationV1 struct{ cs kubernetes.Interface }

func (c coordinationV1) Leases(namespace string) kubeclient.LeaseInterface {
	return c.cs.CoordinationV1().Leases(namespace)
}

type authenticationV1 struct{ cs kubernetes.Interface }

func (c authenticationV1) TokenReviews() kubeclient.TokenReviewInterface {
	return c.cs.AuthenticationV1().TokenReviews()
}

type authorizationV1 struct{ cs kubernetes.Interface }

func (c authorizationV1) SubjectAccessReviews() kubeclient.SubjectAccessReviewInterface {
	return c.cs.AuthorizationV1().SubjectAccessReviews()
}
