package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on Linux.
const clockTicks = 100

// procSample is what /proc says about a process at one moment.
type procSample struct {
	CPU     time.Duration // user + system, the process and its waited-for children
	RSS     int64         // VmRSS, bytes
	HWM     int64         // VmHWM (peak RSS since start), bytes
	RSSAnon int64         // RssAnon: heap, stacks (bytes)
	RSSFile int64         // RssFile: mapped files, mostly the binary's own pages (bytes)
	Threads int
	FDs     int
}

// readProc reads /proc/<pid>/stat, status and fd.
func readProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14..17.
	if len(f) < 15 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return s, fmt.Errorf("/proc/%d/stat field %d: %v", pid, k+3, err)
		}
		ticks += v
	}
	s.CPU = time.Duration(ticks) * time.Second / clockTicks

	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS", "VmHWM", "RssAnon", "RssFile":
			n, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			switch k {
			case "VmRSS":
				s.RSS = n << 10
			case "VmHWM":
				s.HWM = n << 10
			case "RssAnon":
				s.RSSAnon = n << 10
			case "RssFile":
				s.RSSFile = n << 10
			}
		case "Threads":
			s.Threads, _ = strconv.Atoi(v)
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(ents)
	return s, nil
}

// rssSampler samples a process's RSS every period and keeps the peak since the last reset: VmHWM
// is the peak since the process started, not since a scenario's window opened.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak int64
}

func newRSSSampler(pid int, period time.Duration) *rssSampler {
	r := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			r.sample()
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
		}
	}()
	return r
}

func (r *rssSampler) sample() {
	s, err := readProc(r.pid)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.peak = max(r.peak, s.RSS)
	r.mu.Unlock()
}

// Reset starts a new window; Peak is the largest RSS seen since.
func (r *rssSampler) Reset() {
	r.mu.Lock()
	r.peak = 0
	r.mu.Unlock()
	r.sample()
}

func (r *rssSampler) Peak() int64 {
	r.sample()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}

func (r *rssSampler) Close() {
	close(r.stop)
	<-r.done
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// machineCPU is the CPU the whole machine spent, from the first line of /proc/stat: busy is user,
// nice, system, irq, softirq and steal; all adds idle and iowait (so all/elapsed = the cores).
func machineCPU() (busy, all time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks [8]int64
	for i := range ticks {
		ticks[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	b1 := ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
	a1 := b1 + ticks[3] + ticks[4]
	return time.Duration(b1) * time.Second / clockTicks, time.Duration(a1) * time.Second / clockTicks
}

// cpuShare is where the machine's CPU went during a window: the whole machine, and the processes
// of the test environment that share it with the agent.
type cpuShare struct {
	Busy, All    float64 // machine CPU-s: busy, and busy + idle
	Runtime      float64 // containerd (its own threads and the CNI plugins it waited for; not the shims)
	ControlPlane float64 // kube-apiserver + etcd
	Bench        float64 // this harness: its API proxy, its watch of the pods, the fake CRI when it serves one
}

// cpuMeter reads a cpuShare between start and stop.
type cpuMeter struct {
	runtimePid int
	cpPids     []int
	busy, all  time.Duration
	rt, cp     time.Duration
	self       time.Duration
}

func startCPUMeter(runtimePid int, cpPids []int) *cpuMeter {
	m := &cpuMeter{runtimePid: runtimePid, cpPids: cpPids}
	m.busy, m.all = machineCPU()
	m.rt, m.cp, m.self = procCPU(runtimePid), m.cpCPU(), procCPU(os.Getpid())
	return m
}

func (m *cpuMeter) cpCPU() time.Duration {
	var d time.Duration
	for _, pid := range m.cpPids {
		d += procCPU(pid)
	}
	return d
}

func (m *cpuMeter) stop() cpuShare {
	busy, all := machineCPU()
	return cpuShare{
		Busy: (busy - m.busy).Seconds(), All: (all - m.all).Seconds(),
		Runtime: (procCPU(m.runtimePid) - m.rt).Seconds(), ControlPlane: (m.cpCPU() - m.cp).Seconds(),
		Bench: (procCPU(os.Getpid()) - m.self).Seconds(),
	}
}
