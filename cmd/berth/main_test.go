package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartupErrors: what is wrong at startup is one line naming the path and what to do, before
// anything else happens.
func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.MkdirAll(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"root dir under a file", []string{"--root-dir", filepath.Join(file, "x")}, []string{"root dir " + filepath.Join(file, "x") + " cannot be created", "--root-dir"}},
		{"relative root dir", []string{"--root-dir", "state"}, []string{`root dir "state" must be an absolute path`}},
		{"manifest dir missing", []string{"--root-dir", filepath.Join(dir, "root"), "--pod-manifest-path", filepath.Join(dir, "nope")},
			[]string{"static pod path " + filepath.Join(dir, "nope") + " is not a directory", "--pod-manifest-path"}},
		{"manifest path is a file", []string{"--root-dir", filepath.Join(dir, "root"), "--pod-manifest-path", file}, []string{"is not a directory"}},
		{"bad runtime endpoint", []string{"--root-dir", filepath.Join(dir, "root"), "--container-runtime-endpoint", "tcp://1.2.3.4:5"}, []string{"only unix sockets are supported"}},
		{"bad node ip", []string{"--root-dir", filepath.Join(dir, "root"), "--node-ip", "not-an-ip"}, []string{`--node-ip "not-an-ip"`}},
		{"bad log level", []string{"--log-level", "loud"}, []string{`--log-level "loud"`}},
		{"unknown flag", []string{"--pod-manifest-dir", "/x"}, []string{"pod-manifest-dir"}},
		{"stray argument", []string{"start"}, []string{`unexpected argument "start"`}},
	}
	if os.Geteuid() != 0 { // root writes anywhere: the read-only case only means something for others
		tests = append(tests, struct {
			name string
			args []string
			want []string
		}{"root dir not writable", []string{"--root-dir", readOnly}, []string{"is not writable"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runDaemon(tt.args)
			if err == nil {
				t.Fatal("runDaemon succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err is more than one line: %q", err)
			}
		})
	}
}
