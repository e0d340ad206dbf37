package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
)

// volumeObjectTTL is how long a ConfigMap or Secret read for a volume is reused: an update of the
// object reaches the pod's files within the sync period plus this.
const volumeObjectTTL = 10 * time.Second

// volumeObjectIdle is how long an immutable object, never fetched again, is kept after its last use.
const volumeObjectIdle = 10 * time.Minute

// volumeObjects is the APIObjects of package volumes: GETs under the node's identity (the Node
// authorizer lets a node get the ConfigMaps and Secrets of the pods bound to it, and request
// tokens for their service accounts), cached for volumeObjectTTL. An object marked immutable is
// not fetched again while it stays in use. A missing object is not cached, so creating it takes
// effect at the next sync.
type volumeObjects struct {
	client kubeclient.Interface
	clock  clock.PassiveClock

	mu      sync.Mutex
	entries map[string]*volumeObject // "configmap/<ns>/<name>" or "secret/<ns>/<name>"
}

type volumeObject struct {
	configMap *v1.ConfigMap
	secret    *v1.Secret
	fetched   time.Time
	used      time.Time
	immutable bool
}

func newVolumeObjects(client kubeclient.Interface, clk clock.PassiveClock) *volumeObjects {
	return &volumeObjects{client: client, clock: clk, entries: map[string]*volumeObject{}}
}

func (o *volumeObjects) ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error) {
	ent, err := o.get(ctx, "configmap", namespace, name)
	if err != nil || ent == nil {
		return nil, err
	}
	return ent.configMap, nil
}

func (o *volumeObjects) Secret(ctx context.Context, namespace, name string) (*v1.Secret, error) {
	ent, err := o.get(ctx, "secret", namespace, name)
	if err != nil || ent == nil {
		return nil, err
	}
	return ent.secret, nil
}

func (o *volumeObjects) CreateToken(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	return o.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
}

func (o *volumeObjects) get(ctx context.Context, kind, namespace, name string) (*volumeObject, error) {
	key := kind + "/" + namespace + "/" + name
	now := o.clock.Now()
	o.mu.Lock()
	ent := o.entries[key]
	if ent != nil && (ent.immutable || now.Sub(ent.fetched) < volumeObjectTTL) {
		ent.used = now
		o.mu.Unlock()
		return ent, nil
	}
	o.mu.Unlock()

	ent = &volumeObject{fetched: now, used: now}
	var err error
	switch kind {
	case "configmap":
		ent.configMap, err = o.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			ent.immutable = ent.configMap.Immutable != nil && *ent.configMap.Immutable
		}
	case "secret":
		ent.secret, err = o.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			ent.immutable = ent.secret.Immutable != nil && *ent.secret.Immutable
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case apierrors.IsNotFound(err):
		delete(o.entries, key)
		return nil, nil
	case err != nil:
		// Never the object's content: a Secret's data must not reach a log.
		return nil, fmt.Errorf("get %s %s/%s: %w", kind, namespace, name, err)
	}
	o.entries[key] = ent
	for k, e := range o.entries {
		if (!e.immutable && now.Sub(e.fetched) >= volumeObjectTTL) || now.Sub(e.used) >= volumeObjectIdle {
			delete(o.entries, k)
		}
	}
	return ent, nil
}
