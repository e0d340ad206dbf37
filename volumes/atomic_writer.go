package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File is one file of a volume built from API data (configMap, secret, downwardAPI, projected):
// its content and permission bits.
type File struct {
	Data []byte
	Mode fs.FileMode
}

// The atomic writer's layout of a volume directory, the kubelet's:
//
//	<dir>/..2026_11_27_02_10_00.123456789   one complete version of the files (timestamped)
//	<dir>/..data -> ..2026_11_27_02_10_00.123456789
//	<dir>/<key>  -> ..data/<key>           one symlink per top-level name, created once
//
// An update writes a new timestamped directory, points a temporary symlink at it and renames the
// symlink over ..data: one rename(2), so a reader that opens <dir>/<key> gets either the old or the
// new version of the file, never a mix or a half-written file. The old directory is removed after
// the swap; a reader that resolved ..data before the swap and opens a file after the removal sees
// ENOENT and reads again.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// WriteAtomic makes dir hold exactly files (paths relative to dir), through the layout above. It
// does nothing when the current version already has the same files, contents and modes, and
// reports whether it wrote a new version. dir must exist.
func WriteAtomic(dir string, files map[string]File, now time.Time) (changed bool, err error) {
	for p := range files {
		if err := checkRelativePath(p); err != nil {
			return false, fmt.Errorf("file path: %w", err)
		}
		if filepath.Clean(p) != p {
			return false, fmt.Errorf("file path %q is not clean", p)
		}
	}
	oldName, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if oldName != "" && sameFiles(filepath.Join(dir, oldName), files) {
		return false, nil
	}

	// 1. The new version, complete, in a directory of its own.
	tsDir, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		os.RemoveAll(tsDir)
		return false, err
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		f := files[p]
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			os.RemoveAll(tsDir)
			return false, err
		}
		if err := os.WriteFile(full, f.Data, f.Mode.Perm()); err != nil {
			os.RemoveAll(tsDir)
			return false, err
		}
		// WriteFile's mode goes through the umask, and not at all when the file exists.
		if err := os.Chmod(full, f.Mode.Perm()); err != nil {
			os.RemoveAll(tsDir)
			return false, err
		}
	}

	// 2. The swap: ..data_tmp -> new, renamed over ..data.
	tmpLink := filepath.Join(dir, newDataDirName)
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		os.RemoveAll(tsDir)
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		os.Remove(tmpLink)
		os.RemoveAll(tsDir)
		return false, err
	}

	// 3. The user-visible names: a symlink into ..data for each top-level name, and none for
	// names that are gone.
	top := map[string]bool{}
	for p := range files {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataDirName, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return true, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || top[name] {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}

	// 4. The old version, and any version a crash left behind.
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") && name != dataDirName && name != newDataDirName && name != filepath.Base(tsDir) && e.IsDir() {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return true, err
			}
		}
	}
	return true, nil
}

// sameFiles reports whether dir holds exactly files, with the same contents and modes.
func sameFiles(dir string, files map[string]File) bool {
	n := 0
	same := true
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, ok := files[rel]
		if !ok || !d.Type().IsRegular() {
			same = false
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != f.Mode.Perm() || info.Size() != int64(len(f.Data)) {
			same = false
			return fs.SkipAll
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, f.Data) {
			same = false
			return fs.SkipAll
		}
		n++
		return nil
	})
	return err == nil && same && n == len(files)
}
