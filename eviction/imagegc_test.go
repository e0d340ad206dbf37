package eviction_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
	"github.com/berth-dev/berth/eviction"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

const mib = 1 << 20

// imageFs is a 100 MiB image filesystem holding `base` MiB besides the runtime's images (4 MiB
// each in fakecri).
type imageFs struct {
	rt   *cri.Client
	base int64
}

func (f *imageFs) ReadFs(path string) (eviction.FsStats, error) {
	imgs, err := f.rt.ListImages(context.Background())
	if err != nil {
		return eviction.FsStats{}, err
	}
	used := f.base*mib + int64(len(imgs))*4*mib
	return eviction.FsStats{CapacityBytes: 100 * mib, AvailableBytes: 100*mib - used}, nil
}

func TestImageGCChoice(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := fakecri.New(fakecri.Config{Images: []string{"a:1", "b:1", "c:1", "d:1", "e:1"}, Clock: clk})
	if err := s.Serve(filepath.Join(t.TempDir(), "cri.sock")); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	rt, err := cri.NewClient(cri.ClientConfig{Endpoint: s.Endpoint(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := context.Background()
	fs := &imageFs{rt: rt, base: 0}
	gc, err := eviction.NewImageGC(eviction.ImageGCConfig{
		HighThresholdPercent: 85, LowThresholdPercent: 80, MinimumGCAge: 2 * time.Minute,
		Runtime: rt, Fs: fs, Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}}
	sb, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	container := func(name, image string) string {
		id, err := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: image}}, sbCfg)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	present := func() []string {
		imgs, err := rt.ListImages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range imgs {
			for _, tag := range i.RepoTags {
				out = append(out, strings.TrimPrefix(tag, "docker.io/library/"))
			}
		}
		slices.Sort(out)
		return out
	}

	// t0: a is used by a container; everything is seen for the first time. Usage is low.
	usedA := container("uses-a", "a:1")
	if err := gc.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	// t0+1m: a's container is gone; b is used by a running container, d by an exited one (still in
	// use: its container could be restarted).
	clk.Step(time.Minute)
	if err := rt.RemoveContainer(ctx, usedA); err != nil {
		t.Fatal(err)
	}
	runB := container("uses-b", "b:1")
	if err := rt.StartContainer(ctx, runB); err != nil {
		t.Fatal(err)
	}
	container("uses-d", "d:1") // created, never started
	if err := gc.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	// t0+3m: f arrives (too young to go); the filesystem fills to 64 + 6×4 = 88% ≥ 85%: 8 MiB must
	// go to get back to 80%. The never-used images go first (c, e); a, used a minute after t0,
	// stays; b and d are in use; f is too young.
	clk.Step(2 * time.Minute)
	if _, err := rt.PullImage(ctx, "f:1", sbCfg); err != nil {
		t.Fatal(err)
	}
	fs.base = 64
	if err := gc.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := present(), []string{"a:1", "b:1", "d:1", "f:1"}; !slices.Equal(got, want) {
		t.Fatalf("after the first collection: %v, want %v", got, want)
	}
	// Below the high threshold: nothing goes, even what could.
	fs.base = 60 // 60 + 16 = 76%
	if err := gc.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	if got := present(); len(got) != 4 {
		t.Fatalf("collected below the high threshold: %v", got)
	}
	// 76 + 16 = 92%: 12 MiB must go, only a (4 MiB) may: it goes, and the shortfall is an error
	// with the kubelet's message.
	fs.base = 76
	err = gc.GarbageCollect(ctx)
	if err == nil || !strings.Contains(err.Error(), "Failed to garbage collect required amount of images. Attempted to free 12582912 bytes, but only found 4194304 bytes eligible to free.") {
		t.Errorf("err %v", err)
	}
	if got, want := present(), []string{"b:1", "d:1", "f:1"}; !slices.Equal(got, want) {
		t.Fatalf("after the second collection: %v, want %v", got, want)
	}
	// Disk pressure: every image no container uses and old enough goes (f now is).
	clk.Step(2 * time.Minute)
	if err := gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := present(), []string{"b:1", "d:1"}; !slices.Equal(got, want) {
		t.Fatalf("after DeleteUnusedImages: %v, want %v", got, want)
	}
}

func TestImageGCConfig(t *testing.T) {
	for _, tc := range []struct{ high, low int }{{101, 80}, {85, -1}, {70, 80}} {
		if err := eviction.ValidateImageGC(tc.high, tc.low); err == nil {
			t.Errorf("high %d low %d accepted", tc.high, tc.low)
		}
	}
	if err := eviction.ValidateImageGC(100, 80); err != nil {
		t.Errorf("100/80 (GC off): %v", err)
	}
}

// The runtime's sandbox image is kept even when no container uses it.
func TestImageGCKeepsSandboxImage(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := fakecri.New(fakecri.Config{Images: []string{"registry.k8s.io/pause:3.9", "old:1"}, Clock: clk})
	if err := s.Serve(filepath.Join(t.TempDir(), "cri.sock")); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	rt, err := cri.NewClient(cri.ClientConfig{Endpoint: s.Endpoint(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	gc, err := eviction.NewImageGC(eviction.ImageGCConfig{
		Runtime: rt, Fs: &imageFs{rt: rt, base: 90}, Clock: clk, MinimumGCAge: time.Minute,
		SandboxImage: func(context.Context) (string, error) { return "registry.k8s.io/pause:3.9", nil },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := gc.GarbageCollect(ctx); err == nil {
		t.Error("nothing old enough, yet no shortfall reported")
	}
	clk.Step(2 * time.Minute)
	_ = gc.GarbageCollect(ctx) // 98% used: everything that may go goes, still short
	imgs, err := rt.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].RepoTags[0] != "registry.k8s.io/pause:3.9" {
		t.Errorf("images left: %v, want the sandbox image only", imgs)
	}
}
