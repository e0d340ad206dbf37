package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

const testNode = "node-1"

var testStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func podYAML(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  containers:\n  - name: app\n    image: %s\n", name, image)
}

// writeManifest writes a file atomically (a dotfile renamed into place), as careful tools do.
func writeManifest(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is a log sink safe for the source's goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestSource(t *testing.T, dir string) (*staticSource, *clocktesting.FakeClock, *syncBuffer) {
	t.Helper()
	fc := clocktesting.NewFakeClock(testStart)
	logs := &syncBuffer{}
	s, err := newStaticSource(StaticSourceConfig{
		Dir:      dir,
		NodeName: testNode,
		Clock:    fc,
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, fc, logs
}

func podNames(u SourceUpdate) []string {
	var names []string
	for _, p := range u.Pods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return names
}

func wantSnapshot(t *testing.T, u SourceUpdate, pods []string, errs int) {
	t.Helper()
	if u.Source != SourceFile {
		t.Errorf("source = %q, want %q", u.Source, SourceFile)
	}
	if got := podNames(u); fmt.Sprint(got) != fmt.Sprint(pods) {
		t.Errorf("pods = %v, want %v", got, pods)
	}
	if len(u.Errors) != errs {
		t.Errorf("errors = %v, want %d", u.Errors, errs)
	}
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewStaticSourceErrors(t *testing.T) {
	dir := t.TempDir()
	file := writeManifest(t, dir, "web.yaml", podYAML("web", "nginx"))
	cases := []struct {
		name string
		cfg  StaticSourceConfig
		want string
	}{
		{"no dir", StaticSourceConfig{NodeName: testNode}, "no directory given: set the static pod path"},
		{"missing dir", StaticSourceConfig{Dir: filepath.Join(dir, "nope"), NodeName: testNode}, "does not exist: create it (mkdir -p"},
		{"a file", StaticSourceConfig{Dir: file, NodeName: testNode}, "is not a directory"},
		{"no node name", StaticSourceConfig{Dir: dir}, "node name is required"},
		{"bad node name", StaticSourceConfig{Dir: dir, NodeName: "Node_1"}, `invalid node name "Node_1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newStaticSource(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newStaticSource: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	s, err := newStaticSource(StaticSourceConfig{Dir: dir, NodeName: testNode})
	if err != nil {
		t.Fatal(err)
	}
	if s.rescan != 20*time.Second || s.clock == nil || s.log == nil {
		t.Errorf("defaults: rescan %v, clock %v, log %v", s.rescan, s.clock, s.log)
	}
}

func TestStaticSourceStaticPod(t *testing.T) {
	dir := t.TempDir()
	s, fc, _ := newTestSource(t, dir)
	wantSnapshot(t, s.scan(), nil, 0)

	path := writeManifest(t, dir, "web.yaml", podYAML("web", "nginx:1.27")+"  tolerations:\n  - key: dedicated\n    operator: Exists\n")
	u := s.scan()
	wantSnapshot(t, u, []string{"default/web-node-1"}, 0)
	pod := u.Pods[0]
	if !uuidPattern.MatchString(string(pod.UID)) {
		t.Errorf("UID %q is not a version 8 UUID", pod.UID)
	}
	if pod.Spec.NodeName != testNode {
		t.Errorf("nodeName = %q", pod.Spec.NodeName)
	}
	wantAnnotations := map[string]string{
		"kubernetes.io/config.hash":   string(pod.UID),
		"kubernetes.io/config.source": "file",
		"kubernetes.io/config.seen":   "2026-01-02T03:04:05Z",
	}
	for k, v := range wantAnnotations {
		if pod.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, pod.Annotations[k], v)
		}
	}
	wantTolerations := []v1.Toleration{
		{Key: "dedicated", Operator: v1.TolerationOpExists},
		{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute},
	}
	if fmt.Sprint(pod.Spec.Tolerations) != fmt.Sprint(wantTolerations) {
		t.Errorf("tolerations = %v, want %v", pod.Spec.Tolerations, wantTolerations)
	}
	if pod.Spec.RestartPolicy != v1.RestartPolicyAlways || pod.Spec.Containers[0].ImagePullPolicy != v1.PullIfNotPresent {
		t.Errorf("pod is not defaulted: %+v", pod.Spec)
	}

	// A rescan of the same file: the same pod, first seen at the same time.
	fc.Step(time.Minute)
	again := s.scan()
	if again.Pods[0] != pod {
		t.Errorf("an unchanged file gave a new pod object")
	}

	// A restart of Berth: the same UID from the same file.
	s2, _, _ := newTestSource(t, dir)
	if uid := s2.scan().Pods[0].UID; uid != pod.UID {
		t.Errorf("UID after restart = %s, want %s", uid, pod.UID)
	}
	// Another node: another UID.
	s3, err := newStaticSource(StaticSourceConfig{Dir: dir, NodeName: "node-2", Clock: fc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if p := s3.scan().Pods[0]; p.UID == pod.UID || p.Name != "web-node-2" {
		t.Errorf("node-2: pod %s with UID %s", p.Name, p.UID)
	}

	// An edit: a new UID, seen now.
	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx:1.28"))
	edited := s.scan()
	wantSnapshot(t, edited, []string{"default/web-node-1"}, 0)
	if edited.Pods[0].UID == pod.UID {
		t.Errorf("an edit kept the UID %s", pod.UID)
	}
	if seen := edited.Pods[0].Annotations["kubernetes.io/config.seen"]; seen != "2026-01-02T03:05:05Z" {
		t.Errorf("config.seen of the edited pod = %s", seen)
	}
	if len(edited.Pods[0].Spec.Tolerations) != 1 {
		t.Errorf("tolerations = %v", edited.Pods[0].Spec.Tolerations)
	}

	// Deletion.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	wantSnapshot(t, s.scan(), nil, 0)
}

func TestStaticSourceBrokenFile(t *testing.T) {
	dir := t.TempDir()
	s, _, logs := newTestSource(t, dir)
	writeManifest(t, dir, "a-good.yaml", podYAML("good", "nginx"))
	bad := writeManifest(t, dir, "b-bad.yaml", podYAML("bad", `""`))

	for range 3 { // rescans do not log again
		u := s.scan()
		wantSnapshot(t, u, []string{"default/good-node-1"}, 1)
		want := ManifestError{File: bad, Error: "spec.containers[0].image: Required value"}
		if len(u.Errors) == 1 && u.Errors[0] != want {
			t.Errorf("error = %+v, want %+v", u.Errors[0], want)
		}
	}
	if n := strings.Count(logs.String(), "static pod manifest rejected"); n != 1 {
		t.Errorf("the error was logged %d times, want once:\n%s", n, logs)
	}

	// Another problem with the same file is logged.
	writeManifest(t, dir, "b-bad.yaml", podYAML("Bad_Name", "nginx"))
	u := s.scan()
	wantSnapshot(t, u, []string{"default/good-node-1"}, 1)
	if n := strings.Count(logs.String(), "static pod manifest rejected"); n != 2 {
		t.Errorf("the new error was not logged: %d", n)
	}

	// Fixed: the pod appears, the error goes.
	writeManifest(t, dir, "b-bad.yaml", podYAML("bad", "nginx"))
	wantSnapshot(t, s.scan(), []string{"default/good-node-1", "default/bad-node-1"}, 0)

	// Broken again with the first error: logged again.
	writeManifest(t, dir, "b-bad.yaml", podYAML("bad", `""`))
	wantSnapshot(t, s.scan(), []string{"default/good-node-1"}, 1)
	if n := strings.Count(logs.String(), "static pod manifest rejected"); n != 3 {
		t.Errorf("the error that came back was not logged: %d", n)
	}
}

// TestStaticSourceBadManifests puts every kind of bad manifest beside a good one: each is one
// error naming the problem, and the good pod is unaffected.
func TestStaticSourceBadManifests(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := newTestSource(t, dir)
	writeManifest(t, dir, "00-good.yaml", podYAML("good", "nginx"))
	files := map[string][]string{}
	for i, tc := range badManifests {
		path := writeManifest(t, dir, fmt.Sprintf("%02d-%s.yaml", i+1, strings.ReplaceAll(tc.name, " ", "-")), tc.manifest)
		files[path] = tc.want
	}
	// The tenth kind: a duplicate pod name.
	dup := writeManifest(t, dir, "99-duplicate.yaml", podYAML("good", "busybox"))
	files[dup] = []string{`duplicate pod "default/good-node-1": already defined in ` + filepath.Join(dir, "00-good.yaml")}

	u := s.scan()
	wantSnapshot(t, u, []string{"default/good-node-1"}, len(files))
	for _, e := range u.Errors {
		want, ok := files[e.File]
		if !ok {
			t.Errorf("unexpected error for %s: %s", e.File, e.Error)
			continue
		}
		for _, w := range want {
			if !strings.Contains(e.Error, w) {
				t.Errorf("%s: error %q does not contain %q", filepath.Base(e.File), e.Error, w)
			}
		}
	}
}

func TestStaticSourceDuplicates(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := newTestSource(t, dir)
	writeManifest(t, dir, "b.yaml", podYAML("web", "nginx"))
	writeManifest(t, dir, "a.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`)
	writeManifest(t, dir, "c.yaml", strings.Replace(podYAML("web", "nginx"), "  name: web\n", "  name: web\n  namespace: other\n", 1))

	u := s.scan()
	wantSnapshot(t, u, []string{"default/web-node-1", "other/web-node-1"}, 1)
	if img := u.Pods[0].Spec.Containers[0].Image; img != "busybox" {
		t.Errorf("the pod of a.json (first by file name) should win, got image %s", img)
	}
	want := ManifestError{File: filepath.Join(dir, "b.yaml"), Error: `duplicate pod "default/web-node-1": already defined in ` + filepath.Join(dir, "a.json")}
	if len(u.Errors) == 1 && u.Errors[0] != want {
		t.Errorf("error = %+v, want %+v", u.Errors[0], want)
	}

	// The winner goes: the other file's pod takes its place.
	if err := os.Remove(filepath.Join(dir, "a.json")); err != nil {
		t.Fatal(err)
	}
	u = s.scan()
	wantSnapshot(t, u, []string{"default/web-node-1", "other/web-node-1"}, 0)
	if img := u.Pods[0].Spec.Containers[0].Image; img != "nginx" {
		t.Errorf("image = %s, want b.yaml's", img)
	}
}

func TestStaticSourceFileSelection(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	s, _, _ := newTestSource(t, dir)

	writeManifest(t, dir, "z.yaml", podYAML("alpha", "nginx")) // sorted by file, not by pod name
	writeManifest(t, dir, "m", podYAML("no-extension", "nginx"))
	if err := os.WriteFile(filepath.Join(dir, ".hidden.yaml"), []byte(podYAML("hidden", "nginx")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".swp"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeManifest(t, filepath.Join(dir, "sub"), "nested.yaml", podYAML("nested", "nginx"))
	target := writeManifest(t, outside, "linked.yaml", podYAML("linked", "nginx"))
	if err := os.Symlink(target, filepath.Join(dir, "a-link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "dir-link")); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.yaml")
	if err := os.Symlink(filepath.Join(outside, "nope.yaml"), dangling); err != nil {
		t.Fatal(err)
	}

	u := s.scan()
	wantSnapshot(t, u, []string{"default/linked-node-1", "default/no-extension-node-1", "default/alpha-node-1"}, 1)
	if len(u.Errors) == 1 && (u.Errors[0].File != dangling || !strings.Contains(u.Errors[0].Error, "cannot read")) {
		t.Errorf("error = %+v, want a read error for %s", u.Errors[0], dangling)
	}
}

func TestStaticSourceLimits(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := newTestSource(t, dir)
	long := strings.Repeat("a", 253-len("-node-1")+1)
	writeManifest(t, dir, "long.yaml", podYAML(long, "nginx"))
	huge := writeManifest(t, dir, "huge.yaml", podYAML("huge", "nginx")+"#"+strings.Repeat("x", maxManifestBytes))
	u := s.scan()
	wantSnapshot(t, u, nil, 2)
	for _, e := range u.Errors {
		want := `the static pod name "` + long + `-node-1" (name-node) is 254 characters, more than 253`
		if e.File == huge {
			want = "larger than the limit of 1048576 bytes"
		}
		if !strings.Contains(e.Error, want) {
			t.Errorf("%s: %q does not contain %q", e.File, e.Error, want)
		}
	}
	writeManifest(t, dir, "long.yaml", podYAML(long[1:], "nginx")) // exactly 253
	if u := s.scan(); len(u.Pods) != 1 {
		t.Errorf("a 253-character static pod name was rejected: %v", u.Errors)
	}
}

func TestStaticSourceDirectoryRemoved(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, _, _ := newTestSource(t, dir)
	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx"))
	wantSnapshot(t, s.scan(), []string{"default/web-node-1"}, 0)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	u := s.scan()
	wantSnapshot(t, u, nil, 1)
	if len(u.Errors) == 1 && (u.Errors[0].File != dir || !strings.Contains(u.Errors[0].Error, "does not exist")) {
		t.Errorf("error = %+v", u.Errors[0])
	}

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx"))
	wantSnapshot(t, s.scan(), []string{"default/web-node-1"}, 0)
}

func TestSnapshotChanged(t *testing.T) {
	pod := func(uid string) *v1.Pod { p := &v1.Pod{}; p.UID = types.UID(uid); return p }
	base := SourceUpdate{Pods: []*v1.Pod{pod("a"), pod("b")}, Errors: []ManifestError{{File: "f", Error: "e"}}}
	same := SourceUpdate{Pods: []*v1.Pod{pod("a"), pod("b")}, Errors: []ManifestError{{File: "f", Error: "e"}}}
	if snapshotChanged(base, same) {
		t.Errorf("equal snapshots reported as changed")
	}
	for name, other := range map[string]SourceUpdate{
		"pod replaced": {Pods: []*v1.Pod{pod("a"), pod("c")}, Errors: base.Errors},
		"pod removed":  {Pods: []*v1.Pod{pod("a")}, Errors: base.Errors},
		"error text":   {Pods: base.Pods, Errors: []ManifestError{{File: "f", Error: "other"}}},
		"error gone":   {Pods: base.Pods},
	} {
		if !snapshotChanged(base, other) {
			t.Errorf("%s: not reported as changed", name)
		}
	}
}

// Run tests: the source runs in its goroutine with a fake clock; the test waits on the channel
// (with generous timeouts, never fixed sleeps) and steps the clock to fire the debounce timer.

type runningSource struct {
	out    chan SourceUpdate
	cancel context.CancelFunc
	done   chan struct{}
}

func startSource(t *testing.T, s *staticSource) *runningSource {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningSource{out: make(chan SourceUpdate), cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); s.Run(ctx, r.out) }()
	t.Cleanup(r.stop)
	return r
}

func (r *runningSource) stop() {
	r.cancel()
	<-r.done
}

const waitTimeout = 10 * time.Second

// next waits for a snapshot that satisfies ok, stepping the fake clock by step (if not zero)
// every few milliseconds meanwhile. Snapshots that do not satisfy ok are skipped.
func (r *runningSource) next(t *testing.T, fc *clocktesting.FakeClock, step time.Duration, ok func(SourceUpdate) bool) SourceUpdate {
	t.Helper()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case u := <-r.out:
			if ok(u) {
				return u
			}
		case <-tick.C:
			if step > 0 {
				fc.Step(step)
			}
		case <-deadline:
			t.Fatalf("no matching snapshot within %s", waitTimeout)
		}
	}
}

// none checks that no snapshot comes while the fake clock is stepped a few more times.
func (r *runningSource) none(t *testing.T, fc *clocktesting.FakeClock, step time.Duration) {
	t.Helper()
	for range 10 {
		fc.Step(step)
		select {
		case u := <-r.out:
			t.Fatalf("unexpected snapshot: pods %v, errors %v", podNames(u), u.Errors)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func hasPods(names ...string) func(SourceUpdate) bool {
	return func(u SourceUpdate) bool { return fmt.Sprint(podNames(u)) == fmt.Sprint(names) }
}

func TestStaticSourceRunInitialSnapshot(t *testing.T) {
	s, _, _ := newTestSource(t, t.TempDir())
	r := startSource(t, s)
	select {
	case u := <-r.out:
		wantSnapshot(t, u, nil, 0)
		if u.Pods == nil || u.Errors == nil {
			t.Errorf("empty snapshot with nil slices: %+v", u)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no initial snapshot")
	}
	r.stop() // returns promptly
}

func TestStaticSourceRunStopsWhileSending(t *testing.T) {
	s, _, _ := newTestSource(t, t.TempDir())
	r := startSource(t, s) // nobody reads r.out
	r.stop()
}

func TestStaticSourceRunWatch(t *testing.T) {
	dir := t.TempDir()
	s, fc, _ := newTestSource(t, dir)
	s.rescan = time.Hour // only fsnotify can bring changes within the test
	r := startSource(t, s)
	wantSnapshot(t, <-r.out, nil, 0)

	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx"))
	r.next(t, fc, s.debounce, hasPods("default/web-node-1"))

	writeManifest(t, dir, "bad.yaml", "kind: Deployment\n")
	u := r.next(t, fc, s.debounce, func(u SourceUpdate) bool { return len(u.Errors) == 1 })
	wantSnapshot(t, u, []string{"default/web-node-1"}, 1)

	if err := os.Remove(filepath.Join(dir, "bad.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	r.next(t, fc, s.debounce, func(u SourceUpdate) bool { return len(u.Pods) == 0 && len(u.Errors) == 0 })
}

// TestStaticSourceRunDebounce writes a file in two steps, as an editor might: the scan waits for
// the burst to end, so the half-written file is never seen and one snapshot comes.
func TestStaticSourceRunDebounce(t *testing.T) {
	dir := t.TempDir()
	s, fc, _ := newTestSource(t, dir)
	s.rescan = time.Hour
	r := startSource(t, s)
	wantSnapshot(t, <-r.out, nil, 0)

	path := filepath.Join(dir, "web.yaml")
	content := podYAML("web", "nginx")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content[:20]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content[20:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	u := r.next(t, fc, s.debounce, func(SourceUpdate) bool { return true })
	wantSnapshot(t, u, []string{"default/web-node-1"}, 0)
	r.none(t, fc, s.debounce)
}

// TestStaticSourceRunRescan plays lost events: without a watch, the periodic rescan finds changes.
func TestStaticSourceRunRescan(t *testing.T) {
	dir := t.TempDir()
	s, fc, _ := newTestSource(t, dir)
	s.watch = false
	r := startSource(t, s)
	wantSnapshot(t, <-r.out, nil, 0)

	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx"))
	fc.Step(s.rescan)
	select {
	case u := <-r.out:
		wantSnapshot(t, u, []string{"default/web-node-1"}, 0)
	case <-time.After(waitTimeout):
		t.Fatal("the rescan did not find the new file")
	}

	// Nothing changed: rescans send nothing.
	r.none(t, fc, s.rescan)

	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx:1.27"))
	fc.Step(s.rescan)
	select {
	case u := <-r.out:
		wantSnapshot(t, u, []string{"default/web-node-1"}, 0)
		if img := u.Pods[0].Spec.Containers[0].Image; img != "nginx:1.27" {
			t.Errorf("image = %s", img)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the rescan did not find the edit")
	}
}

// TestStaticSourceRunDirectoryRecreated: the watch goes with a removed directory; the rescan
// notices the directory coming back, watches it again, and events work again.
func TestStaticSourceRunDirectoryRecreated(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx"))
	s, fc, logs := newTestSource(t, dir)
	s.rescan = time.Hour // stepping by the debounce never reaches it within the test
	r := startSource(t, s)
	wantSnapshot(t, <-r.out, []string{"default/web-node-1"}, 0)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r.next(t, fc, s.debounce, func(u SourceUpdate) bool { return len(u.Pods) == 0 && len(u.Errors) == 1 })

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fc.Step(s.rescan) // finds the empty directory and watches it again
	r.next(t, fc, 0, func(u SourceUpdate) bool { return len(u.Pods) == 0 && len(u.Errors) == 0 })

	writeManifest(t, dir, "web.yaml", podYAML("web", "nginx")) // seen through the new watch
	r.next(t, fc, s.debounce, hasPods("default/web-node-1"))
	if strings.Contains(logs.String(), "cannot watch") {
		t.Errorf("a missing directory was logged as a watch failure:\n%s", logs)
	}
}
