package volumes

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func readVolume(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		err := filepath.Walk(filepath.Join(dir, e.Name()), func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Stat(p) // through the symlinks, as a reader does
			if err != nil {
				return err
			}
			if fi.IsDir() {
				if p == filepath.Join(dir, e.Name()) && info.Mode()&os.ModeSymlink != 0 {
					return filepath.Walk(p+"/", func(q string, qi os.FileInfo, err error) error {
						if err != nil || qi.IsDir() {
							return err
						}
						b, err := os.ReadFile(q)
						rel, _ := filepath.Rel(dir, filepath.Clean(q))
						out[rel] = string(b)
						return err
					})
				}
				return nil
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	v1 := map[string]File{
		"a":       {Data: []byte("one"), Mode: 0o644},
		"sub/b":   {Data: []byte("two"), Mode: 0o600},
		"sub/c/d": {Data: []byte("three"), Mode: 0o400},
	}
	changed, err := WriteAtomic(dir, v1, t0)
	if err != nil || !changed {
		t.Fatalf("first write: changed %v err %v", changed, err)
	}
	got := readVolume(t, dir)
	want := map[string]string{"a": "one", "sub/b": "two", "sub/c/d": "three"}
	if len(got) != len(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The layout: ..data points at a timestamped directory; top-level names are symlinks into it.
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(data, "..2026_11_27_02_00_00.") {
		t.Errorf("..data -> %q (%v)", data, err)
	}
	for _, name := range []string{"a", "sub"} {
		if l, err := os.Readlink(filepath.Join(dir, name)); err != nil || l != "..data/"+name {
			t.Errorf("%s -> %q (%v), want ..data/%s", name, l, err, name)
		}
	}
	for p, f := range v1 {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.Mode().Perm() != f.Mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, f.Mode)
		}
	}

	// The same content again: nothing is written.
	if changed, err := WriteAtomic(dir, v1, t0.Add(time.Minute)); err != nil || changed {
		t.Errorf("same content: changed %v err %v", changed, err)
	}
	// A mode change alone is a change.
	v1b := map[string]File{"a": {Data: []byte("one"), Mode: 0o640}, "sub/b": v1["sub/b"], "sub/c/d": v1["sub/c/d"]}
	if changed, err := WriteAtomic(dir, v1b, t0.Add(2*time.Minute)); err != nil || !changed {
		t.Errorf("mode change: changed %v err %v", changed, err)
	}

	// An update that drops sub/ and adds e: the old version and the stale symlink go.
	v2 := map[string]File{"a": {Data: []byte("uno"), Mode: 0o644}, "e": {Data: []byte("new"), Mode: 0o644}}
	if changed, err := WriteAtomic(dir, v2, t0.Add(3*time.Minute)); err != nil || !changed {
		t.Fatalf("update: changed %v err %v", changed, err)
	}
	got = readVolume(t, dir)
	if len(got) != 2 || got["a"] != "uno" || got["e"] != "new" {
		t.Errorf("after update: %v", got)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	data2, _ := os.Readlink(filepath.Join(dir, "..data"))
	wantNames := []string{data2, "..data", "a", "e"}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("directory holds %v, want %v (old versions and stale names removed)", names, wantNames)
	}

	// Empty: only the layout stays.
	if _, err := WriteAtomic(dir, map[string]File{}, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, dir); len(got) != 0 {
		t.Errorf("after emptying: %v", got)
	}
}

func TestWriteAtomicRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"/abs", "../up", "a/../../b", "..hidden", "", "a//b"} {
		if _, err := WriteAtomic(t.TempDir(), map[string]File{p: {Data: []byte("x"), Mode: 0o644}}, time.Now()); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

// TestWriteAtomicReaderNeverSeesAMix: a reader resolving ..data once and reading two files through
// it always sees the same version in both, while versions are swapped under it.
func TestWriteAtomicReaderNeverSeesAMix(t *testing.T) {
	dir := t.TempDir()
	version := func(n int) map[string]File {
		v := strings.Repeat(string(rune('a'+n%26)), 4096)
		return map[string]File{"x": {Data: []byte(v), Mode: 0o644}, "y": {Data: []byte(v), Mode: 0o644}}
	}
	if _, err := WriteAtomic(dir, version(0), time.Now()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var bad []string
	reads := 0
	go func() {
		defer close(done)
		for i := 0; i < 5000; i++ {
			d, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				bad = append(bad, "readlink: "+err.Error())
				return
			}
			x, errX := os.ReadFile(filepath.Join(dir, d, "x"))
			y, errY := os.ReadFile(filepath.Join(dir, d, "y"))
			if errX != nil || errY != nil {
				continue // that version was removed meanwhile: read again
			}
			reads++
			if string(x) != string(y) {
				bad = append(bad, "mixed versions")
			}
			// A read through the user-visible name is one whole version.
			// (ENOENT is possible: the version resolved was removed before the open; read again.)
			z, err := os.ReadFile(filepath.Join(dir, "x"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				bad = append(bad, "read: "+err.Error())
			} else if err == nil && (len(z) != 4096 || strings.Count(string(z), string(z[0])) != 4096) {
				bad = append(bad, "torn file")
			}
		}
	}()
	for n := 1; ; n++ {
		select {
		case <-done:
			if len(bad) > 0 {
				t.Fatalf("%d problems, first: %s", len(bad), bad[0])
			}
			if reads == 0 || n < 10 {
				t.Fatalf("reads %d, writes %d: the test exercised nothing", reads, n)
			}
			return
		default:
		}
		if _, err := WriteAtomic(dir, version(n), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}
