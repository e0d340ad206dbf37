package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fdPath is where an O_PATH descriptor points.
func fdPath(t *testing.T, fd int) string {
	t.Helper()
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveSubPath(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "dir/sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "dir/file"), []byte("x"), 0o644))
	must(os.Symlink("dir/sub", filepath.Join(root, "inside")))              // stays inside
	must(os.Symlink("/", filepath.Join(root, "abs")))                       // absolute, out
	must(os.Symlink("../../../../../../..", filepath.Join(root, "rel")))    // relative, out
	must(os.Symlink(outside, filepath.Join(root, "dir/elsewhere")))         // to another directory
	must(os.Symlink("../abs", filepath.Join(root, "dir/chain")))            // through another symlink
	must(os.Symlink("/proc/self/root", filepath.Join(root, "magic")))       // a magic link
	must(os.Symlink(filepath.Join(root, "dir"), filepath.Join(root, "me"))) // absolute, to itself: still refused

	ok := map[string]string{
		"dir":         filepath.Join(root, "dir"),
		"dir/file":    filepath.Join(root, "dir/file"),
		"inside":      filepath.Join(root, "dir/sub"),
		"./dir/sub/":  filepath.Join(root, "dir/sub"),
		"new/a/b":     filepath.Join(root, "new/a/b"), // created
		"inside/made": filepath.Join(root, "dir/sub/made"),
	}
	for sub, want := range ok {
		fd, err := resolveSubPath(root, sub)
		if err != nil {
			t.Errorf("%s: %v", sub, err)
			continue
		}
		if got := fdPath(t, fd); got != want {
			t.Errorf("%s resolved to %s, want %s", sub, got, want)
		}
		unix.Close(fd)
	}
	if fi, err := os.Stat(filepath.Join(root, "new/a/b")); err != nil || !fi.IsDir() {
		t.Errorf("missing subPath directories were not created: %v", err)
	}
	for _, sub := range []string{"abs", "abs/etc", "rel", "rel/etc", "dir/elsewhere", "dir/chain/etc", "magic", "me", "abs/new-dir"} {
		fd, err := resolveSubPath(root, sub)
		if err == nil {
			t.Errorf("%s: resolved to %s, want a refusal", sub, fdPath(t, fd))
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, errSubPathEscapes) && !strings.Contains(err.Error(), "leads outside") && !errors.Is(err, unix.ELOOP) {
			t.Errorf("%s: %v, want it to say it leads outside the volume", sub, err)
		}
	}
	if _, err := os.Stat("/new-dir"); err == nil {
		t.Errorf("a subPath through an escaping symlink created /new-dir")
	}
	for _, sub := range []string{"../x", "/etc", "a/../../x", "..x", ""} {
		if fd, err := resolveSubPath(root, sub); err == nil {
			t.Errorf("%q accepted", sub)
			unix.Close(fd)
		}
	}
}

// TestBindSubPath: the bind mount is of what was checked, whatever happens to the path later, and
// UnmountAll leaves nothing.
func TestBindSubPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	root := t.TempDir()
	pod := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "real/f"), []byte("checked"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	fd, err := resolveSubPath(root, "link")
	if err != nil {
		t.Fatal(err)
	}
	// The race an attacker would try: swap the symlink for one to / after the check.
	if err := os.Remove(filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(pod, "volume-subpaths/v/c/0")
	err = bindSubPath(fd, target)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = UnmountAll(pod) })
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "checked" {
		t.Errorf("the bind mount shows %q (%v), want the checked directory", b, err)
	}
	// Again (a restarted container): the old mount is replaced, not stacked.
	fd, err = resolveSubPath(root, "real")
	if err != nil {
		t.Fatal(err)
	}
	if err := bindSubPath(fd, target); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if mps, _ := mountPoints(pod); len(mps) != 1 {
		t.Errorf("mounts under the pod directory: %v, want one", mps)
	}
	// A file subPath gets a file target.
	fd, err = resolveSubPath(root, "real/f")
	if err != nil {
		t.Fatal(err)
	}
	fileTarget := filepath.Join(pod, "volume-subpaths/v/c/1")
	if err := bindSubPath(fd, fileTarget); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if b, err := os.ReadFile(fileTarget); err != nil || string(b) != "checked" {
		t.Errorf("file subPath shows %q (%v)", b, err)
	}
	if err := RemovePodDir(pod); err != nil {
		t.Fatal(err)
	}
	if mps, _ := mountPoints(pod); len(mps) != 0 {
		t.Errorf("mounts left: %v", mps)
	}
	if _, err := os.Stat(filepath.Join(root, "real/f")); err != nil {
		t.Errorf("removing the pod directory removed the volume's content: %v", err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/a\040b\134c\011d`); got != "/a b\\c\td" {
		t.Errorf("got %q", got)
	}
}
