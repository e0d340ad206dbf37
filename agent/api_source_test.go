package agent

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berth-dev/berth/kubeclient/clientset"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The API source's snapshot holds the node's pods, without the API server's managedFields.
func TestAPISourceSnapshot(t *testing.T) {
	mine := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mine", UID: "u1",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}},
		Spec: v1.PodSpec{NodeName: "node-a"}}
	client := fake.NewClientset(mine)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kc := clientset.Wrap(client)
	src := newAPISource(kc, "node-a", newMirrorPods(kc, func() *v1.Node { return nil }, newAPIHealth(log), log), log)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src.start(ctx)
	out := make(chan SourceUpdate, 1)
	go src.Run(ctx, out)
	select {
	case u := <-out:
		if len(u.Pods) != 1 || u.Pods[0].Name != "mine" {
			t.Fatalf("snapshot: %v", u.Pods)
		}
		if mf := u.Pods[0].ManagedFields; mf != nil {
			t.Errorf("managedFields kept in the cache: %v", mf)
		}
	case <-ctx.Done():
		t.Fatal("no snapshot")
	}
}

func TestCoalesceFor(t *testing.T) {
	for _, tc := range []struct {
		pods int
		want time.Duration
	}{
		{0, 50 * time.Millisecond},
		{100, 50 * time.Millisecond},
		{250, 50 * time.Millisecond},
		{500, 100 * time.Millisecond},
		{1000, 200 * time.Millisecond},
		{5000, 250 * time.Millisecond},
	} {
		if got := coalesceFor(tc.pods); got != tc.want {
			t.Errorf("coalesceFor(%d) = %v, want %v", tc.pods, got, tc.want)
		}
	}
}
