package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeRuntime has one running container whose log is logPath; ReopenContainerLog makes a new empty
// file there, as containerd does.
type fakeRuntime struct {
	logPath   string
	state     runtimeapi.ContainerState
	reopenErr error
	reopens   int
	statuses  int
	gone      bool // no container listed
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	if f.gone {
		return nil, nil
	}
	return []*runtimeapi.Container{{Id: "c1", State: f.state}}, nil
}

func (f *fakeRuntime) ContainerStatus(context.Context, string) (*runtimeapi.ContainerStatus, error) {
	f.statuses++
	return &runtimeapi.ContainerStatus{Id: "c1", State: f.state, LogPath: f.logPath}, nil
}

func (f *fakeRuntime) ReopenContainerLog(context.Context, string) error {
	if f.reopenErr != nil {
		return f.reopenErr
	}
	f.reopens++
	return os.WriteFile(f.logPath, nil, 0o640)
}

func appendLog(t *testing.T, path string, n int, tag string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Repeat("2026-11-27T02:00:00.000000000Z stdout F "+tag+"\n", n)); err != nil {
		t.Fatal(err)
	}
}

func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "0.log")
	rt := &fakeRuntime{logPath: logPath, state: runtimeapi.ContainerState_CONTAINER_RUNNING}
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))
	r, err := NewRotator(Config{MaxSize: 1000, MaxFiles: 4, Runtime: rt, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	appendLog(t, logPath, 5, "small") // 5 × 46 bytes: under the size
	r.RotateAll(ctx)
	if got := dirFiles(t, dir); len(got) != 1 || rt.reopens != 0 {
		t.Fatalf("under the size: files %v, reopens %d", got, rt.reopens)
	}

	for i := range 6 {
		appendLog(t, logPath, 30, "gen"+string(rune('a'+i)))
		r.RotateAll(ctx)
		clk.Step(time.Second)
		if got := dirFiles(t, dir); len(got) > 4 {
			t.Fatalf("pass %d: %d files, want at most 4: %v", i, len(got), got)
		}
	}
	if rt.reopens != 6 {
		t.Errorf("reopens = %d, want 6", rt.reopens)
	}
	r.RotateAll(ctx) // trims to two rotated files and gzips the older
	got := dirFiles(t, dir)
	want := []string{"0.log", "0.log.20261127-020004.gz", "0.log.20261127-020005"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", got, want)
	}
	// The gzipped file holds the fifth generation, whole.
	f, err := os.Open(filepath.Join(dir, want[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || bytes.Count(b, []byte("gene\n")) != 30 || bytes.Count(b, []byte("\n")) != 30 {
		t.Errorf("gzipped generation: %v, %d lines", err, bytes.Count(b, []byte("\n")))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, want[2])); bytes.Count(b, []byte("genf\n")) != 30 {
		t.Errorf("newest rotated file does not hold the last generation: %q", b[:50])
	}
	if st, _ := os.Stat(logPath); st.Size() != 0 {
		t.Errorf("current file is %d bytes, want the new empty one", st.Size())
	}
}

func TestRotationReopenFailsUndoesRename(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "0.log")
	rt := &fakeRuntime{logPath: logPath, state: runtimeapi.ContainerState_CONTAINER_RUNNING, reopenErr: errors.New("container is not running")}
	r, _ := NewRotator(Config{MaxSize: 10, MaxFiles: 2, Runtime: rt})
	appendLog(t, logPath, 3, "x")
	if err := r.rotate(context.Background(), "c1", &containerLog{path: logPath}); err == nil || !strings.Contains(err.Error(), "reopen") {
		t.Errorf("rotate: %v, want the reopen error", err)
	}
	if got := dirFiles(t, dir); len(got) != 1 || got[0] != "0.log" {
		t.Errorf("files %v, want the log renamed back", got)
	}
}

func TestRotationCleansTmpAndForeignFilesAlone(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "0.log")
	for _, name := range []string{"0.log", "0.log.20261127-010000.gz.tmp", "0.log.backup", "1.log"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	rt := &fakeRuntime{logPath: logPath, state: runtimeapi.ContainerState_CONTAINER_RUNNING}
	r, _ := NewRotator(Config{MaxSize: 1 << 20, MaxFiles: 5, Runtime: rt})
	r.RotateAll(context.Background())
	if got := strings.Join(dirFiles(t, dir), " "); got != "0.log 0.log.backup 1.log" {
		t.Errorf("files %s", got)
	}
}

func TestNewRotatorChecks(t *testing.T) {
	rt := &fakeRuntime{}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxSize: 0, MaxFiles: 5, Runtime: rt}, "containerLogMaxSize must be positive"},
		{Config{MaxSize: 1, MaxFiles: 1, Runtime: rt}, "containerLogMaxFiles must be at least 2"},
		{Config{MaxSize: 1, MaxFiles: 2}, "no runtime"},
	} {
		if _, err := NewRotator(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// The log path is asked of the runtime once per container, and forgotten with the container.
func TestRotationAsksLogPathOnce(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "0.log")
	rt := &fakeRuntime{logPath: logPath, state: runtimeapi.ContainerState_CONTAINER_RUNNING}
	r, _ := NewRotator(Config{MaxSize: 1 << 20, MaxFiles: 3, Runtime: rt})
	ctx := context.Background()
	for range 3 {
		r.RotateAll(ctx)
	}
	if rt.statuses != 1 || len(r.known) != 1 {
		t.Errorf("3 passes: %d ContainerStatus calls, %d known, want 1 and 1", rt.statuses, len(r.known))
	}
	rt.gone = true
	r.RotateAll(ctx)
	if len(r.known) != 0 {
		t.Errorf("container gone, still known: %v", r.known)
	}
	rt.gone = false
	r.RotateAll(ctx)
	if rt.statuses != 2 {
		t.Errorf("container listed again: %d ContainerStatus calls, want 2", rt.statuses)
	}
}
