package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
)

// envSourceTTL is how long a fetched ConfigMap or Secret is reused for other containers' environments.
const envSourceTTL = 10 * time.Second

// envSources fetches the ConfigMaps and Secrets that API pods' environments refer to
// (configMapKeyRef, secretKeyRef, envFrom). It makes direct GETs under the node's identity — the
// Node authorizer allows a node to get the ConfigMaps and Secrets of the pods bound to it, never to
// list or watch them all — and keeps what it found for envSourceTTL. A missing object is not kept,
// so creating it takes effect at the next retry.
type envSources struct {
	client kubeclient.Interface
	clock  clock.PassiveClock

	mu      sync.Mutex
	entries map[string]envSourceEntry // "configmap/<ns>/<name>" or "secret/<ns>/<name>"
}

type envSourceEntry struct {
	configMap map[string]string
	secret    map[string][]byte
	fetched   time.Time
}

func newEnvSources(client kubeclient.Interface, clk clock.PassiveClock) *envSources {
	return &envSources{client: client, clock: clk, entries: map[string]envSourceEntry{}}
}

// envRefs lists the ConfigMaps and Secrets a container's environment refers to.
func envRefs(c *v1.Container) (configMaps, secrets []string) {
	for _, e := range c.Env {
		if f := e.ValueFrom; f != nil {
			if f.ConfigMapKeyRef != nil {
				configMaps = append(configMaps, f.ConfigMapKeyRef.Name)
			}
			if f.SecretKeyRef != nil {
				secrets = append(secrets, f.SecretKeyRef.Name)
			}
		}
	}
	for _, f := range c.EnvFrom {
		if f.ConfigMapRef != nil {
			configMaps = append(configMaps, f.ConfigMapRef.Name)
		}
		if f.SecretRef != nil {
			secrets = append(secrets, f.SecretRef.Name)
		}
	}
	return configMaps, secrets
}

// forContainer fetches what c's environment refers to, for cri.ContainerOptions: objects that do
// not exist are left out (the translation decides whether that is an error). An error is returned
// only when the API server cannot say (or refuses).
func (e *envSources) forContainer(ctx context.Context, pod *v1.Pod, c *v1.Container) (map[string]map[string]string, map[string]map[string][]byte, error) {
	cmNames, secretNames := envRefs(c)
	if len(cmNames) == 0 && len(secretNames) == 0 {
		return nil, nil, nil
	}
	if e == nil {
		return nil, nil, errors.New("ConfigMap and Secret references need an API server (cluster mode)")
	}
	cms := map[string]map[string]string{}
	for _, name := range cmNames {
		if _, done := cms[name]; done {
			continue
		}
		ent, found, err := e.get(ctx, "configmap", pod.Namespace, name)
		if err != nil {
			return nil, nil, err
		}
		if found {
			cms[name] = ent.configMap
		}
	}
	secrets := map[string]map[string][]byte{}
	for _, name := range secretNames {
		if _, done := secrets[name]; done {
			continue
		}
		ent, found, err := e.get(ctx, "secret", pod.Namespace, name)
		if err != nil {
			return nil, nil, err
		}
		if found {
			secrets[name] = ent.secret
		}
	}
	return cms, secrets, nil
}

func (e *envSources) get(ctx context.Context, kind, namespace, name string) (envSourceEntry, bool, error) {
	key := kind + "/" + namespace + "/" + name
	now := e.clock.Now()
	e.mu.Lock()
	ent, ok := e.entries[key]
	e.mu.Unlock()
	if ok && now.Sub(ent.fetched) < envSourceTTL {
		return ent, true, nil
	}
	ent = envSourceEntry{fetched: now}
	var err error
	switch kind {
	case "configmap":
		var cm *v1.ConfigMap
		if cm, err = e.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			ent.configMap = cm.Data
			if ent.configMap == nil {
				ent.configMap = map[string]string{}
			}
		}
	case "secret":
		var s *v1.Secret
		if s, err = e.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
			ent.secret = s.Data
			if ent.secret == nil {
				ent.secret = map[string][]byte{}
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case apierrors.IsNotFound(err):
		delete(e.entries, key)
		return envSourceEntry{}, false, nil
	case err != nil:
		return envSourceEntry{}, false, fmt.Errorf("get %s %s/%s: %w", kind, namespace, name, err)
	}
	e.entries[key] = ent
	e.prune(now)
	return ent, true, nil
}

// prune drops expired entries (e.mu held), so Secret data is not kept longer than needed.
func (e *envSources) prune(now time.Time) {
	for k, ent := range e.entries {
		if now.Sub(ent.fetched) >= envSourceTTL {
			delete(e.entries, k)
		}
	}
}
