package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	v1 "k8s.io/api/core/v1"
)

// CheckHostPath checks a hostPath volume's path against its type before any container uses it, as
// the kubelet does: DirectoryOrCreate creates a missing directory (0755), FileOrCreate a missing
// empty file (0644, not its parent directory); the other types only check. The error reads as the
// kubelet's: "hostPath type check failed: /x is not a directory".
func CheckHostPath(path string, typ v1.HostPathType) error {
	if path == "" {
		return errors.New("hostPath path is empty")
	}
	info, statErr := os.Stat(path)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return fmt.Errorf("hostPath type check failed: %w", statErr)
	}
	failed := func(what string) error {
		return fmt.Errorf("hostPath type check failed: %s is not a %s", path, what)
	}
	switch typ {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fmt.Errorf("hostPath type check failed: cannot create directory %s: %w", path, err)
			}
			// MkdirAll's mode goes through the umask; the kubelet's directory is 0755.
			return os.Chmod(path, 0o755)
		}
		if !info.IsDir() {
			return failed("directory")
		}
	case v1.HostPathDirectory:
		if !exists || !info.IsDir() {
			return failed("directory")
		}
	case v1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("hostPath type check failed: cannot create file %s: %w", path, err)
			}
			f.Close()
			return os.Chmod(path, 0o644)
		}
		if !info.Mode().IsRegular() {
			return failed("file")
		}
	case v1.HostPathFile:
		if !exists || !info.Mode().IsRegular() {
			return failed("file")
		}
	case v1.HostPathSocket:
		if !exists || info.Mode()&fs.ModeSocket == 0 {
			return failed("socket file")
		}
	case v1.HostPathCharDev:
		if !exists || info.Mode()&fs.ModeCharDevice == 0 || info.Mode()&fs.ModeDevice == 0 {
			return failed("character device")
		}
	case v1.HostPathBlockDev:
		if !exists || info.Mode()&fs.ModeDevice == 0 || info.Mode()&fs.ModeCharDevice != 0 {
			return failed("block device")
		}
	default:
		return fmt.Errorf("hostPath type %q is not one of \"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice", typ)
	}
	return nil
}
