package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// teardownWays are the two ways RemovePodDir finds the mounts under a pod's directory: the walk
// asking statx (Linux 5.8 and later) and the mountinfo scan kept for older kernels.
var teardownWays = []struct {
	name  string
	statx bool
}{
	{"statx walk", true},
	{"mountinfo", false},
}

// withWay makes RemovePodDir and isMountPoint use one way for the rest of the test.
func withWay(tb testing.TB, statx bool) {
	old := useStatx
	useStatx = statx
	tb.Cleanup(func() { useStatx = old })
	if statx {
		if _, known, err := statxMountRoot("/"); err != nil || !known {
			tb.Skipf("this kernel's statx does not report STATX_ATTR_MOUNT_ROOT (%v): only the mountinfo way runs here", err)
		}
	}
}

func mustMount(t *testing.T, src, target, fstype string, flags uintptr) {
	t.Helper()
	if err := unix.Mount(src, target, fstype, flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", src, target, err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRemovePodDir: every kind of mount a pod's directory can hold is unmounted and the directory
// removed, and nothing outside it — reached through a bind mount or a symlink — is touched.
func TestRemovePodDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts need root")
	}
	for _, way := range teardownWays {
		t.Run(way.name, func(t *testing.T) {
			withWay(t, way.statx)
			outside := t.TempDir()
			pod := filepath.Join(t.TempDir(), "pod")
			t.Cleanup(func() { _ = UnmountAll(outside); _ = UnmountAll(filepath.Dir(pod)) })

			// Host content a pod directory may reach: a directory bind-mounted in (same filesystem,
			// so only a mount table or statx tells), a file bind-mounted in, and a directory with
			// a mount of its own that a container's symlink points at.
			mustWrite(t, filepath.Join(outside, "dir/keep"), "host")
			mustWrite(t, filepath.Join(outside, "file"), "host file")
			if err := os.MkdirAll(filepath.Join(outside, "mounted"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustMount(t, "tmpfs", filepath.Join(outside, "mounted"), "tmpfs", 0)
			mustWrite(t, filepath.Join(outside, "mounted/keep"), "host tmpfs")

			tok := filepath.Join(pod, "volumes/kubernetes.io~projected/tok")
			mem := filepath.Join(pod, "volumes/kubernetes.io~empty-dir/mem")
			sub := filepath.Join(pod, "volume-subpaths/v/c/0")
			subFile := filepath.Join(pod, "volume-subpaths/v/c/1")
			for _, d := range []string{tok, mem, sub} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mustWrite(t, subFile, "")
			// A tmpfs volume, mounted twice (stacked) with files in both.
			mustMount(t, "tmpfs", tok, "tmpfs", 0)
			mustWrite(t, filepath.Join(tok, "token"), "lower")
			mustMount(t, "tmpfs", tok, "tmpfs", 0)
			mustWrite(t, filepath.Join(tok, "token"), "upper")
			// A tmpfs with a mount inside it.
			mustMount(t, "tmpfs", mem, "tmpfs", 0)
			if err := os.MkdirAll(filepath.Join(mem, "inner"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustMount(t, "tmpfs", filepath.Join(mem, "inner"), "tmpfs", 0)
			mustWrite(t, filepath.Join(mem, "inner/f"), "x")
			// subPath bind mounts of host content, a directory and a file.
			mustMount(t, filepath.Join(outside, "dir"), sub, "", unix.MS_BIND)
			mustMount(t, filepath.Join(outside, "file"), subFile, "", unix.MS_BIND)
			// What a container could leave in an emptyDir: a symlink to a host directory that holds
			// a mount. The walk must not follow it (nor unmount what it points at).
			if err := os.Symlink(outside, filepath.Join(mem, "inner", "to-host")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(pod, "to-host")); err != nil {
				t.Fatal(err)
			}
			if mps, _ := mountPoints(pod); len(mps) != 6 {
				t.Fatalf("mounts set up: %v, want 6", mps)
			}
			for _, p := range []string{tok, mem, sub, subFile} {
				if ok, err := isMountPoint(p); err != nil || !ok {
					t.Errorf("isMountPoint(%s) = %v, %v; want true", p, ok, err)
				}
			}
			if ok, err := isMountPoint(filepath.Join(pod, "volumes")); err != nil || ok {
				t.Errorf("isMountPoint(volumes) = %v, %v; want false", ok, err)
			}

			if err := RemovePodDir(pod); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(pod); !os.IsNotExist(err) {
				t.Errorf("pod directory still there (%v)", err)
			}
			if mps, _ := mountPoints(pod); len(mps) != 0 {
				t.Errorf("mounts left: %v", mps)
			}
			for p, want := range map[string]string{"dir/keep": "host", "file": "host file", "mounted/keep": "host tmpfs"} {
				if b, err := os.ReadFile(filepath.Join(outside, p)); err != nil || string(b) != want {
					t.Errorf("host content %s: %q, %v; want %q", p, b, err, want)
				}
			}
			if ok, err := isMountPoint(filepath.Join(outside, "mounted")); err != nil || !ok {
				t.Errorf("the host's own mount was unmounted (%v)", err)
			}
			if err := RemovePodDir(pod); err != nil { // gone already: nothing to do
				t.Errorf("second RemovePodDir: %v", err)
			}
		})
	}
}

// BenchmarkRemovePodDir: a pod's teardown with 200 other mounts on the host (the node's other
// pods). The mountinfo way reads all of them for each pod; the statx walk only the pod's entries.
func BenchmarkRemovePodDir(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("mounts need root")
	}
	others := b.TempDir()
	b.Cleanup(func() { _ = UnmountAll(others) })
	for i := range 200 {
		d := filepath.Join(others, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, ""); err != nil {
			b.Fatal(err)
		}
	}
	for _, way := range teardownWays {
		b.Run(way.name, func(b *testing.B) {
			withWay(b, way.statx)
			base := b.TempDir()
			for i := 0; b.Loop(); i++ {
				b.StopTimer() // the setup is not what is measured
				pod := filepath.Join(base, fmt.Sprint(i))
				tok := filepath.Join(pod, "volumes/kubernetes.io~projected/tok")
				if err := os.MkdirAll(tok, 0o755); err != nil {
					b.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(pod, "containers/app"), 0o755); err != nil {
					b.Fatal(err)
				}
				if err := unix.Mount("tmpfs", tok, "tmpfs", 0, ""); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := RemovePodDir(pod); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
