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

// isMountPoint reports whether path is the root of a mount. statx says so in one call (Linux 5.8
// and later); before that, a device different from the parent's says so, and mountinfo is read for
// bind mounts of a directory of the same filesystem.
func isMountPoint(path string) (bool, error) {
	if root, known, err := statxMountRoot(path); err != nil || known {
		return root, err
	}
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

// useStatx is false in tests that check the mountinfo way on a kernel that has both.
var useStatx = true

// statxMountRoot asks the kernel whether path (a symlink itself, not its target) is the root of a
// mount. known is false when the kernel does not say (STATX_ATTR_MOUNT_ROOT came in Linux 5.8).
func statxMountRoot(path string) (root, known bool, err error) {
	if !useStatx {
		return false, false, nil
	}
	var stx unix.Statx_t
	// The attributes come whatever the mask; STATX_TYPE is the least one can ask.
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx); err != nil {
		return false, false, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, false, nil
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, true, nil
}

// maxStacked bounds the unmounts of one path: mounts stacked deeper than this are not Berth's.
const maxStacked = 16

// unmountWalk unmounts every mount at or under dir, asking statx of each entry on the way down
// whether it is the root of a mount: the cost is the entries under dir, not the mounts of the
// host (mountinfo lists every mount of the node, and reading it for each pod made a node of n pods
// pay n² for their teardowns). known is false, with nothing done, when the kernel does not say
// which entries are mount roots (before Linux 5.8).
func unmountWalk(dir string) (known bool, err error) {
	if _, known, err := statxMountRoot(dir); err != nil || !known {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return known, err
	}
	return true, unmountAt(unix.AT_FDCWD, dir, dir)
}

// unmountAt unmounts every mount at or under the entry name of the directory dirfd; shown is its
// path, for errors. It goes down with file descriptors and never follows a symlink: the entries
// under a pod's volumes are the containers' to make, and a directory swapped for a symlink to /
// between two looks must not turn the walk into one of the host. A mount is unmounted before the
// walk goes into it (a tmpfs volume's files are never read), and what it hid is walked then.
func unmountAt(dirfd int, name, shown string) error {
	var stx unix.Statx_t
	for i := 0; ; i++ {
		if err := unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &os.PathError{Op: "statx", Path: shown, Err: err}
		}
		if stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			break
		}
		if i == maxStacked {
			return fmt.Errorf("%s is still a mount point after %d unmounts", shown, maxStacked)
		}
		if err := unmountEntry(dirfd, name, shown); err != nil {
			return err
		}
	}
	if stx.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil // gone, or no longer a directory: nothing to walk
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: shown, Err: err}
	}
	f := os.NewFile(uintptr(fd), shown)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := unmountAt(fd, n, shown+"/"+n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountEntry unmounts the top mount on the entry name of dirfd through a descriptor of it:
// /proc/self/fd/N names that very mount, whatever becomes of the path meanwhile. The descriptor
// itself keeps the mount busy, so it is detached (MNT_DETACH): gone from the tree at once, freed
// when the descriptor is closed, or later if a process of the host still uses it (the mountinfo
// way detaches those too).
func unmountEntry(dirfd int, name, shown string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: shown, Err: err}
	}
	defer unix.Close(fd)
	err = unix.Unmount(fmt.Sprintf("/proc/self/fd/%d", fd), unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: no longer a mount's root
		return fmt.Errorf("unmount %s: %w", shown, err)
	}
	return nil
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
// then removes it. It never removes through a mount: if any is left, it fails instead. The mounts
// are found by walking the directory (unmountWalk), or from mountinfo on kernels before 5.8.
func RemovePodDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	known, err := unmountWalk(dir)
	if !known && err == nil {
		err = UnmountAll(dir)
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
