package volumes

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestCheckHostPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	missing := filepath.Join(dir, "missing")
	cases := []struct {
		path string
		typ  v1.HostPathType
		want string // "" = ok; else the end of the error
	}{
		{missing, v1.HostPathUnset, ""},
		{dir, v1.HostPathDirectory, ""},
		{file, v1.HostPathDirectory, file + " is not a directory"},
		{missing, v1.HostPathDirectory, missing + " is not a directory"},
		{file, v1.HostPathDirectoryOrCreate, file + " is not a directory"},
		{file, v1.HostPathFile, ""},
		{dir, v1.HostPathFile, dir + " is not a file"},
		{missing, v1.HostPathFile, missing + " is not a file"},
		{dir, v1.HostPathFileOrCreate, dir + " is not a file"},
		{sock, v1.HostPathSocket, ""},
		{file, v1.HostPathSocket, file + " is not a socket file"},
		{"/dev/null", v1.HostPathCharDev, ""},
		{file, v1.HostPathCharDev, file + " is not a character device"},
		{"/dev/null", v1.HostPathBlockDev, "/dev/null is not a block device"},
		{dir, "Dir", `hostPath type "Dir" is not one of`},
	}
	for _, tc := range cases {
		err := CheckHostPath(tc.path, tc.typ)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %q: %v", tc.path, tc.typ, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %q: error %v, want one with %q", tc.path, tc.typ, err, tc.want)
		case tc.want != "" && !strings.HasPrefix(tc.want, "hostPath type \"") && !strings.HasPrefix(err.Error(), "hostPath type check failed: "):
			t.Errorf("%s %q: %v does not read as the kubelet's", tc.path, tc.typ, err)
		}
	}
}

func TestCheckHostPathCreates(t *testing.T) {
	old := umask(0o077) // the created modes must not depend on the umask
	defer umask(old)
	dir := t.TempDir()
	newDir := filepath.Join(dir, "a", "b")
	if err := CheckHostPath(newDir, v1.HostPathDirectoryOrCreate); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(newDir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("DirectoryOrCreate made %v (%v), want a 0755 directory", fi, err)
	}
	newFile := filepath.Join(dir, "f")
	if err := CheckHostPath(newFile, v1.HostPathFileOrCreate); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(newFile); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || fi.Size() != 0 {
		t.Errorf("FileOrCreate made %v (%v), want an empty 0644 file", fi, err)
	}
	// FileOrCreate does not create the parent directory (the kubelet's documented behaviour).
	if err := CheckHostPath(filepath.Join(dir, "nodir", "f"), v1.HostPathFileOrCreate); err == nil {
		t.Errorf("FileOrCreate created a missing parent directory")
	}
}
