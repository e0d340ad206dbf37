//go:build integration

package integration

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// volumesSyncFrequency is the syncFrequency these tests give Berth (the default is 1m): an update
// of a ConfigMap reaches the pod's files within it plus the 10 s cache of the object.
const volumesSyncFrequency = 5 * time.Second

// setBerthConfig adds KubeletConfiguration lines to the config file, before the node server part
// that appendConfig rewrites.
func (c *cluster) setBerthConfig(lines string) {
	c.t.Helper()
	b := string(mustRead(c.t, c.config))
	base, server, _ := strings.Cut(b, "# node server\n")
	if err := os.WriteFile(c.config, []byte(base+lines+"# node server\n"+server), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) containerID(p *v1.Pod, name string) string {
	c.t.Helper()
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name && cs.ContainerID != "" {
			return strings.TrimPrefix(cs.ContainerID, "containerd://")
		}
	}
	c.t.Fatalf("pod %s: no container %s in %+v", p.Name, name, p.Status.ContainerStatuses)
	return ""
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestClusterVolumesConfigMapSecret: configMap and secret volumes (all keys, items with paths and
// modes, defaultMode, an optional missing Secret, binaryData) read from inside the container; an
// update of the ConfigMap reaches the running container within syncFrequency + the cache TTL,
// atomically — a reader loop in the container never sees two keys of different versions or a torn
// file — and without a restart; labels changed in the API reach a downwardAPI file.
func TestClusterVolumesConfigMapSecret(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cms, secrets := c.admin.CoreV1().ConfigMaps("default"), c.admin.CoreV1().Secrets("default")
	_ = cms.Delete(ctx, "app-config", metav1.DeleteOptions{})
	_ = secrets.Delete(ctx, "app-secret", metav1.DeleteOptions{})
	t.Cleanup(func() {
		_ = cms.Delete(ctx, "app-config", metav1.DeleteOptions{})
		_ = secrets.Delete(ctx, "app-secret", metav1.DeleteOptions{})
	})
	big1, big2 := strings.Repeat("1", 256<<10), strings.Repeat("2", 256<<10)
	cm, err := cms.Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data:       map[string]string{"a": "v1", "b": "v1", "big": big1},
		BinaryData: map[string][]byte{"bin": {0, 1, 2, 255}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		StringData: map[string]string{"password": "s3cret", "user": "admin"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.setBerthConfig(fmt.Sprintf("syncFrequency: %s\n", volumesSyncFrequency))
	c.start()
	c.waitNodeReady(10 * time.Second)

	// The reader: resolves ..data once per round and reads both keys through it, so a mix of
	// versions would show; the big file, read through its user-visible name, must hash to one of
	// the two versions, never a torn one. A version removed between resolving and opening is
	// read again (ENOENT is the one thing a reader may see at the instant of a swap).
	reader := fmt.Sprintf(`n=0; while true; do
  d=$(readlink /cfg/..data) || continue
  a=$(cat /cfg/$d/a 2>/dev/null) || continue
  b=$(cat /cfg/$d/b 2>/dev/null) || continue
  [ "$a" = "$b" ] || echo "mixed $d a=$a b=$b" >> /tmp/bad
  sum=$( { md5sum < /cfg/big; } 2>/dev/null ) || continue
  h=${sum%%%% *}
  case $h in %s|%s) ;; *) echo "torn big: $h" >> /tmp/bad ;; esac
  n=$((n+1)); echo $n > /tmp/reads.new && mv /tmp/reads.new /tmp/reads
done`, md5hex(big1), md5hex(big2))
	p := apiPod("cfg", "Always", "sh", "-c", reader)
	mode600, mode400 := int32(0o600), int32(0o400)
	p.Spec.Volumes = []v1.Volume{
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app-config"}}}},
		{Name: "items", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app-config"},
			Items: []v1.KeyToPath{{Key: "a", Path: "dir/a.txt", Mode: &mode600}}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app-secret", DefaultMode: &mode400}}},
		{Name: "optional", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "absent", Optional: new(true)}}},
		{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
	}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "cfg", MountPath: "/cfg"}, {Name: "items", MountPath: "/items"}, {Name: "sec", MountPath: "/sec"},
		{Name: "optional", MountPath: "/optional"}, {Name: "info", MountPath: "/info"},
	}
	c.create(p)
	running := c.waitPod("cfg", "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	id := c.containerID(running, "main")
	check := func(what, want string, cmd ...string) {
		t.Helper()
		out, stderr, code, err := c.rt.ExecSync(ctx, id, cmd, 10*time.Second)
		if got := strings.TrimSpace(string(out)); err != nil || code != 0 || got != want {
			t.Errorf("%s: %v = %q (code %d, err %v, stderr %s), want %q", what, cmd, got, code, err, stderr, want)
		}
	}
	check("configMap key", "v1", "cat", "/cfg/a")
	check("configMap default mode and owner", "644 0 0", "stat", "-L", "-c", "%a %u %g", "/cfg/a")
	check("configMap binaryData", "00 01 02 ff", "sh", "-c", "od -An -tx1 /cfg/bin | xargs")
	check("configMap item path and mode", "v1 600", "sh", "-c", "echo $(cat /items/dir/a.txt) $(stat -L -c %a /items/dir/a.txt)")
	check("configMap items only", "dir", "ls", "/items")
	check("configMap read-only", "1", "sh", "-c", "touch /cfg/x 2>/dev/null; echo $?")
	check("secret key", "s3cret", "cat", "/sec/password")
	check("secret defaultMode", "400 0 0", "stat", "-L", "-c", "%a %u %g", "/sec/user")
	check("secret on a tmpfs", "tmpfs", "sh", "-c", `awk '$5 == "/sec" {print $9}' /proc/self/mountinfo`)
	check("optional missing secret is an empty directory", "", "ls", "/optional")
	check("downward labels", `test="berth"`, "cat", "/info/labels")
	if strings.Contains(string(mustReadAll(c.logPath)), "s3cret") {
		t.Errorf("the Secret's value is in Berth's log")
	}

	// The update: both keys and the big file change together.
	readsBefore := atoi(c.exec(id, "cat", "/tmp/reads"))
	cm.Data = map[string]string{"a": "v2", "b": "v2", "big": big2}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	limit := volumesSyncFrequency + 10*time.Second + 5*time.Second // sync + cache TTL + slack
	waitFor(t, "the new ConfigMap content in the container", limit, func() bool {
		out, _, _, _ := c.rt.ExecSync(ctx, id, []string{"cat", "/cfg/a", "/items/dir/a.txt"}, 5*time.Second)
		return string(out) == "v2v2"
	})
	t.Logf("ConfigMap update visible after %s", time.Since(updated).Round(100*time.Millisecond))
	check("big file updated", md5hex(big2), "sh", "-c", "md5sum < /cfg/big | cut -c1-32")
	time.Sleep(time.Second)
	if readsAfter := atoi(c.exec(id, "cat", "/tmp/reads")); readsAfter <= readsBefore || readsBefore < 1 {
		t.Errorf("the reader loop did not run across the update: %d reads before, %d after", readsBefore, readsAfter)
	}
	if out, _, _, _ := c.rt.ExecSync(ctx, id, []string{"cat", "/tmp/bad"}, 5*time.Second); len(out) > 0 {
		t.Errorf("the reader saw a half update:\n%s", out)
	}
	if p := c.get("cfg"); p.Status.ContainerStatuses[0].RestartCount != 0 || c.containerID(p, "main") != id {
		t.Errorf("the container was restarted for the update: %+v", p.Status.ContainerStatuses[0])
	}

	// Labels changed in the API reach the downwardAPI file, without a restart.
	cur := c.get("cfg")
	cur.Labels["color"] = "blue"
	if _, err := c.admin.CoreV1().Pods("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new label in the downwardAPI file", 10*time.Second, func() bool {
		out, _, _, _ := c.rt.ExecSync(ctx, id, []string{"cat", "/info/labels"}, 5*time.Second)
		return string(out) == "color=\"blue\"\ntest=\"berth\""
	})

	// Deleted: no mount, no directory left.
	podDir := filepath.Join(c.rootDir, "pods", string(running.UID))
	if len(mountsUnder(t, podDir)) == 0 {
		t.Fatalf("no mounts under %s while the pod runs", podDir)
	}
	zero := int64(0)
	if err := c.admin.CoreV1().Pods("default").Delete(ctx, "cfg", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod directory removed", 20*time.Second, func() bool {
		_, err := os.Stat(podDir)
		return os.IsNotExist(err)
	})
	if m := mountsUnder(t, podDir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func mustReadAll(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// TestClusterVolumesServiceAccountToken: the service-account volume the ServiceAccount admission
// plugin adds (kube-api-access-*) works: its token, read from inside the pod, authenticates as the
// pod's service account, bound to the pod; ca.crt is the kube-root-ca.crt ConfigMap's; namespace is
// the pod's. A projected token with its own audience works for that audience. Once the pod is
// deleted the token is refused.
func TestClusterVolumesServiceAccountToken(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	ca := string(mustRead(t, filepath.Join(c.dir, "ca.crt")))
	cms := c.admin.CoreV1().ConfigMaps("default")
	_ = cms.Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{})
	// What the controller manager's root-CA publisher would create.
	if _, err := cms.Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": ca}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cms.Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}) })
	c.start()
	c.waitNodeReady(10 * time.Second)

	p := apiPod("sa", "Always", "sleep", "3600")
	p.Spec.AutomountServiceAccountToken = nil // the admission plugin adds the volume
	exp := int64(600)
	p.Spec.Volumes = []v1.Volume{{Name: "aud", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Audience: "berth-test", ExpirationSeconds: &exp, Path: "tok"}},
	}}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "aud", MountPath: "/aud"}}
	created := c.create(p)
	var defaultVolume string
	for _, v := range created.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil {
			defaultVolume = v.Name
		}
	}
	if defaultVolume == "" {
		t.Fatalf("the API server added no kube-api-access volume: %+v", created.Spec.Volumes)
	}
	running := c.waitPod("sa", "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	id := c.containerID(running, "main")
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount"
	if got := c.exec(id, "cat", dir+"/namespace"); got != "default" {
		t.Errorf("namespace file = %q", got)
	}
	if got := c.exec(id, "cat", dir+"/ca.crt"); got != strings.TrimSpace(ca) {
		t.Errorf("ca.crt differs from the kube-root-ca.crt ConfigMap")
	}
	if got := c.exec(id, "stat", "-L", "-c", "%a %u %g", dir+"/token"); got != "644 0 0" {
		t.Errorf("token mode and owner = %q, want 644 0 0", got)
	}
	token := c.exec(id, "cat", dir+"/token")
	review := func(tok string, audiences ...string) *authenticationv1.TokenReview {
		t.Helper()
		r, err := c.admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: audiences}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := review(token)
	if !r.Status.Authenticated || r.Status.User.Username != "system:serviceaccount:default:default" {
		t.Fatalf("the pod's token: authenticated %v as %q (%s)", r.Status.Authenticated, r.Status.User.Username, r.Status.Error)
	}
	if got := r.Status.User.Extra["authentication.kubernetes.io/pod-name"]; len(got) != 1 || got[0] != "sa" {
		t.Errorf("token not bound to the pod by name: extra %v", r.Status.User.Extra)
	}
	if got := r.Status.User.Extra["authentication.kubernetes.io/pod-uid"]; len(got) != 1 || types.UID(got[0]) != running.UID {
		t.Errorf("token not bound to the pod by UID: extra %v", r.Status.User.Extra)
	}
	aud := c.exec(id, "cat", "/aud/tok")
	if r := review(aud, "berth-test"); !r.Status.Authenticated || r.Status.User.Username != "system:serviceaccount:default:default" {
		t.Errorf("the audience token: authenticated %v as %q (%s)", r.Status.Authenticated, r.Status.User.Username, r.Status.Error)
	}
	if r := review(aud); r.Status.Authenticated {
		t.Errorf("a token for audience berth-test was accepted for the API server's audience")
	}

	zero := int64(0)
	if err := c.admin.CoreV1().Pods("default").Delete(ctx, "sa", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod gone from the API", 20*time.Second, func() bool { return c.get("sa") == nil })
	// The API server checks the bound pod through its cache of pods: give it a moment.
	waitFor(t, "the token of the deleted pod refused", 10*time.Second, func() bool { return !review(token).Status.Authenticated })
	podDir := filepath.Join(c.rootDir, "pods", string(running.UID))
	waitFor(t, "pod directory removed", 20*time.Second, func() bool {
		_, err := os.Stat(podDir)
		return os.IsNotExist(err)
	})
	if m := mountsUnder(t, podDir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// TestClusterVolumesFailures: a hostPath of the wrong type gives the kubelet's FailedMount event;
// a volume kind Berth does not support fails the pod with a message naming it.
func TestClusterVolumesFailures(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.start()
	c.waitNodeReady(10 * time.Second)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := v1.HostPathSocket
	p := apiPod("mismatch", "Always", "sleep", "3600")
	p.Spec.Volumes = []v1.Volume{{Name: "sock", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: file, Type: &sock}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "sock", MountPath: "/sock"}}
	created := c.create(p)
	pvc := apiPod("pvc", "Always", "sleep", "3600")
	pvc.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	c.create(pvc)

	want := fmt.Sprintf(`MountVolume.SetUp failed for volume "sock" : hostPath type check failed: %s is not a socket file`, file)
	waitFor(t, "the FailedMount event", 15*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(created.UID)})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Reason == "FailedMount" && ev.Type == v1.EventTypeWarning && ev.Message == want {
				return true
			}
		}
		return false
	})
	if p := c.get("mismatch"); p.Status.Phase != v1.PodPending || len(p.Status.ContainerStatuses) != 1 ||
		p.Status.ContainerStatuses[0].State.Waiting == nil || p.Status.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("mismatch pod status: %+v", p.Status)
	}
	failed := c.waitPod("pvc", "Failed", 15*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if failed.Status.Reason != "UnsupportedPodSpec" || !strings.Contains(failed.Status.Message, "spec.volumes[0].persistentVolumeClaim") ||
		!strings.Contains(failed.Status.Message, "Berth does not support persistentVolumeClaim volumes") {
		t.Errorf("pvc pod: reason %q message %q", failed.Status.Reason, failed.Status.Message)
	}
}

// TestClusterVolumesEmptyDirSizeLimit: a pod whose disk emptyDir grows past its sizeLimit is evicted
// (Failed, reason Evicted, the kubelet's message, a DisruptionTarget condition, an Evicted event,
// its container stopped); a pod within its limit keeps running.
func TestClusterVolumesEmptyDirSizeLimit(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.start()
	c.waitNodeReady(10 * time.Second)
	limited := func(name string, kib int) *v1.Pod {
		p := apiPod(name, "Always", "sh", "-c", fmt.Sprintf("dd if=/dev/urandom of=/scratch/f bs=1024 count=%d && exec sleep 3600", kib))
		lim := resource.MustParse("1Mi")
		p.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{SizeLimit: &lim}}}}
		p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
		return p
	}
	hog := c.create(limited("hog", 4096))
	c.create(limited("modest", 100))
	failed := c.waitPod("hog", "evicted", 40*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	wantMsg := `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". `
	if failed.Status.Reason != "Evicted" || failed.Status.Message != wantMsg {
		t.Errorf("hog: reason %q message %q, want Evicted %q", failed.Status.Reason, failed.Status.Message, wantMsg)
	}
	disrupted := false
	for _, cond := range failed.Status.Conditions {
		disrupted = disrupted || cond.Type == v1.DisruptionTarget && cond.Status == v1.ConditionTrue && cond.Reason == "TerminationByKubelet"
	}
	if !disrupted {
		t.Errorf("no DisruptionTarget condition: %+v", failed.Status.Conditions)
	}
	c.waitPod("hog", "container stopped", 15*time.Second, func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Terminated != nil
	})
	waitFor(t, "the Evicted event", 10*time.Second, func() bool {
		evs, err := c.admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(hog.UID)})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Reason == "Evicted" && ev.Message == wantMsg {
				return true
			}
		}
		return false
	})
	if p := c.get("modest"); p.Status.Phase != v1.PodRunning || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the pod within its limit was disturbed: %+v", p.Status)
	}
	time.Sleep(3 * time.Second)
	if p := c.get("hog"); p.Status.Phase != v1.PodFailed || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the evicted pod was started again: %+v", p.Status)
	}
}
