package volumes

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Service-account tokens of projected volumes come from the TokenRequest API, bound to the pod (the
// API server rejects them once the pod is gone). A token is requested again once 80% of its
// lifetime has passed, or once it is 24 hours old, as the kubelet does; in between, every sync
// reuses it.
const (
	defaultTokenExpiration = int64(3600) // the API's default for expirationSeconds
	tokenRefreshFraction   = 0.8
	tokenMaxAge            = 24 * time.Hour
)

type tokenKey struct {
	podUID   types.UID
	volume   string
	source   int
	audience string
	seconds  int64
	sa       string
}

type token struct {
	value     []byte
	issued    time.Time
	expires   time.Time
	refreshAt time.Time
}

// token returns the current token for a serviceAccountToken projection, requesting one when there
// is none or the one held is due for refresh.
func (m *Manager) token(ctx context.Context, pod *v1.Pod, volume string, source int, p *v1.ServiceAccountTokenProjection) ([]byte, error) {
	if err := m.needObjects("serviceAccountToken"); err != nil {
		return nil, err
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	seconds := defaultTokenExpiration
	if p.ExpirationSeconds != nil {
		seconds = *p.ExpirationSeconds
	}
	key := tokenKey{podUID: pod.UID, volume: volume, source: source, audience: p.Audience, seconds: seconds, sa: sa}
	now := m.now()
	m.mu.Lock()
	t := m.tokens[key]
	m.mu.Unlock()
	if t != nil && now.Before(t.refreshAt) {
		return t.value, nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &seconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if p.Audience != "" {
		req.Spec.Audiences = []string{p.Audience}
	}
	out, err := m.cfg.Objects.CreateToken(ctx, pod.Namespace, sa, req)
	if err != nil {
		if t != nil && now.Before(t.expires) {
			return t.value, nil // keep the valid token; the next sync tries again
		}
		return nil, fmt.Errorf("failed to fetch token: %w", err)
	}
	if out == nil || out.Status.Token == "" {
		return nil, errors.New("failed to fetch token: the API server returned no token")
	}
	nt := &token{value: []byte(out.Status.Token), issued: now, expires: out.Status.ExpirationTimestamp.Time}
	life := nt.expires.Sub(now)
	if life <= 0 {
		life = time.Duration(seconds) * time.Second
		nt.expires = now.Add(life)
	}
	nt.refreshAt = now.Add(time.Duration(float64(life) * tokenRefreshFraction))
	if latest := now.Add(tokenMaxAge); nt.refreshAt.After(latest) {
		nt.refreshAt = latest
	}
	m.mu.Lock()
	m.tokens[key] = nt
	m.mu.Unlock()
	return nt.value, nil
}

func mapsKeys(m map[string]string) iter.Seq[string] { return maps.Keys(m) }

func closeFd(fd int) { _ = unix.Close(fd) }
