package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logOptions are the query parameters of /containerLogs, as the API server passes them.
type logOptions struct {
	follow     bool
	previous   bool
	timestamps bool
	tailLines  int64 // -1: all
	since      time.Time
	limitBytes int64 // 0: no limit
}

func parseLogOptions(r *http.Request, now time.Time) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tailLines: -1}
	var err error
	boolParam := func(name string) bool {
		v := q.Get(name)
		if v == "" {
			return false
		}
		b, e := strconv.ParseBool(v)
		if e != nil && err == nil {
			err = errorf(http.StatusBadRequest, "%s: %q is not a boolean", name, v)
		}
		return b
	}
	intParam := func(name string) (int64, bool) {
		v := q.Get(name)
		if v == "" {
			return 0, false
		}
		n, e := strconv.ParseInt(v, 10, 64)
		if (e != nil || n < 0) && err == nil {
			err = errorf(http.StatusBadRequest, "%s: %q is not a non-negative integer", name, v)
		}
		return n, true
	}
	o.follow = boolParam("follow")
	o.previous = boolParam("previous")
	o.timestamps = boolParam("timestamps")
	if n, ok := intParam("tailLines"); ok {
		o.tailLines = n
	}
	if n, ok := intParam("sinceSeconds"); ok && n > 0 {
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, e := time.Parse(time.RFC3339, v)
		if e != nil && err == nil {
			err = errorf(http.StatusBadRequest, "sinceTime: %q is not RFC 3339", v)
		}
		if !o.since.IsZero() && err == nil {
			err = errorf(http.StatusBadRequest, "at most one of sinceTime or sinceSeconds may be specified")
		}
		o.since = t
	}
	if n, ok := intParam("limitBytes"); ok {
		if n == 0 && err == nil {
			err = errorf(http.StatusBadRequest, "limitBytes must be positive")
		}
		o.limitBytes = n
	}
	return o, err
}

// containerLogs serves GET /containerLogs/{ns}/{pod}/{container} from the CRI log file of the
// container's newest instance (previous=true: the one before it).
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := parseLogOptions(r, time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	p, err := s.findPod(r)
	if err != nil {
		writeError(w, err)
		return
	}
	container := r.PathValue("container")
	id, err := s.logContainer(r.Context(), p, container, opts.previous)
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := s.cfg.Runtime.ContainerStatus(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	if st.LogPath == "" {
		writeError(w, errorf(http.StatusNotFound, "container %q in pod %q has no log file", container, p.Name))
		return
	}
	f, err := os.Open(st.LogPath)
	if err != nil {
		writeError(w, errorf(http.StatusNotFound, "log of container %q in pod %q: %v", container, p.Name, err))
		return
	}
	defer func() { f.Close() }()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Transfer-Encoding", "chunked")
	running := func(ctx context.Context) bool {
		st, err := s.cfg.Runtime.ContainerStatus(ctx, id)
		return err == nil && st.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	// A rotation (package logs) renames the file being followed and the runtime reopens a new one at
	// the log path: follow moves on to it, as the kubelet does. Rotated files are not read (tailLines
	// and the rest read the current file only, as the kubelet's do).
	reopened := func() io.Reader {
		cur, err := os.Stat(st.LogPath)
		if err != nil {
			return nil
		}
		open, err := f.Stat()
		if err != nil || os.SameFile(cur, open) {
			return nil
		}
		nf, err := os.Open(st.LogPath)
		if err != nil {
			return nil
		}
		f.Close()
		f = nf
		return nf
	}
	if err := copyLog(r.Context(), f, w, opts, running, reopened); err != nil && !errors.Is(err, errLimit) && r.Context().Err() == nil {
		s.log.Debug("container log", "pod", p.Namespace+"/"+p.Name, "container", container, "err", err)
	}
}

// logContainer picks the container instance whose log is asked for, from the pod's status as the
// kubelet does: previous is the last terminated instance (lastState); otherwise the running or
// terminated one, or, while it waits to restart (CrashLoopBackOff), the last terminated one. A
// container the status does not know yet falls back to the runtime's instances.
func (s *Server) logContainer(ctx context.Context, p *v1.Pod, container string, previous bool) (string, error) {
	if !hasContainer(p, container) {
		return "", errorf(http.StatusBadRequest, "container %s is not valid for pod %s/%s", container, p.Namespace, p.Name)
	}
	var st *v1.ContainerStatus
	for _, list := range [][]v1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				st = &list[i]
			}
		}
	}
	if st != nil {
		last := st.LastTerminationState.Terminated
		switch {
		case previous:
			if last == nil || last.ContainerID == "" {
				return "", errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", container, p.Name)
			}
			return trimRuntime(last.ContainerID), nil
		case st.State.Running != nil && st.ContainerID != "":
			return trimRuntime(st.ContainerID), nil
		case st.State.Terminated != nil && st.State.Terminated.ContainerID != "":
			return trimRuntime(st.State.Terminated.ContainerID), nil
		case last != nil && last.ContainerID != "":
			return trimRuntime(last.ContainerID), nil
		}
	}
	cs, err := s.instances(ctx, p, container)
	if err != nil {
		return "", err
	}
	i := 0
	if previous {
		i = 1
	}
	if len(cs) <= i {
		if previous {
			return "", errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", container, p.Name)
		}
		return "", errorf(http.StatusBadRequest, "container %q in pod %q is waiting to start", container, p.Name)
	}
	return cs[i].Id, nil
}

// trimRuntime turns "containerd://<id>" into "<id>".
func trimRuntime(id string) string {
	if _, after, ok := strings.Cut(id, "://"); ok {
		return after
	}
	return id
}

var errLimit = errors.New("limitBytes reached")

// logLine is one line of a container's output, joined from its partial fragments.
type logLine struct {
	ts   time.Time
	text []byte // without the newline
}

// criParser turns lines of the CRI log format ("<RFC3339Nano> <stdout|stderr> <P|F> <text>") into
// whole lines, joining the partial (P) fragments of each stream until its full (F) one.
type criParser struct {
	partial map[string]*logLine
}

func (p *criParser) parse(raw []byte) (logLine, bool, error) {
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	fields := bytes.SplitN(raw, []byte(" "), 4)
	if len(fields) < 3 {
		return logLine{}, false, fmt.Errorf("not a CRI log line: %q", raw)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(fields[0]))
	if err != nil {
		return logLine{}, false, fmt.Errorf("CRI log line timestamp: %v", err)
	}
	stream, tag := string(fields[1]), string(fields[2])
	var text []byte
	if len(fields) == 4 {
		text = fields[3]
	}
	if p.partial == nil {
		p.partial = map[string]*logLine{}
	}
	cur := p.partial[stream]
	if cur == nil {
		cur = &logLine{ts: ts}
	}
	cur.text = append(cur.text, text...)
	if tag == "P" {
		p.partial[stream] = cur
		return logLine{}, false, nil
	}
	delete(p.partial, stream)
	return *cur, true, nil
}

// logWriter writes lines with the options' timestamps and byte limit, flushing each write.
type logWriter struct {
	w       io.Writer
	opts    logOptions
	written int64
}

func (lw *logWriter) write(l logLine) error {
	if !lw.opts.since.IsZero() && l.ts.Before(lw.opts.since) {
		return nil
	}
	var b []byte
	if lw.opts.timestamps {
		b = append(b, l.ts.Format(time.RFC3339Nano)...)
		b = append(b, ' ')
	}
	b = append(b, l.text...)
	b = append(b, '\n')
	if lw.opts.limitBytes > 0 && lw.written+int64(len(b)) > lw.opts.limitBytes {
		b = b[:lw.opts.limitBytes-lw.written]
		_, _ = lw.w.Write(b)
		lw.flush()
		return errLimit
	}
	n, err := lw.w.Write(b)
	lw.written += int64(n)
	return err
}

func (lw *logWriter) flush() {
	if f, ok := lw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// copyLog writes the log file f to w. With tailLines only the last lines are written; with follow
// it keeps reading what the container writes until it stops running or ctx ends, moving on to the
// reader reopened returns when the file was rotated (reopened may be nil; it returns nil while the
// file is the same).
func copyLog(ctx context.Context, f io.Reader, w io.Writer, opts logOptions, running func(context.Context) bool, reopened func() io.Reader) error {
	lw := &logWriter{w: w, opts: opts}
	var parser criParser
	var tail []logLine
	tailing := opts.tailLines >= 0
	emit := func(l logLine) error {
		if !tailing {
			return lw.write(l)
		}
		if !opts.since.IsZero() && l.ts.Before(opts.since) {
			return nil
		}
		if opts.tailLines == 0 {
			return nil
		}
		if int64(len(tail)) == opts.tailLines {
			tail = tail[1:]
		}
		tail = append(tail, l)
		return nil
	}
	var pending []byte // an incomplete line at the end of what was read
	buf := make([]byte, 32*1024)
	// drain reads to the end of the file, emitting whole lines.
	drain := func() (bool, error) {
		got := false
		for {
			n, err := f.Read(buf)
			if n > 0 {
				got = true
				pending = append(pending, buf[:n]...)
				for {
					i := bytes.IndexByte(pending, '\n')
					if i < 0 {
						break
					}
					line, ok, perr := parser.parse(pending[:i])
					pending = pending[i+1:]
					if perr != nil {
						continue // a malformed line is skipped, as a torn write would be
					}
					if ok {
						if err := emit(line); err != nil {
							return got, err
						}
					}
				}
			}
			if err == io.EOF {
				return got, nil
			}
			if err != nil {
				return got, err
			}
		}
	}
	if _, err := drain(); err != nil {
		return err
	}
	if tailing {
		tailing = false
		for _, l := range tail {
			if err := lw.write(l); err != nil {
				return err
			}
		}
	}
	lw.flush()
	if !opts.follow {
		return nil
	}
	lastCheck := time.Now()
	for {
		got, err := drain()
		if err != nil {
			return err
		}
		if got {
			lw.flush()
			continue
		}
		if reopened != nil {
			if nf := reopened(); nf != nil {
				// The old file was drained just now; what the runtime wrote to it between the
				// rename and its reopen was read with it.
				f = nf
				continue
			}
		}
		if time.Since(lastCheck) > time.Second {
			lastCheck = time.Now()
			if !running(ctx) {
				_, err := drain() // what it wrote before it stopped
				lw.flush()
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
