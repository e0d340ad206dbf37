package agent

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

func TestNodeLeaseCreatedAndRenewed(t *testing.T) {
	h := newNodeHarness(t, nil)
	h.register()
	h.run()

	l := nodeTestLease(t, h)
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "node-1" || l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 40 {
		t.Errorf("lease spec = %+v, want holder node-1, 40s", l.Spec)
	}
	if !l.Spec.RenewTime.Time.Equal(nodeTestStart) {
		t.Errorf("renewTime = %v, want %v", l.Spec.RenewTime, nodeTestStart)
	}
	want := metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: h.n.Node().UID}
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0] != want {
		t.Errorf("owners = %v, want [%v]", l.OwnerReferences, want)
	}
	if c, u := h.count("create", "leases", ""), h.count("update", "leases", ""); c != 1 || u != 0 {
		t.Fatalf("creates/updates = %d/%d, want 1/0", c, u)
	}

	for i := 1; i <= 6; i++ {
		h.step(5 * time.Second)
		if got := h.count("update", "leases", ""); got != i-1 {
			t.Fatalf("updates = %d after %s, want %d (renewed every 10s)", got, h.clock.Since(nodeTestStart), i-1)
		}
		h.step(5 * time.Second)
		if got := h.count("update", "leases", ""); got != i {
			t.Fatalf("updates = %d after %s, want %d", got, h.clock.Since(nodeTestStart), i)
		}
		if l := nodeTestLease(t, h); !l.Spec.RenewTime.Time.Equal(h.clock.Now()) {
			t.Fatalf("renewTime = %v, want %v", l.Spec.RenewTime, h.clock.Now())
		}
	}
	// Renewals update the lease last written, without reading it first.
	if got := h.count("get", "leases", ""); got != 1 {
		t.Errorf("lease gets = %d, want 1 (the first, which found none)", got)
	}
}

func TestNodeLeaseAdoptsExistingAndRecoversFromConflict(t *testing.T) {
	old := metav1.NewMicroTime(nodeTestStart.Add(-time.Hour))
	holder, seconds := "node-1", int32(40)
	existing := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, RenewTime: &old},
	}
	h := newNodeHarness(t, nil, existing)
	updates := 0 // reactors run under the fake's lock: no h.count here
	h.client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if updates++; updates == 2 {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "node-1", nil)
		}
		return false, nil, nil
	})
	h.register()
	h.run()

	if got := h.count("create", "leases", ""); got != 0 {
		t.Fatalf("lease creates = %d, want 0 (one exists)", got)
	}
	l := nodeTestLease(t, h)
	if !l.Spec.RenewTime.Time.Equal(nodeTestStart) || len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != h.n.Node().UID {
		t.Errorf("existing lease not taken over: renewTime %v, owners %v", l.Spec.RenewTime, l.OwnerReferences)
	}

	// The second update conflicts: the same renewal reads the lease again and succeeds.
	h.step(10 * time.Second)
	if got := h.count("update", "leases", ""); got != 3 {
		t.Errorf("lease updates = %d, want 3 (adopt, conflict, retry)", got)
	}
	if l := nodeTestLease(t, h); !l.Spec.RenewTime.Time.Equal(h.clock.Now()) {
		t.Errorf("renewTime = %v, want %v", l.Spec.RenewTime, h.clock.Now())
	}
	if got := h.logs.count("WARN"); got != 0 {
		t.Errorf("%d warnings for a conflict resolved in the same renewal", got)
	}
}
