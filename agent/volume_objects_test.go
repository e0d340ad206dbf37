package agent

import (
	"context"
	"testing"
	"time"

	"github.com/berth-dev/berth/kubeclient/clientset"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// TestVolumeObjectsCache: objects are reused for the TTL, then read again; immutable ones are
// never read again while in use; a missing object is not cached.
func TestVolumeObjectsCache(t *testing.T) {
	client := fake.NewClientset(
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"k": "1"}},
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "frozen", Namespace: "ns"}, Data: map[string]string{"k": "1"}, Immutable: ptr.To(true)},
		&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"p": []byte("x")}},
	)
	gets := map[string]int{}
	client.PrependReactor("get", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		gets[a.GetResource().Resource+"/"+a.(k8stesting.GetAction).GetName()]++
		return false, nil, nil
	})
	clk := clocktesting.NewFakeClock(time.Now())
	o := newVolumeObjects(clientset.Wrap(client), clk)
	ctx := context.Background()
	read := func(name string) string {
		t.Helper()
		cm, err := o.ConfigMap(ctx, "ns", name)
		if err != nil {
			t.Fatal(err)
		}
		if cm == nil {
			return "<none>"
		}
		return cm.Data["k"]
	}
	if read("cfg") != "1" || read("frozen") != "1" || read("cfg") != "1" {
		t.Fatal("first reads")
	}
	if gets["configmaps/cfg"] != 1 || gets["configmaps/frozen"] != 1 {
		t.Errorf("gets within the TTL: %v", gets)
	}
	// Changed in the API: seen after the TTL, except the immutable one (which cannot change).
	for _, name := range []string{"cfg", "frozen"} {
		cm, _ := client.Tracker().Get(v1.SchemeGroupVersion.WithResource("configmaps"), "ns", name)
		cm.(*v1.ConfigMap).Data["k"] = "2"
		if err := client.Tracker().Update(v1.SchemeGroupVersion.WithResource("configmaps"), cm, "ns"); err != nil {
			t.Fatal(err)
		}
	}
	if read("cfg") != "1" {
		t.Errorf("re-read within the TTL")
	}
	clk.Step(volumeObjectTTL)
	if read("cfg") != "2" {
		t.Errorf("not re-read after the TTL")
	}
	clk.Step(5 * time.Minute)
	read("frozen")
	if gets["configmaps/frozen"] != 1 {
		t.Errorf("an immutable ConfigMap was fetched again: %d GETs", gets["configmaps/frozen"])
	}
	if read("absent") != "<none>" || read("absent") != "<none>" || gets["configmaps/absent"] != 2 {
		t.Errorf("a missing object: %d GETs, want 2 (not cached)", gets["configmaps/absent"])
	}
	s, err := o.Secret(ctx, "ns", "sec")
	if err != nil || string(s.Data["p"]) != "x" {
		t.Errorf("secret: %v %v", s, err)
	}
}
