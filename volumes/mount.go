package volumes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountPoints lists the mount points at or under dir, from /proc/self/mountinfo, deepest first.
func mountPoints(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Deepest first, and a path mounted several times appears as often: each unmount removes one.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMountPoint reports whether path is the root of a mount: its device differs from its parent's
// (bind mounts of a directory of the same filesystem are found through mountinfo instead).
func isMountPoint(path string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(path), &parent); err != nil {
		return false, err
	}
	if st.Dev != parent.Dev {
		return true, nil
	}
	mps, err := mountPoints(path)
	if err != nil {
		return false, err
	}
	for _, mp := range mps {
		if mp == filepath.Clean(path) {
			return true, nil
		}
	}
	return false, nil
}

// mountTmpfs mounts a tmpfs on dir unless one is there; size 0 means the kernel's default (half
// of RAM). The tmpfs's root gets mode (permission bits with the sticky bit: 0o1777).
func mountTmpfs(dir string, size int64, mode uint32) error {
	mounted, err := isMountPoint(dir)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	opts := fmt.Sprintf("mode=%o", mode&0o7777)
	if size > 0 {
		opts += fmt.Sprintf(",size=%d", size)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// UnmountAll unmounts every mount at or under dir, deepest first, and checks none is left.
func UnmountAll(dir string) error {
	for range 3 {
		mps, err := mountPoints(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		var errs []error
		for _, mp := range mps {
			if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				// Busy (a process of the host uses it): detach it, it goes once unused.
				if err2 := unix.Unmount(mp, unix.MNT_DETACH); err2 != nil && !errors.Is(err2, unix.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
				}
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	mps, err := mountPoints(dir)
	if err != nil {
		return err
	}
	if len(mps) > 0 {
		return fmt.Errorf("mounts left under %s after unmounting: %s", dir, strings.Join(mps, ", "))
	}
	return nil
}

// RemovePodDir unmounts everything under a pod's directory (tmpfs volumes, subPath bind mounts),
// then removes it. It never removes through a mount: if any is left, it fails instead.
func RemovePodDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := UnmountAll(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
