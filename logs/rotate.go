package logs

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/cri"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Runtime is what rotation needs of the CRI.
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error)
	ReopenContainerLog(ctx context.Context, id string) error
}

// Config is the rotation policy, from the KubeletConfiguration fields containerLogMaxSize,
// containerLogMaxFiles and containerLogMonitorInterval.
type Config struct {
	// MaxSize is the size in bytes above which a container's current log file is rotated.
	MaxSize int64
	// MaxFiles is how many files a container's log may have, the current one included (at least 2).
	MaxFiles int
	// Interval is how often the running containers' logs are looked at.
	Interval time.Duration

	Runtime Runtime
	Clock   clock.WithTicker
	Logger  *slog.Logger
}

// Rotator rotates the logs of the running containers Berth manages.
type Rotator struct {
	cfg Config
	log *slog.Logger
	// known is what earlier passes learnt of each running container, by ID. Only RotateAll
	// (one goroutine) touches it.
	known map[string]*containerLog
}

// containerLog is one container's log as the Rotator knows it. A container's log path never
// changes, so it is asked of the runtime once; its rotated files only change when the Rotator
// rotates, so they are listed (a glob of the log directory) on the first pass and on the pass
// after each rotation only, not every Interval.
type containerLog struct {
	path string
	tidy bool // the rotated files were listed and put in order, and nothing was rotated since
}

// Suffixes of rotated files, and the timestamp layout of their names (as the kubelet names them).
const (
	compressSuffix  = ".gz"
	tmpSuffix       = ".tmp"
	timestampFormat = "20060102-150405"
)

// NewRotator checks cfg.
func NewRotator(cfg Config) (*Rotator, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("log rotation: no runtime")
	}
	if cfg.MaxSize <= 0 {
		return nil, fmt.Errorf("log rotation: containerLogMaxSize must be positive, got %d bytes", cfg.MaxSize)
	}
	if cfg.MaxFiles < 2 {
		return nil, fmt.Errorf("log rotation: containerLogMaxFiles must be at least 2, got %d", cfg.MaxFiles)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Rotator{cfg: cfg, log: cfg.Logger.With("component", "log-rotation"), known: map[string]*containerLog{}}, nil
}

// Run rotates every Interval until ctx ends.
func (r *Rotator) Run(ctx context.Context) {
	t := r.cfg.Clock.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			r.RotateAll(ctx)
		}
	}
}

// RotateAll makes one pass over the running containers. Errors are logged per container: one
// container's failure never stops the others'.
func (r *Rotator) RotateAll(ctx context.Context) {
	cs, err := r.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{cri.LabelManagedBy: cri.ManagedByValue},
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("listing running containers for log rotation", "err", err)
		}
		return
	}
	running := make(map[string]bool, len(cs))
	for _, c := range cs {
		running[c.Id] = true
	}
	for id := range r.known {
		if !running[id] {
			delete(r.known, id)
		}
	}
	for _, c := range cs {
		if ctx.Err() != nil {
			return
		}
		l := r.known[c.Id]
		if l == nil {
			st, err := r.cfg.Runtime.ContainerStatus(ctx, c.Id)
			if err != nil {
				if !cri.IsNotFound(err) {
					r.log.Warn("container status for log rotation", "container", c.Id, "err", err)
				}
				continue
			}
			if st.LogPath == "" || st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				continue
			}
			l = &containerLog{path: st.LogPath}
			r.known[c.Id] = l
		}
		if err := r.rotate(ctx, c.Id, l); err != nil {
			r.log.Warn("log rotation", "container", c.Id, "log", l.path, "err", err)
		}
	}
}

// rotate is one pass over one container's log (doc.go).
func (r *Rotator) rotate(ctx context.Context, id string, l *containerLog) error {
	logPath := l.path
	if !l.tidy {
		if err := r.tidy(logPath); err != nil {
			return err
		}
		l.tidy = true
	}
	// 4. The current file, when too big.
	st, err := os.Stat(logPath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // not written yet, or the pod's log directory is being removed
		}
		return err
	}
	if st.Size() <= r.cfg.MaxSize {
		return nil
	}
	newName := logPath + "." + r.cfg.Clock.Now().UTC().Format(timestampFormat)
	if _, err := os.Lstat(newName); err == nil {
		return nil // rotated once already this second: next pass
	}
	if err := os.Rename(logPath, newName); err != nil {
		return fmt.Errorf("rename the log to %s: %w", filepath.Base(newName), err)
	}
	l.tidy = false // one more rotated file: the next pass gzips the one before it and trims
	if err := r.cfg.Runtime.ReopenContainerLog(ctx, id); err != nil {
		// Undo, so the runtime goes on writing where readers look. Should the runtime have made a
		// new file after all, the renamed one stays as a rotated file.
		if _, serr := os.Stat(logPath); os.IsNotExist(serr) {
			if rerr := os.Rename(newName, logPath); rerr != nil {
				return fmt.Errorf("reopen failed (%v), and renaming the log back failed: %w", err, rerr)
			}
		}
		return fmt.Errorf("reopen the container log: %w", err)
	}
	r.log.Debug("container log rotated", "container", id, "log", logPath, "size", st.Size(), "rotatedTo", filepath.Base(newName))
	return nil
}

// tidy is steps 1–3 of a pass (doc.go): the rotated files of logPath cleaned, trimmed and gzipped.
func (r *Rotator) tidy(logPath string) error {
	rotated, err := rotatedFiles(logPath)
	if err != nil {
		return err
	}
	// 1. A compression cut short.
	var keep []string
	for _, f := range rotated {
		if strings.HasSuffix(f, tmpSuffix) {
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return err
			}
			continue
		}
		keep = append(keep, f)
	}
	rotated = keep
	// 2. Room for the file about to be rotated and the current one.
	for len(rotated) > r.cfg.MaxFiles-2 {
		if err := os.Remove(rotated[0]); err != nil && !os.IsNotExist(err) {
			return err
		}
		rotated = rotated[1:]
	}
	// 3. All but the newest rotated file, gzipped.
	for i := 0; i+1 < len(rotated); i++ {
		if strings.HasSuffix(rotated[i], compressSuffix) {
			continue
		}
		if err := compress(rotated[i]); err != nil {
			return err
		}
	}
	return nil
}

// rotatedFiles are the rotated files of logPath, oldest first (their names sort by time).
func rotatedFiles(logPath string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(logPath) + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		rest := strings.TrimPrefix(m, logPath+".")
		ts, _, _ := strings.Cut(rest, ".")
		if _, err := time.Parse(timestampFormat, ts); err != nil {
			continue // not one of ours
		}
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// globEscape quotes the glob metacharacters of a path (pod names cannot hold them; directories may).
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// compress gzips path to path.gz, through path.gz.tmp so that a crash never leaves a truncated .gz,
// then removes path.
func compress(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + compressSuffix + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path+compressSuffix)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compress %s: %w", filepath.Base(path), err)
	}
	return os.Remove(path)
}
