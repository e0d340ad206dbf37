package volumes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// fakeObjects is an APIObjects of maps; tokens are numbered.
type fakeObjects struct {
	configMaps map[string]*v1.ConfigMap
	secrets    map[string]*v1.Secret
	clock      *clocktesting.FakeClock
	tokens     int
	requests   []*authenticationv1.TokenRequest
	fail       error
}

func (f *fakeObjects) ConfigMap(_ context.Context, _, name string) (*v1.ConfigMap, error) {
	return f.configMaps[name], f.fail
}

func (f *fakeObjects) Secret(_ context.Context, _, name string) (*v1.Secret, error) {
	return f.secrets[name], f.fail
}

func (f *fakeObjects) CreateToken(_ context.Context, ns, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	f.tokens++
	f.requests = append(f.requests, req)
	out := req.DeepCopy()
	out.Status.Token = ns + "/" + sa + "/" + string(rune('0'+f.tokens))
	out.Status.ExpirationTimestamp = metav1.NewTime(f.clock.Now().Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second))
	return out, nil
}

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1",
			Labels: map[string]string{"b": "2", "a": "1"}, Annotations: map[string]string{"note": `say "hi"`}},
		Spec: v1.PodSpec{ServiceAccountName: "robot", Containers: []v1.Container{{Name: "app",
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}}}}},
	}
}

func newTestManager(t *testing.T, objects *fakeObjects) (*Manager, string) {
	t.Helper()
	root := t.TempDir()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))
	var api APIObjects
	if objects != nil {
		objects.clock = clk
		api = objects
	}
	m, err := NewManager(Config{RootDir: root, Objects: api, NodeMemoryCapacity: 1 << 30, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return m, root
}

func TestVolumeDir(t *testing.T) {
	if got := VolumeDir("/var/lib/berth", "u1", PluginConfigMap, "cfg"); got != "/var/lib/berth/pods/u1/volumes/kubernetes.io~configmap/cfg" {
		t.Errorf("VolumeDir = %s", got)
	}
	if got := subPathDir("/r", "u1", "v", "c", 2); got != "/r/pods/u1/volume-subpaths/v/c/2" {
		t.Errorf("subPathDir = %s", got)
	}
}

func TestPayloads(t *testing.T) {
	objects := &fakeObjects{
		configMaps: map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{"k1": "v1", "k2": "v2"}, BinaryData: map[string][]byte{"bin": {0, 255}}}},
		secrets:    map[string]*v1.Secret{"sec": {Data: map[string][]byte{"password": []byte("pw")}}},
	}
	m, _ := newTestManager(t, objects)
	pod := testPod()
	ctx := context.Background()

	files, err := m.configMapFiles(ctx, pod, "cfg", nil, 0o644, nil)
	if err != nil || len(files) != 3 || string(files["k1"].Data) != "v1" || files["bin"].Data[1] != 255 || files["k2"].Mode != 0o644 {
		t.Errorf("all keys: %v %v", files, err)
	}
	files, err = m.configMapFiles(ctx, pod, "cfg", []v1.KeyToPath{{Key: "k2", Path: "d/two", Mode: ptr.To[int32](0o600)}}, 0o444, nil)
	if err != nil || len(files) != 1 || string(files["d/two"].Data) != "v2" || files["d/two"].Mode != 0o600 {
		t.Errorf("items: %v %v", files, err)
	}
	if _, err := m.configMapFiles(ctx, pod, "cfg", []v1.KeyToPath{{Key: "nope", Path: "x"}}, 0o644, nil); err == nil ||
		err.Error() != "configmap references non-existent config key: nope" {
		t.Errorf("missing key: %v", err)
	}
	if files, err := m.configMapFiles(ctx, pod, "cfg", []v1.KeyToPath{{Key: "nope", Path: "x"}}, 0o644, ptr.To(true)); err != nil || len(files) != 0 {
		t.Errorf("optional missing key: %v %v", files, err)
	}
	if _, err := m.configMapFiles(ctx, pod, "absent", nil, 0o644, nil); err == nil || err.Error() != `configmap "absent" not found` {
		t.Errorf("missing configmap: %v", err)
	}
	if files, err := m.secretFiles(ctx, pod, "absent", nil, 0o644, ptr.To(true)); err != nil || len(files) != 0 {
		t.Errorf("optional missing secret: %v %v", files, err)
	}
	if files, err := m.secretFiles(ctx, pod, "sec", nil, 0o400, nil); err != nil || string(files["password"].Data) != "pw" || files["password"].Mode != 0o400 {
		t.Errorf("secret: %v %v", files, err)
	}
	if _, err := m.configMapFiles(ctx, pod, "cfg", []v1.KeyToPath{{Key: "k1", Path: "../x"}}, 0o644, nil); err == nil {
		t.Errorf("an item path with .. was accepted")
	}

	files, err = m.downwardAPIFiles(pod, []v1.DownwardAPIVolumeFile{
		{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "annotations", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
		{Path: "one", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['a']"}, Mode: ptr.To[int32](0o400)},
		{Path: "uid", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
		{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
	}, 0o644)
	want := map[string]string{"labels": "a=\"1\"\nb=\"2\"", "annotations": `note="say \"hi\""`, "one": "1", "uid": "uid-1", "mem": "32"}
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if string(files[k].Data) != v {
			t.Errorf("downward %s = %q, want %q", k, files[k].Data, v)
		}
	}
	if files["one"].Mode != 0o400 || files["labels"].Mode != 0o644 {
		t.Errorf("downward modes: %v %v", files["one"].Mode, files["labels"].Mode)
	}
	if _, err := m.downwardAPIFiles(pod, []v1.DownwardAPIVolumeFile{{Path: "ip", FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}}, 0o644); err == nil {
		t.Errorf("status.podIP accepted in a downwardAPI volume")
	}

	// Standalone: no API objects.
	sm, _ := newTestManager(t, nil)
	if _, err := sm.configMapFiles(ctx, pod, "cfg", nil, 0o644, nil); err == nil || !strings.Contains(err.Error(), "cluster mode") {
		t.Errorf("standalone configMap: %v", err)
	}
}

// TestServiceAccountToken: bound to the pod, with the audience and lifetime asked for; reused until
// 80% of its lifetime, then requested again; a failed refresh keeps the valid token.
func TestServiceAccountToken(t *testing.T) {
	objects := &fakeObjects{}
	m, _ := newTestManager(t, objects)
	pod := testPod()
	ctx := context.Background()
	proj := &v1.ServiceAccountTokenProjection{Audience: "vault", ExpirationSeconds: ptr.To[int64](1000), Path: "token"}
	tok, err := m.token(ctx, pod, "vol", 0, proj)
	if err != nil || string(tok) != "ns/robot/1" {
		t.Fatalf("token %q %v", tok, err)
	}
	req := objects.requests[0]
	if ref := req.Spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.Name != "web" || ref.UID != "uid-1" {
		t.Errorf("not bound to the pod: %+v", ref)
	}
	if len(req.Spec.Audiences) != 1 || req.Spec.Audiences[0] != "vault" || *req.Spec.ExpirationSeconds != 1000 {
		t.Errorf("request %+v", req.Spec)
	}
	clk := objects.clock
	clk.Step(799 * time.Second)
	if tok, _ := m.token(ctx, pod, "vol", 0, proj); string(tok) != "ns/robot/1" || objects.tokens != 1 {
		t.Errorf("before 80%%: %q after %d requests", tok, objects.tokens)
	}
	clk.Step(2 * time.Second)
	if tok, _ := m.token(ctx, pod, "vol", 0, proj); string(tok) != "ns/robot/2" {
		t.Errorf("after 80%%: %q, want a new token", tok)
	}
	clk.Step(801 * time.Second)
	objects.fail = errors.New("API down")
	if tok, err := m.token(ctx, pod, "vol", 0, proj); err != nil || string(tok) != "ns/robot/2" {
		t.Errorf("failed refresh: %q %v, want the still valid token", tok, err)
	}
	clk.Step(200 * time.Second) // past expiry
	if _, err := m.token(ctx, pod, "vol", 0, proj); err == nil {
		t.Errorf("an expired token was served")
	}
	objects.fail = nil
	// The default service account and lifetime.
	pod.Spec.ServiceAccountName = ""
	if _, err := m.token(ctx, pod, "other", 0, &v1.ServiceAccountTokenProjection{Path: "t"}); err != nil {
		t.Fatal(err)
	}
	last := objects.requests[len(objects.requests)-1]
	if *last.Spec.ExpirationSeconds != 3600 || len(last.Spec.Audiences) != 0 {
		t.Errorf("defaults: %+v", last.Spec)
	}
	if err := m.TearDown(pod.UID); err != nil {
		t.Fatal(err)
	}
	if len(m.tokens) != 0 {
		t.Errorf("tokens kept after TearDown: %d", len(m.tokens))
	}
}

// TestSetUpAndContainerMounts goes through a whole pod: directories, modes, the CRI mounts, and
// the teardown that leaves nothing.
func TestSetUpAndContainerMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tmpfs and bind mounts need root")
	}
	objects := &fakeObjects{
		configMaps: map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{"k": "v"}}},
		secrets:    map[string]*v1.Secret{"sec": {Data: map[string][]byte{"p": []byte("pw")}}},
	}
	m, root := newTestManager(t, objects)
	pod := testPod()
	hostDir := t.TempDir()
	bidir := v1.MountPropagationBidirectional
	pod.Spec.Volumes = []v1.Volume{
		{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir}}},
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec"}}},
		{Name: "tok", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token"}},
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{{Key: "k", Path: "ca.crt"}}}},
		}}}},
	}
	if errs := m.SetUp(context.Background(), pod); len(errs) != 0 {
		t.Fatalf("SetUp: %v", errs)
	}
	if errs := m.SetUp(context.Background(), pod); len(errs) != 0 { // idempotent
		t.Fatalf("second SetUp: %v", errs)
	}
	podDir := PodDir(root, pod.UID)
	mps, _ := mountPoints(podDir)
	if len(mps) != 3 { // mem, sec, tok: tmpfs each, once
		t.Errorf("mounts after SetUp: %v, want 3 tmpfs", mps)
	}
	st := func(p string) os.FileInfo {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if fi := st(VolumeDir(root, pod.UID, PluginEmptyDir, "cache")); fi.Mode().Perm() != 0o777 {
		t.Errorf("emptyDir mode %v", fi.Mode())
	}
	if fi := st(VolumeDir(root, pod.UID, PluginEmptyDir, "mem")); fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("memory emptyDir mode %v, want 1777", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(VolumeDir(root, pod.UID, PluginProjected, "tok"), "token")); string(b) != "ns/robot/1" {
		t.Errorf("token file %q", b)
	}

	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "cache", MountPath: "/cache"},
		{Name: "cfg", MountPath: "/cfg"},
		{Name: "host", MountPath: "/host", MountPropagation: &bidir},
		{Name: "cache", MountPath: "/per", SubPathExpr: "x-$(NAME)"},
		{Name: "host", MountPath: "/ro", ReadOnly: true},
	}
	mounts, err := m.ContainerMounts(pod, &pod.Spec.Containers[0], map[string]string{"NAME": "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := []*runtimeapi.Mount{
		{ContainerPath: "/cache", HostPath: VolumeDir(root, pod.UID, PluginEmptyDir, "cache")},
		{ContainerPath: "/cfg", HostPath: VolumeDir(root, pod.UID, PluginConfigMap, "cfg"), Readonly: true},
		{ContainerPath: "/host", HostPath: hostDir, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/per", HostPath: subPathDir(root, pod.UID, "cache", "app", 3)},
		{ContainerPath: "/ro", HostPath: hostDir, Readonly: true},
	}
	if len(mounts) != len(want) {
		t.Fatalf("mounts %v", mounts)
	}
	for i := range want {
		if mounts[i].String() != want[i].String() {
			t.Errorf("mount %d = %v, want %v", i, mounts[i], want[i])
		}
	}
	if fi := st(filepath.Join(VolumeDir(root, pod.UID, PluginEmptyDir, "cache"), "x-web")); !fi.IsDir() {
		t.Errorf("subPathExpr directory not created")
	}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cache", MountPath: "/x", SubPathExpr: "$(UP)"}}
	if _, err := m.ContainerMounts(pod, &pod.Spec.Containers[0], map[string]string{"UP": "../.."}); err == nil {
		t.Errorf("a subPathExpr expanding to ../.. was accepted")
	}

	if err := m.TearDown(pod.UID); err != nil {
		t.Fatal(err)
	}
	if mps, _ := mountPoints(podDir); len(mps) != 0 {
		t.Errorf("mounts left: %v", mps)
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
	if _, err := os.Stat(hostDir); err != nil {
		t.Errorf("the hostPath went with the pod: %v", err)
	}
}

func TestSetUpErrors(t *testing.T) {
	m, _ := newTestManager(t, &fakeObjects{})
	pod := testPod()
	pod.Spec.Volumes = []v1.Volume{
		{Name: "ok", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/"}}},
		{Name: "file", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/", Type: ptr.To(v1.HostPathFile)}}},
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}}},
		{Name: "pvc", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}},
	}
	errs := m.SetUp(context.Background(), pod)
	got := make([]string, len(errs))
	for i, e := range errs {
		got[i] = e.Error()
	}
	want := []string{
		`MountVolume.SetUp failed for volume "file" : hostPath type check failed: / is not a file`,
		`MountVolume.SetUp failed for volume "cfg" : configmap "nope" not found`,
		`MountVolume.SetUp failed for volume "pvc" : volume kind persistentVolumeClaim is not supported by Berth`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPodMemoryLimit(t *testing.T) {
	lim := func(s string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse(s)}}
	}
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "side", Resources: lim("10Mi"), RestartPolicy: &always}, {Name: "init", Resources: lim("100Mi")}},
		Containers:     []v1.Container{{Name: "a", Resources: lim("20Mi")}, {Name: "b"}},
	}}
	if got := PodMemoryLimit(pod); got != 110<<20 {
		t.Errorf("PodMemoryLimit = %d, want the init container's 100Mi + the sidecar's 10Mi", got)
	}
	pod.Spec.InitContainers = nil
	if got := PodMemoryLimit(pod); got != 20<<20 {
		t.Errorf("PodMemoryLimit = %d, want 20Mi", got)
	}
	m, _ := newTestManager(t, nil)
	if got := m.emptyDirMemorySize(&v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "x"}}}}, nil); got != 1<<30 {
		t.Errorf("no limits: %d, want the node's memory", got)
	}
	if got := m.emptyDirMemorySize(pod, ptr.To(resource.MustParse("5Mi"))); got != 5<<20 {
		t.Errorf("sizeLimit: %d", got)
	}
}

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	before, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i) // not sparse
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	after, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if grew := after - before; grew < 1<<20 || grew > 1<<20+64<<10 {
		t.Errorf("usage grew by %d bytes for a 1 MiB file with a hard link and a symlink, want about 1 MiB", grew)
	}
}
