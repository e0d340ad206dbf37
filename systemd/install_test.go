package systemd

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The unit and the default config are shipped in deploy/systemd and installed by `make install`;
// these tests run that target into a DESTDIR.

const repoRoot = ".."

// makeInstall runs `make <target>` at the repository root without building (BIN is a stand-in).
func makeInstall(t *testing.T, target string, vars ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	args := append([]string{"-s", "-C", repoRoot, "-o", "build", target}, vars...)
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func fakeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestMakeInstall(t *testing.T) {
	dest := t.TempDir()
	bin := fakeBinary(t)
	out := makeInstall(t, "install", "DESTDIR="+dest, "BIN="+bin)
	if strings.Contains(out, "daemon-reload\n") || !strings.Contains(out, "no systemctl daemon-reload") {
		t.Errorf("with DESTDIR, install must not reload systemd:\n%s", out)
	}
	for path, want := range map[string]fs.FileMode{
		"usr/local/bin/berth":              0o755,
		"etc/systemd/system/berth.service": 0o644,
		"etc/berth/config.yaml":            0o644,
		"etc/berth/manifests":              fs.ModeDir | 0o700,
		"etc/berth":                        fs.ModeDir | 0o755,
		"etc/systemd/system":               fs.ModeDir | 0o755,
		"usr/local/bin":                    fs.ModeDir | 0o755,
		"etc":                              fs.ModeDir | 0o755,
	} {
		if got := mode(t, filepath.Join(dest, path)); got != want {
			t.Errorf("%s: mode %s, want %s", path, got, want)
		}
	}
	if got, want := read(t, filepath.Join(dest, "etc/systemd/system/berth.service")), read(t, filepath.Join(repoRoot, "deploy/systemd/berth.service")); got != want {
		t.Errorf("the installed unit differs from deploy/systemd/berth.service with the default PREFIX")
	}
	if got, want := read(t, filepath.Join(dest, "etc/berth/config.yaml")), read(t, filepath.Join(repoRoot, "deploy/systemd/config.yaml")); got != want {
		t.Errorf("the installed config differs from deploy/systemd/config.yaml")
	}

	// A second install keeps an edited config.
	config := filepath.Join(dest, "etc/berth/config.yaml")
	if err := os.WriteFile(config, []byte("maxPods: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = makeInstall(t, "install", "DESTDIR="+dest, "BIN="+bin)
	if got := read(t, config); got != "maxPods: 7\n" {
		t.Errorf("install replaced an existing config:\n%s", got)
	}
	if !strings.Contains(out, "kept the existing") {
		t.Errorf("install does not say it kept the config:\n%s", out)
	}

	// Uninstall removes the binary and the unit, and keeps the config and the manifests.
	makeInstall(t, "uninstall", "DESTDIR="+dest)
	for _, gone := range []string{"usr/local/bin/berth", "etc/systemd/system/berth.service"} {
		if _, err := os.Stat(filepath.Join(dest, gone)); !os.IsNotExist(err) {
			t.Errorf("%s after uninstall: %v, want it gone", gone, err)
		}
	}
	for _, kept := range []string{"etc/berth/config.yaml", "etc/berth/manifests"} {
		if _, err := os.Stat(filepath.Join(dest, kept)); err != nil {
			t.Errorf("%s after uninstall: %v, want it kept", kept, err)
		}
	}
}

// TestMakeInstallPrefix: PREFIX and SYSCONFDIR move the binary and the config, and the unit and
// the config follow.
func TestMakeInstallPrefix(t *testing.T) {
	dest := t.TempDir()
	makeInstall(t, "install", "DESTDIR="+dest, "BIN="+fakeBinary(t), "PREFIX=/opt/berth", "SYSCONFDIR=/etc/opt")
	if mode(t, filepath.Join(dest, "opt/berth/bin/berth")) != 0o755 {
		t.Error("binary not in PREFIX/bin")
	}
	unit := read(t, filepath.Join(dest, "etc/systemd/system/berth.service"))
	if !strings.Contains(unit, "\nExecStart=/opt/berth/bin/berth --config /etc/opt/berth/config.yaml\n") {
		t.Errorf("ExecStart does not follow PREFIX and SYSCONFDIR:\n%s", unit)
	}
	config := read(t, filepath.Join(dest, "etc/opt/berth/config.yaml"))
	if !strings.Contains(config, "\nstaticPodPath: /etc/opt/berth/manifests\n") {
		t.Errorf("staticPodPath does not follow SYSCONFDIR:\n%s", config)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/opt/berth/manifests")); err != nil {
		t.Error(err)
	}
}

// TestUnit checks the unit's promises (issue 7) and, where systemd-analyze is installed, that
// systemd accepts it.
func TestUnit(t *testing.T) {
	unit := read(t, filepath.Join(repoRoot, "deploy/systemd/berth.service"))
	settings := map[string]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = v
		}
	}
	for k, want := range map[string]string{
		"Type":            "notify",
		"NotifyAccess":    "main",
		"Restart":         "always",
		"WatchdogSec":     "60",
		"Delegate":        "yes",
		"KillMode":        "process",
		"After":           "containerd.service crio.service network-online.target",
		"ExecStart":       "/usr/local/bin/berth --config /etc/berth/config.yaml",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
		"TimeoutStartSec": "120",
		"WantedBy":        "multi-user.target",
	} {
		if got := settings[k]; got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	// Each of these would give Berth a mount namespace of its own (volume mounts invisible to
	// the runtime) or forbid what a node agent does.
	for _, k := range []string{"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
		"ProtectKernelModules", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectControlGroups",
		"ReadOnlyPaths", "InaccessiblePaths", "MountFlags", "RestrictSUIDSGID", "CapabilityBoundingSet", "User"} {
		if v, ok := settings[k]; ok {
			t.Errorf("%s=%s: a node agent cannot run with it (docs/systemd.md)", k, v)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze (Debian package systemd): unit not verified")
	}
	// verify wants ExecStart to exist: point it at a stand-in.
	dir := t.TempDir()
	staged := strings.Replace(unit, "ExecStart=/usr/local/bin/berth", "ExecStart="+fakeBinary(t), 1)
	path := filepath.Join(dir, "berth.service")
	if err := os.WriteFile(path, []byte(staged), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// Units named in After= that this machine lacks are not errors; anything printed about
	// berth.service is.
	if err != nil || strings.Contains(string(out), "berth.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
