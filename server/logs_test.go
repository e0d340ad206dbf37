package server

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
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
			err := copyLog(context.Background(), strings.NewReader(criLog), &out, tc.opts, notRunning)
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
