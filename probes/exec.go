package probes

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Execer is the CRI call exec probes need; *cri.Client has it. The implementation passes timeout to
// the runtime (ExecSyncRequest.Timeout), which kills the command when it expires; a call that ends
// because of a deadline returns an error with the gRPC code DeadlineExceeded or
// context.DeadlineExceeded.
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error)
}

// execSlack is how long past the probe's timeout the runtime gets to report a timed-out command
// before the probe gives up on the call itself (and counts a timeout).
const execSlack = 30 * time.Second

// execProbe runs cmd in the container: exit code 0 passes, anything else fails with the command's
// output; a timeout fails; a runtime error (the container is gone, the runtime is away) errors.
func execProbe(ctx context.Context, ex Execer, containerID string, cmd []string, timeout time.Duration) attempt {
	if ex == nil {
		return errorf("exec probes need the container runtime, and none is configured")
	}
	if len(cmd) == 0 {
		return errorf("exec probe has no command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+execSlack)
	defer cancel()
	stdout, stderr, code, err := ex.ExecSync(ctx, containerID, cmd, timeout)
	if err != nil {
		if isTimeout(err) {
			return fail("command %q timed out after %s", strings.Join(cmd, " "), timeout)
		}
		return errorf("exec of %q failed: %v", strings.Join(cmd, " "), err)
	}
	out := string(stdout) + string(stderr)
	if code == 0 {
		return pass(out)
	}
	if strings.TrimSpace(out) == "" {
		return fail("command %q exited with code %d", strings.Join(cmd, " "), code)
	}
	return fail("%s", out)
}

// isTimeout reports whether err says a deadline passed, from the runtime (gRPC DeadlineExceeded)
// or from the context.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.DeadlineExceeded {
		return true
	}
	return false
}
