package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runDirect is the physical limit of a burst: the sandboxes and containers Berth would create for
// the same pods (Berth's own translation of the pod into CRI configs), started by a plain CRI
// client with no agent, no API server and no status: RunPodSandbox, CreateContainer,
// StartContainer per pod. All pods in parallel (the row), then one after the other
// (wall_sequential_s).
func (h *harness) runDirect(sc scenario) (res result) {
	res = result{Scenario: sc.name, Agent: agentCRIDirect, Pods: sc.pods, Load1: load1()}
	fail := func(err error) result {
		res.Error = err.Error()
		logf("%s: FAILED: %v", sc.name, err)
		return res
	}
	c, err := h.runtime()
	if err != nil {
		return fail(err)
	}
	rt := c.rt
	if err := removeBenchPods(rt); err != nil {
		return fail(err)
	}
	defer removeDirectCgroups()
	defer removeBenchPods(rt)
	work := filepath.Join(h.work, sc.name)
	_ = os.RemoveAll(work)
	defer removeWork(work)
	logs := filepath.Join(work, "pods")
	dns, err := hostDNS()
	if err != nil {
		return fail(err)
	}
	rpid := containerdPid()

	build := func(prefix string) ([]*runtimeapi.PodSandboxConfig, []*runtimeapi.ContainerConfig, error) {
		var sbs []*runtimeapi.PodSandboxConfig
		var cs []*runtimeapi.ContainerConfig
		for i := range sc.pods {
			p := benchPod(fmt.Sprintf("%s-%03d", prefix, i), h.cp.nodeName(), "direct", podOpts{})
			p.UID = types.UID(newUID())
			// A pod cgroup path as deep as the agents' (/berth-bench/kubepods/besteffort/pod<uid>,
			// /kubepods/besteffort/pod<uid>): the runtime makes the missing directories in every
			// hierarchy, as it makes the sandbox's under an agent's pod cgroup; left to its default
			// (one level), the plain client would start cheaper sandboxes than the agents'.
			sb, err := cri.PodSandboxConfig(p, cri.SandboxOptions{LogRoot: logs, DNS: dns,
				CgroupParent: directCgroupRoot + "/besteffort/pod" + string(p.UID)})
			if err != nil {
				return nil, nil, err
			}
			// Not Berth's: a Berth running on this runtime must leave these alone.
			delete(sb.Labels, cri.LabelManagedBy)
			cc, err := cri.ContainerConfig(p, &p.Spec.Containers[0], cri.ContainerOptions{Type: cri.ContainerTypeApp})
			if err != nil {
				return nil, nil, err
			}
			delete(cc.Labels, cri.LabelManagedBy)
			if err := os.MkdirAll(filepath.Join(sb.LogDirectory, p.Spec.Containers[0].Name), 0o755); err != nil {
				return nil, nil, err
			}
			sbs, cs = append(sbs, sb), append(cs, cc)
		}
		return sbs, cs, nil
	}
	// sandboxes, when not nil, limits how many RunPodSandbox calls run at once (-direct-limits).
	var sandboxes chan struct{}
	start := func(sb *runtimeapi.PodSandboxConfig, cc *runtimeapi.ContainerConfig) error {
		ctx := context.Background()
		if sandboxes != nil {
			sandboxes <- struct{}{}
		}
		id, err := rt.RunPodSandbox(ctx, sb, "")
		if sandboxes != nil {
			<-sandboxes
		}
		if err != nil {
			return err
		}
		cid, err := rt.CreateContainer(ctx, id, cc, sb)
		if err != nil {
			return err
		}
		return rt.StartContainer(ctx, cid)
	}

	// Parallel.
	sbs, cs, err := build("direct-par")
	if err != nil {
		return fail(err)
	}
	lat := make([]float64, sc.pods)
	errs := make(chan error, sc.pods)
	var wg sync.WaitGroup
	var rtProfiled <-chan error
	if h.cpuProfile {
		rtProfiled = profileContainerd(containerdProfileWindow, filepath.Join(h.results, "profiles", h.outName(sc, agentCRIDirect)+".containerd.pprof"))
	}
	meter := startCPUMeter(rpid, h.cp.pids())
	t0 := time.Now()
	for i := range sbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := time.Now()
			if err := start(sbs[i], cs[i]); err != nil {
				errs <- err
				return
			}
			lat[i] = ms(time.Since(ts))
		}()
	}
	wg.Wait()
	res.Wall = time.Since(t0).Seconds()
	share := meter.stop()
	if rtProfiled != nil {
		if err := <-rtProfiled; err != nil {
			logf("%s: no containerd profile: %v", sc.name, err)
		}
	}
	res.RuntimeCPU, res.Machine = share.Runtime, &share
	close(errs)
	if err := <-errs; err != nil {
		return fail(err)
	}
	setLatencies(&res, lat)
	logf("%s: %d pods started in parallel in %.2fs", sc.name, sc.pods, res.Wall)
	if err := removeBenchPods(rt); err != nil {
		return fail(err)
	}

	// Sequential.
	if sbs, cs, err = build("direct-seq"); err != nil {
		return fail(err)
	}
	t0 = time.Now()
	for i := range sbs {
		if err := start(sbs[i], cs[i]); err != nil {
			return fail(err)
		}
	}
	res.WallSequential = time.Since(t0).Seconds()
	res.Note = fmt.Sprintf("sequential: %.2f s", res.WallSequential)
	logf("%s: %d pods started one after the other in %.2fs", sc.name, sc.pods, res.WallSequential)

	// -direct-limits: all pods at once again, at most n sandboxes being created at a time (their
	// containers are not limited): does a runtime this busy start a burst sooner when fed less at
	// once?
	for _, n := range h.directLimits {
		if err := removeBenchPods(rt); err != nil {
			return fail(err)
		}
		if h.quiet != nil {
			h.quiet()
		}
		if sbs, cs, err = build(fmt.Sprintf("direct-lim%d", n)); err != nil {
			return fail(err)
		}
		sandboxes = make(chan struct{}, n)
		errs := make(chan error, len(sbs))
		t0 = time.Now()
		for i := range sbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := start(sbs[i], cs[i]); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		wall := time.Since(t0).Seconds()
		close(errs)
		if err := <-errs; err != nil {
			return fail(err)
		}
		if res.LimitWalls == nil {
			res.LimitWalls = map[string]float64{}
		}
		res.LimitWalls[strconv.Itoa(n)] = wall
		res.Note += fmt.Sprintf("; at most %d sandboxes at a time: %.2f s", n, wall)
		logf("%s: %d pods, at most %d sandboxes at a time, in %.2fs", sc.name, sc.pods, n, wall)
	}
	return res
}

// hostDNS is the DNS config Berth gives a ClusterFirst pod with the bench's cluster DNS.
func hostDNS() (*runtimeapi.DNSConfig, error) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	p := &v1.Pod{Spec: v1.PodSpec{DNSPolicy: v1.DNSClusterFirst}}
	return cri.DNSConfigForPod(p, cri.ParseResolvConf(b), []string{clusterDNS}, clusterDomain)
}

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// directCgroupRoot holds the plain client's pod cgroups (removeDirectCgroups).
const directCgroupRoot = berthCgroupRoot + "/direct"

// removeDirectCgroups removes directCgroupRoot from every cgroup hierarchy once the sandboxes are
// gone: the runtime removes the sandboxes' and containers' own cgroups, not the parents it made.
func removeDirectCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + directCgroupRoot)
	if dir := "/sys/fs/cgroup" + directCgroupRoot; exists(dir) {
		roots = append(roots, dir) // cgroup v2
	}
	removeCgroupTrees(roots)
}
