//go:build integration

package integration

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// addConfig appends lines to the config file (after the node server's part).
func (e *env) addConfig(lines string) {
	e.t.Helper()
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		e.t.Fatal(err)
	}
}

// logFiles lists a container's log directory: the current file and the rotated ones.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestContainerLogRotation: a container writing ~1 MB/s has its log rotated past
// containerLogMaxSize (1Mi), never keeps more than containerLogMaxFiles (4) files, older rotated
// files are gzipped (with 4 files there is room for a gzipped one beside the newest rotated one), and `kubectl logs` through the API server keeps reading new lines, a follow
// stream going on across rotations without losing a line.
func TestContainerLogRotation(t *testing.T) {
	c := newCluster(t)
	c.serveNode()
	c.addConfig("containerLogMaxSize: 1Mi\ncontainerLogMaxFiles: 4\ncontainerLogMonitorInterval: 3s\n")
	c.start("--node-ip", "127.0.0.1")
	c.waitNodeReady(10 * time.Second)
	// 100 lines of ~1 kB, then a tenth of a second's pause: about 1 MB/s.
	p := c.create(apiPod("chatty", "Always", "sh", "-c",
		`pad=$(printf '%01000d' 0); i=0; while true; do j=0; while [ $j -lt 100 ]; do echo "line-$i $pad"; i=$((i+1)); j=$((j+1)); done; sleep 0.1; done`))
	c.waitPod("chatty", "Running", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	dir := filepath.Join(c.logsDir, "default_chatty_"+string(p.UID), "main")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := c.admin.CoreV1().Pods("default")
	lineNumber := func(l string) int {
		n, _, _ := strings.Cut(strings.TrimPrefix(l, "line-"), " ")
		i, err := strconv.Atoi(n)
		if err != nil || !strings.HasPrefix(l, "line-") {
			t.Fatalf("not a line of the container's: %.60q", l)
		}
		return i
	}
	lastLine := func() int {
		one := int64(1)
		b, err := pods.GetLogs("chatty", &v1.PodLogOptions{TailLines: &one}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		return lineNumber(strings.TrimSuffix(string(b), "\n"))
	}

	// Follow from now on, across the rotations to come.
	one := int64(1)
	stream, err := pods.GetLogs("chatty", &v1.PodLogOptions{Follow: true, TailLines: &one}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	followed := make(chan []int, 1)
	go func() {
		var got []int
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 64*1024), 64*1024)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) && sc.Scan() {
			n, _, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "line-"), " ")
			i, _ := strconv.Atoi(n)
			got = append(got, i)
		}
		followed <- got
	}()

	// Watch the directory for 15 s: rotations happen, the file count stays bounded.
	seen := map[string]bool{}
	var gz bool
	maxFiles := 0
	var before int
	for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(500 * time.Millisecond) {
		files := logFiles(t, dir)
		maxFiles = max(maxFiles, len(files))
		for _, f := range files {
			seen[f] = true
			if strings.HasSuffix(f, ".gz") {
				gz = true
			}
			if f != "0.log" && !strings.HasPrefix(f, "0.log.") {
				t.Errorf("unexpected file %s in %v", f, files)
			}
		}
		if before == 0 && len(seen) >= 3 {
			before = lastLine()
		}
	}
	files := logFiles(t, dir)
	t.Logf("files now %v; %d names seen, at most %d at once", files, len(seen), maxFiles)
	if maxFiles > 4 {
		t.Errorf("at most %d files at once, want at most containerLogMaxFiles (4)", maxFiles)
	}
	if len(seen) < 5 {
		t.Errorf("only %d file names seen in 15 s at ~1 MB/s with a 1Mi limit: %v", len(seen), seen)
	}
	if !gz {
		t.Errorf("no rotated file was gzipped: %v", seen)
	}
	if st, err := os.Stat(filepath.Join(dir, "0.log")); err != nil {
		t.Errorf("current log: %v", err)
	} else if st.Size() > 8<<20 {
		t.Errorf("current log is %d bytes: not rotated", st.Size())
	}
	// Between two passes the two newest rotated files may both be plain (the newer was rotated
	// after the older was left as the newest); anything older is gzipped.
	var plain int
	for _, f := range files {
		if f != "0.log" && !strings.HasSuffix(f, ".gz") {
			plain++
		}
	}
	if plain > 2 {
		t.Errorf("%d rotated files are not gzipped: %v", plain, files)
	}

	// kubectl logs still reads new lines after the rotations.
	after := lastLine()
	if before == 0 || after <= before {
		t.Errorf("last line %d after the rotations, %d before: want it to advance", after, before)
	}

	// The follow stream went on across the rotations, every line in order, none lost.
	got := <-followed
	if len(got) < 5000 {
		t.Fatalf("follow read only %d lines in 15 s", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("follow: line %d after line %d (at %d of %d lines)", got[i], got[i-1], i, len(got))
		}
	}
	t.Logf("follow read lines %d..%d", got[0], got[len(got)-1])
}
