package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Termination messages, as the kubelet handles them: every container instance gets an empty host
// file, <rootDir>/pods/<uid>/containers/<name>/<restartCount>, bind-mounted read-write at its
// terminationMessagePath (/dev/termination-log by default). Once the instance has exited, Berth
// reads the file (the runtime reports the mount in ContainerStatus.Mounts) into the terminated
// state's message; with terminationMessagePolicy FallbackToLogsOnError, an empty file and a
// non-zero exit code, the end of the container's log stands in. The pod directory goes with the pod.
const (
	// maxTerminationMessage is how much of the file is read (4 KiB).
	maxTerminationMessage = 4 << 10
	// maxTerminationLogBytes and maxTerminationLogLines bound the log fallback: the end of the last
	// 80 lines, at most 2 KiB.
	maxTerminationLogBytes = 2 << 10
	maxTerminationLogLines = 80
	// maxPodTerminationMessages is the budget of all of a pod's termination messages together
	// (12 KiB), divided equally among its containers.
	maxPodTerminationMessages = 12 << 10
	// logTailWindow is how much of the end of a log file is read for the fallback: enough for
	// 2 KiB of content and the CRI prefixes of 80 lines.
	logTailWindow = 32 << 10
)

// podDir is a pod's directory under the root dir.
func podDir(rootDir string, uid types.UID) string {
	return filepath.Join(rootDir, "pods", string(uid))
}

// terminationMessageFile is the host file of one container instance's termination message.
func terminationMessageFile(rootDir string, uid types.UID, name string, restartCount int) string {
	return filepath.Join(podDir(rootDir, uid), "containers", name, strconv.Itoa(restartCount))
}

// terminationMessageMount creates the instance's (empty) termination message file and returns the
// bind mount of it; nil when Berth has no root dir or the container no terminationMessagePath.
func terminationMessageMount(rootDir string, uid types.UID, c *v1.Container, restartCount int) (*runtimeapi.Mount, error) {
	path := c.TerminationMessagePath
	if rootDir == "" || path == "" {
		return nil, nil
	}
	host := terminationMessageFile(rootDir, uid, c.Name, restartCount)
	if err := os.MkdirAll(filepath.Dir(host), 0o750); err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	f, err := os.OpenFile(host, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
	if err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	f.Close()
	// Writable whatever the container's user: the umask must not take the bits away.
	if err := os.Chmod(host, 0o666); err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	// A file bind mount, read-write, never relabelled (the kubelet relabels only under SELinux).
	return &runtimeapi.Mount{ContainerPath: path, HostPath: host}, nil
}

// terminationMessage reads the termination message of an exited instance from its status: the
// mounted file, else (FallbackToLogsOnError, non-zero exit) the end of its log. "" when none.
func terminationMessage(st *runtimeapi.ContainerStatus) string {
	path := st.Annotations[cri.AnnotationTerminationMessagePath]
	var msg string
	if path != "" {
		for _, m := range st.Mounts {
			if m.ContainerPath == path && m.HostPath != "" {
				msg = readCapped(m.HostPath, maxTerminationMessage)
				break
			}
		}
	}
	fallback := st.Annotations[cri.AnnotationTerminationMessagePolicy] == string(v1.TerminationMessageFallbackToLogsOnError) &&
		st.ExitCode != 0 && st.Reason != "ContainerCannotRun"
	if msg == "" && fallback && st.LogPath != "" {
		msg = lastLogLines(st.LogPath, maxTerminationLogLines, maxTerminationLogBytes)
	}
	return msg
}

// readCapped reads at most max bytes of a file; "" if it cannot be read.
func readCapped(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return string(b)
}

// lastLogLines returns the content of the last lines of a CRI log file (lines of the form
// "<timestamp> <stream> <P|F> <content>", P marking a partial line continued by the next one),
// at most maxLines lines and the last maxBytes bytes of them.
func lastLogLines(path string, maxLines, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(info.Size()-logTailWindow, 0)
	buf := make([]byte, info.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return ""
	}
	lines := bytes.Split(buf, []byte("\n"))
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // the first one is cut
	}
	// Rebuild the container's output, record by record.
	var records [][]byte
	var partial []byte
	for _, line := range lines {
		if len(line) == 0 {
			continue
		}
		content, full := parseCRILogLine(line)
		partial = append(partial, content...)
		if full {
			records = append(records, append(partial, '\n'))
			partial = nil
		}
	}
	if len(partial) > 0 {
		records = append(records, partial)
	}
	if len(records) > maxLines {
		records = records[len(records)-maxLines:]
	}
	out := bytes.Join(records, nil)
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out)
}

// parseCRILogLine splits a CRI log line into its content and whether it ends a line (tag F, or no
// tag at all in the old format). A line that does not parse is taken whole.
func parseCRILogLine(line []byte) (content []byte, full bool) {
	parts := bytes.SplitN(line, []byte(" "), 4)
	if len(parts) < 3 {
		return line, true
	}
	if len(parts) == 4 && (string(parts[2]) == "P" || string(parts[2]) == "F") {
		return parts[3], string(parts[2]) == "F"
	}
	if len(parts) == 3 && (string(parts[2]) == "P" || string(parts[2]) == "F") {
		return nil, string(parts[2]) == "F" // an empty line
	}
	return bytes.Join(parts[2:], []byte(" ")), true
}

// limitTerminationMessages cuts the termination messages of a pod's statuses so that together they
// stay within maxPodTerminationMessages: each container gets an equal share.
func limitTerminationMessages(st *v1.PodStatus) {
	n := len(st.InitContainerStatuses) + len(st.ContainerStatuses)
	if n == 0 {
		return
	}
	share := maxPodTerminationMessages / n
	cut := func(t *v1.ContainerStateTerminated) {
		if t != nil && len(t.Message) > share {
			t.Message = t.Message[:share]
		}
	}
	for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for i := range list {
			cut(list[i].State.Terminated)
			cut(list[i].LastTerminationState.Terminated)
		}
	}
}
