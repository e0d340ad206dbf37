package agent

// The node's Lease, kube-node-lease/<node>: the heartbeat the node lifecycle controller watches.
// It is renewed every quarter of its duration (10 s of 40 s) and owned by the Node, so that it goes
// when the Node does.
//
// Why not k8s.io/component-helpers/apimachinery/lease's Controller, which the kubelet uses: it is
// paced by wait.JitterUntil and time.After on the real clock (the injected clock only stamps
// renewTime), so no test can step it; it logs every failed attempt through klog, where Berth logs
// once per state change; and its retries are 5 immediate attempts then a fixed back-off outside our
// control. The loop below keeps its algorithm — update optimistically from the last lease written,
// fall back to Get then Create or Update, the owner reference set on every write — on Berth's clock
// and logger.

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeLeaseRetryInitial is the first wait after a failed renewal; it doubles up to the renew
// interval, so a Lease converges within one interval of the API server coming back.
const nodeLeaseRetryInitial = 200 * time.Millisecond

// runLease renews the Lease now and then every renew interval until ctx ends.
func (n *nodeAgent) runLease(ctx context.Context) {
	health := nodeAPIHealth{log: n.log, what: "node lease renewal"}
	retry := time.Duration(0)
	for {
		delay := n.renewInterval
		if err := n.renewLease(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			retry = min(max(2*retry, nodeLeaseRetryInitial), n.renewInterval)
			health.failed(err, retry)
			delay = retry
		} else {
			health.ok()
			retry = 0
		}
		if !nodeSleep(ctx, n.cfg.Clock, delay, nil) {
			return
		}
	}
}

// renewLease makes one renewal: an Update of the last lease written (no Get: nobody else writes
// it), and when that is not possible (none yet, a conflict, the lease gone) a Get and then Create
// or Update.
func (n *nodeAgent) renewLease(ctx context.Context) error {
	leases := n.client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	if n.lease != nil {
		l, err := leases.Update(ctx, n.desiredLease(n.lease), metav1.UpdateOptions{})
		if err == nil {
			n.lease = l
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("renew lease %s/%s: %w", v1.NamespaceNodeLease, n.cfg.NodeName, err)
		}
		n.lease = nil
	}
	cur, err := leases.Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l, err := leases.Create(ctx, n.desiredLease(nil), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create lease %s/%s: %w", v1.NamespaceNodeLease, n.cfg.NodeName, err)
		}
		n.lease = l
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease %s/%s: %w", v1.NamespaceNodeLease, n.cfg.NodeName, err)
	}
	l, err := leases.Update(ctx, n.desiredLease(cur), metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("renew lease %s/%s: %w", v1.NamespaceNodeLease, n.cfg.NodeName, err)
	}
	n.lease = l
	return nil
}

// desiredLease is base (nil: a new Lease) held by this node, renewed now, with the current Node as
// its only owner. The owner follows the Node's UID, so a Node registered again owns the Lease again.
func (n *nodeAgent) desiredLease(base *coordinationv1.Lease) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n.cfg.NodeName, Namespace: v1.NamespaceNodeLease}}
	if base != nil {
		l = base.DeepCopy()
	}
	holder := n.cfg.NodeName
	seconds := int32(n.leaseDuration / time.Second)
	l.Spec.HolderIdentity = &holder
	l.Spec.LeaseDurationSeconds = &seconds
	l.Spec.RenewTime = &metav1.MicroTime{Time: n.cfg.Clock.Now()}
	if node := n.Node(); node != nil && node.UID != "" {
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
	}
	return l
}
