package server

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const criLog = `2026-01-02T03:04:05.000000001Z stdout F one
2026-01-02T03:04:06.000000000Z stdout P tw
2026-01-02T03:04:06.500000000Z stderr F err
2026-01-02T03:04:07.000000000Z stdout F o
2026-01-02T03:04:08.000000000Z stdout F three
2026-01-02T03:04:09.000000000Z stdout F 
`

func TestCopyLog(t *testing.T) {
	notRunning := func(context.Context) bool { return false }
	for _, tc := range []struct {
		name string
		opts logOptions
		want string
	}{
		{"all", logOptions{tailLines: -1}, "one\nerr\ntwo\nthree\n\n"},
		{"tail 2", logOptions{tailLines: 2}, "three\n\n"},
		{"tail 0", logOptions{tailLines: 0}, ""},
		{"since", logOptions{tailLines: -1, since: time.Date(2026, 1, 2, 3, 4, 6, 400000000, time.UTC)}, "err\nthree\n\n"},
		{"timestamps", logOptions{tailLines: 1, timestamps: true}, "2026-01-02T03:04:09Z \n"},
		{"limit", logOptions{tailLines: -1, limitBytes: 6}, "one\ner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := copyLog(context.Background(), strings.NewReader(criLog), &out, tc.opts, notRunning, nil)
			if err != nil && err != errLimit {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestParseLogOptions(t *testing.T) {
	r := httptest.NewRequest("GET", "/containerLogs/ns/p/c?follow=true&tailLines=5&sinceSeconds=10&timestamps=1", nil)
	now := time.Now()
	o, err := parseLogOptions(r, now)
	if err != nil || !o.follow || o.tailLines != 5 || !o.timestamps || !o.since.Equal(now.Add(-10*time.Second)) {
		t.Fatalf("%+v %v", o, err)
	}
	r = httptest.NewRequest("GET", "/containerLogs/ns/p/c?tailLines=x", nil)
	if _, err := parseLogOptions(r, now); err == nil {
		t.Fatal("tailLines=x accepted")
	}
}

func TestRequestAttributes(t *testing.T) {
	for path, want := range map[string]attributes{
		"GET /stats/summary":        {"get", "stats"},
		"GET /metrics":              {"get", "metrics"},
		"GET /metrics/cadvisor":     {"get", "metrics"},
		"GET /logs/syslog":          {"get", "log"},
		"GET /spec/":                {"get", "spec"},
		"GET /pods":                 {"get", "proxy"},
		"POST /exec/ns/p/c":         {"create", "proxy"},
		"GET /containerLogs/ns/p/c": {"get", "proxy"},
		"GET /metricsx":             {"get", "proxy"},
		"DELETE /runningpods/":      {"delete", "proxy"},
		"PUT /x":                    {"update", "proxy"},
		"PATCH /x":                  {"patch", "proxy"},
	} {
		m, p, _ := strings.Cut(path, " ")
		if got := requestAttributes(httptest.NewRequest(m, p, nil)); got != want {
			t.Errorf("%s: got %+v, want %+v", path, got, want)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a poller.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCopyLogFollowsRotation: follow goes on with the new file once the one it read was renamed
// away and a new one made at the path, and loses no line written to the old one before that.
func TestCopyLogFollowsRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	line := func(s string) string { return "2026-01-02T03:04:05Z stdout F " + s + "\n" }
	if err := os.WriteFile(path, []byte(line("a")), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close() }()
	reopened := func() io.Reader {
		cur, err := os.Stat(path)
		open, _ := f.Stat()
		if err != nil || os.SameFile(cur, open) {
			return nil
		}
		nf, err := os.Open(path)
		if err != nil {
			return nil
		}
		f.Close()
		f = nf
		return nf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- copyLog(ctx, f, &out, logOptions{tailLines: -1, follow: true}, func(context.Context) bool { return true }, reopened)
	}()
	waitFor := func(want string) {
		t.Helper()
		for out.String() != want {
			if ctx.Err() != nil {
				t.Fatalf("got %q, want %q", out.String(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("a\n")
	// The runtime writes b, the rotation renames the file, the runtime writes c to the old file
	// (before its reopen), then d to the new one.
	appendTo := func(p, s string) {
		w, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString(s)
		w.Close()
	}
	appendTo(path, line("b"))
	waitFor("a\nb\n")
	if err := os.Rename(path, path+".20260102-030405"); err != nil {
		t.Fatal(err)
	}
	appendTo(path+".20260102-030405", line("c"))
	appendTo(path, line("d"))
	waitFor("a\nb\nc\nd\n")
	appendTo(path, line("e"))
	waitFor("a\nb\nc\nd\ne\n")
	cancel()
	<-done
}
