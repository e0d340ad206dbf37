package eviction

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHostMemory(t *testing.T) {
	meminfo := "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    5000000 kB\n"
	t.Run("cgroup v1: root usage minus total_inactive_file", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{
			"proc/meminfo": meminfo,
			"sys/fs/cgroup/memory/memory.usage_in_bytes": "3000000000\n",
			"sys/fs/cgroup/memory/memory.stat":           "cache 5\ninactive_file 7\ntotal_inactive_file 1000000000\ntotal_rss 2\n",
		})
		capacity, ws, err := HostMemory{Root: root}.ReadMemory()
		if err != nil {
			t.Fatal(err)
		}
		if capacity != 8000000*1024 || ws != 2000000000 {
			t.Errorf("capacity %d working set %d, want %d and %d", capacity, ws, 8000000*1024, 2000000000)
		}
	})
	t.Run("cgroup v2: MemTotal - MemFree - inactive_file", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{
			"proc/meminfo":              meminfo,
			"sys/fs/cgroup/memory.stat": "anon 1\ninactive_file 1024000000\n",
		})
		capacity, ws, err := HostMemory{Root: root}.ReadMemory()
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(7000000*1024 - 1024000000); capacity != 8000000*1024 || ws != want {
			t.Errorf("capacity %d working set %d, want %d and %d", capacity, ws, 8000000*1024, want)
		}
	})
	t.Run("no meminfo", func(t *testing.T) {
		if _, _, err := (HostMemory{Root: t.TempDir()}).ReadMemory(); err == nil {
			t.Error("no error without /proc/meminfo")
		}
	})
}

// The host readers on the real machine: sane values, not a failure.
func TestHostReaders(t *testing.T) {
	capacity, ws, err := HostMemory{Root: "/"}.ReadMemory()
	if err != nil || capacity <= 0 || ws <= 0 || ws > capacity {
		t.Errorf("memory: capacity %d working set %d err %v", capacity, ws, err)
	}
	fs, err := Statfs{}.ReadFs(t.TempDir())
	if err != nil || fs.CapacityBytes <= 0 || fs.AvailableBytes > fs.CapacityBytes {
		t.Errorf("statfs: %+v err %v", fs, err)
	}
	maxPIDs, running, err := HostPIDs{}.ReadPIDs()
	if err != nil || maxPIDs <= 0 || running <= 0 || running > maxPIDs {
		t.Errorf("pids: max %d running %d err %v", maxPIDs, running, err)
	}
}

type fakeMemory struct {
	capacity, ws int64
	err          error
}

func (f *fakeMemory) ReadMemory() (int64, int64, error) { return f.capacity, f.ws, f.err }

type fakeFs map[string]FsStats

func (f fakeFs) ReadFs(path string) (FsStats, error) {
	st, ok := f[path]
	if !ok {
		return FsStats{}, errors.New("no such filesystem " + path)
	}
	return st, nil
}

type fakeImageFs struct {
	path string
	err  error
}

func (f fakeImageFs) ImageFsPath(context.Context) (string, error) { return f.path, f.err }

type fakePIDs struct{ max, running int64 }

func (f fakePIDs) ReadPIDs() (int64, int64, error) { return f.max, f.running, nil }

func TestObserve(t *testing.T) {
	fs := fakeFs{
		"/var/lib/berth":  {CapacityBytes: 100 << 30, AvailableBytes: 40 << 30, Inodes: 1000, InodesFree: 30},
		"/var/lib/images": {CapacityBytes: 50 << 30, AvailableBytes: 5 << 30, Inodes: 0}, // no inode counts
	}
	r := SignalReaders{
		Memory:  &fakeMemory{capacity: 8 << 30, ws: 7 << 30},
		Fs:      fs,
		ImageFs: fakeImageFs{path: "/var/lib/images"},
		PIDs:    fakePIDs{max: 32768, running: 32000},
		RootDir: "/var/lib/berth",
	}
	obs, err := r.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[Signal][2]int64{
		SignalMemoryAvailable:  {1 << 30, 8 << 30},
		SignalNodeFsAvailable:  {40 << 30, 100 << 30},
		SignalNodeFsInodesFree: {30, 1000},
		SignalImageFsAvailable: {5 << 30, 50 << 30},
		SignalPIDAvailable:     {768, 32768},
	}
	if len(obs) != len(want) {
		t.Errorf("observed %v, want %d signals (no imagefs.inodesFree without inode counts)", obs, len(want))
	}
	for s, w := range want {
		o, ok := obs[s]
		if !ok || o.Available.Value() != w[0] || o.Capacity.Value() != w[1] {
			t.Errorf("%s: %+v, want available %d of %d", s, o, w[0], w[1])
		}
	}
	// The defaults on these observations: memory (1Gi > 100Mi) is fine; imagefs (10% < 15%) and
	// nodefs.inodesFree (3% < 5%) are met.
	ts, _ := ParseThresholds(nil)
	var met []string
	for _, th := range ts {
		if o, ok := obs[th.Signal]; ok && th.Met(o) {
			met = append(met, string(th.Signal))
		}
	}
	if strings.Join(met, ",") != "nodefs.inodesFree,imagefs.available" {
		t.Errorf("met %v", met)
	}

	// A failing reader loses its signal only; without an image filesystem locator imagefs is nodefs.
	r.Memory = &fakeMemory{err: errors.New("cgroup gone")}
	r.ImageFs = nil
	obs, err = r.Observe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "memory.available: cgroup gone") {
		t.Errorf("err %v, want the memory reader's", err)
	}
	if _, ok := obs[SignalMemoryAvailable]; ok {
		t.Error("memory.available observed from a failing reader")
	}
	if o := obs[SignalImageFsAvailable]; o.Capacity.Value() != 100<<30 {
		t.Errorf("imagefs without a locator: %+v, want the nodefs", o)
	}
	// An image filesystem that cannot be found is not observed (never taken for nodefs).
	r.ImageFs = fakeImageFs{err: errors.New("runtime down")}
	obs, err = r.Observe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "imagefs: runtime down") {
		t.Errorf("err %v", err)
	}
	if _, ok := obs[SignalImageFsAvailable]; ok {
		t.Error("imagefs observed although the runtime could not say where it is")
	}
}
