package probes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/cri"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The agent passes its CRI client as the Execer.
var _ Execer = (*cri.Client)(nil)

// fakeExecer answers ExecSync with what it is given and records the calls.
type fakeExecer struct {
	stdout, stderr string
	code           int32
	err            error
	calls          []execCall
}

type execCall struct {
	id      string
	cmd     []string
	timeout time.Duration
}

func (f *fakeExecer) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	f.calls = append(f.calls, execCall{id, cmd, timeout})
	if _, ok := ctx.Deadline(); !ok {
		return nil, nil, 0, errors.New("no deadline on the context")
	}
	return []byte(f.stdout), []byte(f.stderr), f.code, f.err
}

func TestExecProbe(t *testing.T) {
	cmd := []string{"cat", "/tmp/healthy"}
	for _, tc := range []struct {
		name    string
		ex      fakeExecer
		want    Outcome
		wantOut string
	}{
		{"exit 0", fakeExecer{stdout: "ok\n"}, Passed, "ok"},
		{"exit 1 with output", fakeExecer{stderr: "cat: /tmp/healthy: No such file or directory\n", code: 1}, Failed, "cat: /tmp/healthy: No such file or directory"},
		{"exit 2 without output", fakeExecer{code: 2}, Failed, `command "cat /tmp/healthy" exited with code 2`},
		{"stdout and stderr", fakeExecer{stdout: "out ", stderr: "err", code: 1}, Failed, "out err"},
		{"runtime timeout", fakeExecer{err: fmt.Errorf("CRI ExecSync: %w", status.Error(codes.DeadlineExceeded, "timeout 1s exceeded"))}, Failed, `command "cat /tmp/healthy" timed out after 1s`},
		{"context timeout", fakeExecer{err: context.DeadlineExceeded}, Failed, `command "cat /tmp/healthy" timed out after 1s`},
		{"runtime error", fakeExecer{err: fmt.Errorf("CRI ExecSync: %w", status.Error(codes.NotFound, "container not found"))}, Errored, "exec of \"cat /tmp/healthy\" failed: CRI ExecSync: rpc error: code = NotFound desc = container not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := tc.ex
			a := execProbe(context.Background(), &ex, "c1", cmd, time.Second)
			if a.outcome != tc.want || a.output != tc.wantOut {
				t.Errorf("got %s %q, want %s %q", a.outcome, a.output, tc.want, tc.wantOut)
			}
			if len(ex.calls) != 1 || ex.calls[0].id != "c1" || ex.calls[0].timeout != time.Second || strings.Join(ex.calls[0].cmd, " ") != "cat /tmp/healthy" {
				t.Errorf("calls = %+v", ex.calls)
			}
		})
	}
}

func TestExecProbeWithoutExecer(t *testing.T) {
	a := execProbe(context.Background(), nil, "c1", []string{"true"}, time.Second)
	if a.outcome != Errored {
		t.Errorf("got %s %q, want errored", a.outcome, a.output)
	}
}

func TestExecProbeOutputTruncated(t *testing.T) {
	ex := &fakeExecer{stdout: strings.Repeat("é", 2000), code: 1}
	a := execProbe(context.Background(), ex, "c1", []string{"x"}, time.Second)
	if a.outcome != Failed || len(a.output) > maxOutput || !strings.HasSuffix(a.output, "…") || strings.ContainsRune(a.output, '?') {
		t.Errorf("got %s, %d bytes, ends %q", a.outcome, len(a.output), a.output[len(a.output)-8:])
	}
}
