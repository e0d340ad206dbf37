package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// errSubPathEscapes is returned when a subPath leads out of its volume (through a symlink).
var errSubPathEscapes = errors.New("leads outside the volume")

// openBeneath opens path (relative) inside the directory root as an O_PATH descriptor, resolving
// every symlink with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): a symlink, absolute or
// relative, that would lead out of root makes it fail with errSubPathEscapes, whatever a container
// wrote into the volume. A symlink that stays inside is followed.
func openBeneath(rootFd int, path string) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(rootFd, path, how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue // a rename raced the walk: the kernel asks to try again
		case errors.Is(err, unix.EXDEV):
			return -1, errSubPathEscapes
		}
		return -1, err
	}
}

// resolveSubPath opens subPath inside the volume directory root, creating the missing directories
// on the way (0755, as the kubelet does: a subPath names a directory unless it exists as a file).
// The caller closes the returned O_PATH descriptor, which pins what was checked.
func resolveSubPath(root, subPath string) (int, error) {
	if err := checkRelativePath(subPath); err != nil {
		return -1, err
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rootFd)
	subPath = filepath.Clean(subPath)
	fd, err := openBeneath(rootFd, subPath)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		if errors.Is(err, errSubPathEscapes) {
			return -1, fmt.Errorf("subPath %q %w", subPath, err)
		}
		return fd, err
	}
	// Create what is missing, one element at a time, each inside a directory checked to be within
	// the volume; mkdirat with a plain name never follows a symlink.
	parts := strings.Split(subPath, "/")
	dirFd, err := unix.Dup(rootFd)
	if err != nil {
		return -1, err
	}
	for i, name := range parts {
		if name == "." || name == "" {
			continue
		}
		if err := unix.Mkdirat(dirFd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(dirFd)
			return -1, fmt.Errorf("create subPath %q: %w", strings.Join(parts[:i+1], "/"), err)
		}
		next, err := openBeneath(rootFd, strings.Join(parts[:i+1], "/"))
		unix.Close(dirFd)
		if err != nil {
			if errors.Is(err, errSubPathEscapes) {
				return -1, fmt.Errorf("subPath %q %w", subPath, err)
			}
			return -1, err
		}
		dirFd = next
	}
	return dirFd, nil
}

// bindSubPath makes target a bind mount of what fd (from resolveSubPath) refers to: the mount
// source is the descriptor itself (/proc/self/fd/N), so the mount is of the checked file or
// directory even if the volume's symlinks changed since. target is created as a file or a
// directory to match; a bind mount already there (an earlier instance of the container) is
// replaced.
func bindSubPath(fd int, target string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return err
	}
	if mounted, err := isMountPoint(target); err == nil && mounted {
		if err := UnmountAll(target); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		if isDir {
			err = os.Mkdir(target, 0o750)
		} else {
			var f *os.File
			if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640); err == nil {
				f.Close()
			}
		}
		if err != nil {
			return err
		}
	}
	src := fmt.Sprintf("/proc/self/fd/%d", fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount subPath onto %s: %w", target, err)
	}
	return nil
}
