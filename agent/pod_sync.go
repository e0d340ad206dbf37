package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podSync is one pass of a worker over its pod: it reads the runtime, makes one step of progress
// towards the spec (sandbox, then init containers one at a time, then app containers), and records
// why a container is not running where only the sync can know it (back-off, image errors).
type podSync struct {
	w   *podWorker
	pod *v1.Pod
	rt  *podRuntime
	log *slog.Logger

	sandboxConfig *runtimeapi.PodSandboxConfig
	waiting       map[string]*v1.ContainerStateWaiting
	// err is a pod-level error of this sync (sandbox creation, runtime calls), shown as LAST ERROR.
	err string
	// requeue is when the worker should sync again unless woken earlier; requeueAsked is set once
	// the step asked for a time (a back-off, a retry).
	requeue      time.Duration
	requeueAsked bool
	// startedNow holds the instances this sync started (postStart hook passed), by waiting key;
	// stoppedNow the instances it stopped.
	startedNow map[string]string
	stoppedNow map[string]bool
}

func (s *podSync) requeueIn(d time.Duration) {
	s.requeueAsked = true
	if d > 0 && d < s.requeue {
		s.requeue = d
	}
}

// step makes progress and reports whether it changed anything in the runtime (then the caller reads
// the runtime again before computing status).
func (s *podSync) step(ctx context.Context) (acted bool) {
	pre := s.w.computeStatus(s.pod, s.rt, nil, "")
	// A pod the API already calls Succeeded or Failed is never started again, whatever the runtime
	// still holds (containers garbage-collected while Berth was down, for instance).
	if podIsTerminal(&pre) || terminal(s.pod) {
		// Done for good: free the sandbox's network (as the kubelet does), keep the containers for
		// their logs and exit codes until the pod is removed. Whatever still runs (the sidecars of
		// a pod whose regular init container failed under restartPolicy Never, an evicted pod's
		// containers) is stopped first, gracefully.
		grace := s.w.gracePeriod() // a kill's (eviction, node shutdown) when shorter
		if running := s.running(); len(running) > 0 {
			if err := s.w.stopContainers(ctx, s.pod, s.rt, running, grace, killingMessage); err != nil {
				s.err = err.Error()
				s.requeueIn(time.Second)
				return true
			}
		}
		if sb := s.rt.currentSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if err := s.w.m.rt.StopPodSandbox(ctx, sb.Id); err != nil {
				s.err = err.Error()
				s.requeueIn(time.Second)
			}
			return true
		}
		if cg := s.w.m.cfg.Cgroups; cg != nil {
			// Nothing of the pod runs any more: its cgroup goes now, as with the kubelet (the
			// burstable class stops counting its request), not when the pod is removed.
			if err := cg.RemovePod(s.w.uid); err != nil {
				s.err = err.Error()
				s.requeueIn(time.Second)
			}
		}
		return false
	}
	if !s.setUpVolumes(ctx) {
		return false
	}
	if !s.rt.sandboxReady() {
		if !s.createSandbox(ctx) {
			return true
		}
		acted = true
	}
	sb := s.rt.currentSandbox()
	if err := s.buildSandboxConfig(sb.Metadata.GetAttempt()); err != nil {
		s.err = err.Error()
		return acted
	}

	if s.appsCompleted(sb.Id) {
		// Every app container finished for good (restartPolicy Never or OnFailure): the sidecars
		// still running are stopped, in reverse order, and the pod then ends Succeeded or Failed.
		// Nothing is started again.
		running := s.running()
		if len(running) == 0 {
			return acted
		}
		s.log.Info("app containers completed: stopping the sidecars")
		if err := s.w.stopContainers(ctx, s.pod, s.rt, running, s.w.gracePeriod(), killingMessage); err != nil {
			s.err = err.Error()
			s.requeueIn(time.Second)
		}
		return true
	}

	// Init containers run in order. A regular one must succeed before the next starts; a sidecar
	// (restartPolicy Always) only has to be started (and its startup probe passed), then keeps
	// running beside the app containers and is restarted whenever it exits. Once app containers
	// exist in the sandbox, initialization is over: regular init containers never run again and
	// sidecars block nothing.
	initialized := s.initialized(sb.Id)
	restartInit := s.pod.Spec.RestartPolicy
	if restartInit == v1.RestartPolicyAlways {
		restartInit = v1.RestartPolicyOnFailure // init containers must succeed once, never rerun after success
	}
	for i := range s.pod.Spec.InitContainers {
		c := &s.pod.Spec.InitContainers[i]
		inst := s.rt.newestIn(sb.Id, cri.ContainerTypeInit, c.Name)
		if isSidecar(c) {
			acted = s.ensureContainer(ctx, c, cri.ContainerTypeInit, inst, v1.RestartPolicyAlways) || acted
			if !initialized && !s.sidecarStarted(c, inst) {
				return acted // the next init container waits until this sidecar has started
			}
			continue
		}
		if initialized {
			continue
		}
		if inst != nil && inst.exited() && inst.exitCode() == 0 {
			continue
		}
		if inst != nil && inst.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return acted // wait for it to finish: init containers run one at a time
		}
		acted = s.ensureContainer(ctx, c, cri.ContainerTypeInit, inst, restartInit) || acted
		return acted
	}
	for i := range s.pod.Spec.Containers {
		c := &s.pod.Spec.Containers[i]
		inst := s.rt.newestIn(sb.Id, cri.ContainerTypeApp, c.Name)
		acted = s.ensureContainer(ctx, c, cri.ContainerTypeApp, inst, s.pod.Spec.RestartPolicy) || acted
	}
	s.collectGarbage(ctx)
	return acted
}

// running returns the pod's running container instances.
func (s *podSync) running() []*containerRecord {
	var out []*containerRecord
	for _, c := range s.rt.containers {
		if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			out = append(out, c)
		}
	}
	return out
}

// initialized reports whether the pod's initialization is over in the sandbox: app containers were
// created in it.
func (s *podSync) initialized(sandboxID string) bool {
	for _, c := range s.rt.containers {
		if c.sandboxID == sandboxID && c.typ == cri.ContainerTypeApp {
			return true
		}
	}
	return false
}

// sidecarStarted reports whether a sidecar lets the next init container start: it runs (started by
// this sync, or found running and not stopped by it) and its startup probe, if it has one, passed.
func (s *podSync) sidecarStarted(c *v1.Container, inst *containerRecord) bool {
	if s.startedNow[waitingKey(cri.ContainerTypeInit, c.Name)] != "" {
		return c.StartupProbe == nil // its probe has not even run yet
	}
	if inst == nil || inst.state != runtimeapi.ContainerState_CONTAINER_RUNNING || s.stoppedNow[inst.id] {
		return false
	}
	return c.StartupProbe == nil || s.w.m.prober.Started(inst.id)
}

// appsCompleted reports whether every app container of the pod has exited in the sandbox and will
// not be restarted (never under restartPolicy Always).
func (s *podSync) appsCompleted(sandboxID string) bool {
	policy := s.pod.Spec.RestartPolicy
	if policy == v1.RestartPolicyAlways || len(s.pod.Spec.Containers) == 0 {
		return false
	}
	for _, c := range s.pod.Spec.Containers {
		inst := s.rt.newestIn(sandboxID, cri.ContainerTypeApp, c.Name)
		if inst == nil || !inst.exited() || shouldRestart(policy, inst.exitCode()) {
			return false
		}
	}
	return true
}

func (s *podSync) buildSandboxConfig(attempt uint32) error {
	m := s.w.m
	var parent string
	if cg := m.cfg.Cgroups; cg != nil {
		// The pod cgroup exists, with the pod's limits, before the runtime puts the sandbox and
		// the containers under it.
		if err := cg.EnsurePod(s.pod); err != nil {
			return err
		}
		parent = cg.PodParent(s.pod)
	}
	cfg, err := cri.PodSandboxConfig(s.pod, cri.SandboxOptions{
		LogRoot:      m.cfg.PodLogsDir,
		CgroupParent: parent,
		Attempt:      attempt,
		DNS:          s.w.dnsConfig(s.pod),
	})
	if err != nil {
		return fmt.Errorf("sandbox config: %w", err)
	}
	s.sandboxConfig = cfg
	return nil
}

// createSandbox replaces a missing or dead sandbox. A pod has one live sandbox: whatever still runs
// in an older one is stopped first, and the new sandbox's containers start afresh.
func (s *podSync) createSandbox(ctx context.Context) bool {
	m := s.w.m
	key := s.w.key("sandbox")
	if left := m.createBackoff.waitSinceUpdate(key); left > 0 {
		s.err = s.w.lastSandboxErr
		s.requeueIn(left)
		return false
	}
	var running []*containerRecord
	for _, c := range s.rt.containers {
		if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running = append(running, c)
		}
	}
	if err := s.w.stopContainers(ctx, s.pod, s.rt, running, s.w.gracePeriod(), func(name string) string {
		return "Stopping container " + name + ": the pod sandbox is gone and will be re-created"
	}); err != nil {
		s.err = err.Error()
		s.requeueIn(time.Second)
		return false
	}
	for _, sb := range s.rt.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			_ = m.rt.StopPodSandbox(ctx, sb.Id)
		}
	}
	var attempt uint32
	if cur := s.rt.currentSandbox(); cur != nil {
		attempt = cur.Metadata.GetAttempt() + 1
	}
	if err := s.buildSandboxConfig(attempt); err != nil {
		s.err = err.Error()
		s.requeueIn(time.Second)
		return false
	}
	if err := os.MkdirAll(s.sandboxConfig.LogDirectory, 0o755); err != nil {
		s.err = fmt.Sprintf("pod log directory: %v", err)
		s.requeueIn(time.Second)
		return false
	}
	start := m.clock.Now()
	id, err := m.rt.RunPodSandbox(ctx, s.sandboxConfig, "")
	if err != nil {
		s.err = "FailedCreatePodSandBox: " + err.Error()
		s.w.lastSandboxErr = s.err
		m.createBackoff.next(key, m.clock.Now())
		s.requeueIn(time.Second)
		s.log.Error("creating pod sandbox failed", "attempt", attempt, "err", err)
		s.w.event(s.pod, "", v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return false
	}
	s.log.Info("started pod sandbox", "sandbox", id, "attempt", attempt, "took", m.clock.Since(start).Round(time.Millisecond))
	rt, err := s.w.observe(ctx)
	if err != nil {
		s.err = err.Error()
		s.requeueIn(time.Second)
		return false
	}
	s.rt = rt
	return s.rt.sandboxReady()
}

// shouldRestart applies a restart policy to a container that exited with code.
func shouldRestart(policy v1.RestartPolicy, code int32) bool {
	switch policy {
	case v1.RestartPolicyAlways:
		return true
	case v1.RestartPolicyOnFailure:
		return code != 0
	}
	return false
}

// ensureContainer brings one container towards running and reports whether it acted.
func (s *podSync) ensureContainer(ctx context.Context, c *v1.Container, typ string, inst *containerRecord, policy v1.RestartPolicy) bool {
	m := s.w.m
	switch {
	case inst == nil:
		return s.startContainer(ctx, c, typ, s.rt.nextRestartCount(typ, c.Name))
	case inst.state == runtimeapi.ContainerState_CONTAINER_RUNNING:
		if k, failed := m.prober.LivenessFailed(inst.id); failed {
			grace := k.GracePeriod(s.w.gracePeriod())
			s.log.Info("killing container: "+k.Message, "container", c.Name, "id", inst.id, "probeOutput", k.Output, "gracePeriod", grace)
			s.stoppedNow[inst.id] = true
			if err := s.w.stopContainers(ctx, s.pod, s.rt, []*containerRecord{inst}, grace, func(string) string { return k.Message }); err != nil {
				s.err = err.Error()
				s.requeueIn(time.Second)
				return false
			}
			s.requeueIn(time.Millisecond) // restart it (per restartPolicy) on the next pass
			return true
		}
		if inst.hash != "" && inst.hash != cri.ContainerHash(c) {
			s.log.Info("container spec changed, replacing it", "container", c.Name)
			s.stoppedNow[inst.id] = true
			if err := s.w.stopContainers(ctx, s.pod, s.rt, []*containerRecord{inst}, s.w.gracePeriod(), func(name string) string {
				return fmt.Sprintf("Container %s definition changed, will be restarted", name)
			}); err != nil {
				s.err = err.Error()
				return false
			}
			return s.startContainer(ctx, c, typ, inst.restartCount+1)
		}
		return false
	case inst.state == runtimeapi.ContainerState_CONTAINER_CREATED:
		// Created but never started: Berth stopped between the two calls. Start it now.
		key := s.w.key(typ + "/" + c.Name + "/start")
		if left := m.createBackoff.waitSinceUpdate(key); left > 0 {
			s.waiting[waitingKey(typ, c.Name)] = &v1.ContainerStateWaiting{Reason: reasonRunContainerError, Message: s.w.lastStartErr[c.Name]}
			s.requeueIn(left)
			return false
		}
		if err := m.rt.StartContainer(ctx, inst.id); err != nil {
			m.createBackoff.next(key, m.clock.Now())
			s.w.lastStartErr[c.Name] = err.Error()
			s.waiting[waitingKey(typ, c.Name)] = &v1.ContainerStateWaiting{Reason: reasonRunContainerError, Message: err.Error()}
			s.requeueIn(time.Second)
		}
		return true
	default: // exited
		if !shouldRestart(policy, inst.exitCode()) {
			return false
		}
		key := s.w.key(typ + "/" + c.Name)
		finished := time.Unix(0, inst.finishedAt())
		if left := m.crashBackoff.wait(key, finished); left > 0 {
			if s.w.reportedBackOff[key] != inst.id {
				s.w.reportedBackOff[key] = inst.id
				s.w.event(s.pod, c.Name, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, s.w.fullName())
			}
			s.waiting[waitingKey(typ, c.Name)] = &v1.ContainerStateWaiting{
				Reason:  reasonCrashLoopBackOff,
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", m.crashBackoff.delay(key), c.Name, s.w.fullName()),
			}
			s.requeueIn(left)
			return false
		}
		m.crashBackoff.next(key, finished)
		return s.startContainer(ctx, c, typ, inst.restartCount+1)
	}
}

// startContainer pulls the image if the policy says so, then creates and starts one instance.
func (s *podSync) startContainer(ctx context.Context, c *v1.Container, typ string, restartCount int) bool {
	m := s.w.m
	wkey := waitingKey(typ, c.Name)
	ckey := s.w.key(typ + "/" + c.Name + "/create")
	if left := m.createBackoff.waitSinceUpdate(ckey); left > 0 {
		s.waiting[wkey] = s.w.lastCreateWaiting[wkey]
		s.requeueIn(left)
		return false
	}
	createFailed := func(w *v1.ContainerStateWaiting) {
		s.waiting[wkey] = w
		s.w.lastCreateWaiting[wkey] = w
		m.createBackoff.next(ckey, m.clock.Now())
		s.requeueIn(time.Second)
		s.log.Error("cannot start container", "container", c.Name, "reason", w.Reason, "err", w.Message)
		s.w.event(s.pod, c.Name, v1.EventTypeWarning, "Failed", "Error: %s", w.Message)
	}
	if w := s.ensureImage(ctx, c); w != nil {
		s.waiting[wkey] = w
		return true
	}
	configMaps, secrets, err := m.env.forContainer(ctx, s.pod, c)
	if err != nil {
		createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerConfig, Message: err.Error()})
		return false
	}
	opts := cri.ContainerOptions{
		RestartCount:       restartCount,
		PodIPs:             s.podIPs(),
		HostIPs:            m.cfg.NodeIPs,
		Type:               typ,
		NodeMemoryCapacity: m.cfg.NodeMemoryCapacity,
		ConfigMaps:         configMaps,
		Secrets:            secrets,
	}
	cfg, err := cri.ContainerConfig(s.pod, c, opts)
	if err != nil {
		createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerConfig, Message: err.Error()})
		return false
	}
	s.reportInvalidEnvFromKeys(c, configMaps, secrets)
	if len(c.VolumeMounts) > 0 {
		if m.volumes == nil {
			createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerConfig, Message: "volumes need a root directory"})
			return false
		}
		vars := make(map[string]string, len(cfg.Envs))
		for _, kv := range cfg.Envs {
			vars[kv.Key] = string(kv.Value)
		}
		mounts, err := m.volumes.ContainerMounts(s.pod, c, vars)
		if err != nil {
			createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerConfig, Message: err.Error()})
			return false
		}
		cfg.Mounts = append(mounts, cfg.Mounts...)
	}
	mount, err := terminationMessageMount(m.cfg.RootDir, s.w.uid, c, restartCount)
	if err != nil {
		createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerError, Message: err.Error()})
		return false
	}
	if mount != nil {
		cfg.Mounts = append(cfg.Mounts, mount)
	}
	if err := os.MkdirAll(filepath.Join(s.sandboxConfig.LogDirectory, c.Name), 0o755); err != nil {
		createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerError, Message: err.Error()})
		return false
	}
	id, err := m.rt.CreateContainer(ctx, s.rt.currentSandbox().Id, cfg, s.sandboxConfig)
	if err != nil {
		createFailed(&v1.ContainerStateWaiting{Reason: reasonCreateContainerError, Message: err.Error()})
		return true
	}
	s.w.event(s.pod, c.Name, v1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if err := m.rt.StartContainer(ctx, id); err != nil {
		// The instance exists and ends up exited: the crash back-off takes it from here.
		s.waiting[wkey] = &v1.ContainerStateWaiting{Reason: reasonRunContainerError, Message: err.Error()}
		s.log.Error("starting container failed", "container", c.Name, "id", id, "err", err)
		s.w.event(s.pod, c.Name, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return true
	}
	s.w.event(s.pod, c.Name, v1.EventTypeNormal, "Started", "Started container %s", c.Name)
	m.exits.watch(s.w.uid, id)
	delete(s.w.lastCreateWaiting, wkey)
	s.log.Info("started container", "container", c.Name, "id", id, "restartCount", restartCount)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil && !s.postStart(ctx, c, typ, id, restartCount) {
		return true
	}
	s.startedNow[wkey] = id
	return true
}

// postStart runs the container's postStart hook, right after its start; the sync goes on only when
// it returns. A failed hook kills the container (its preStop hook runs, with the pod's grace
// period) and the restart policy applies; the container waits with reason PostStartHookError until
// then.
func (s *podSync) postStart(ctx context.Context, c *v1.Container, typ, id string, restartCount int) bool {
	call := hookCall{kind: "PostStart", pod: s.pod.Namespace + "/" + s.pod.Name, container: c, containerID: id, podIP: s.w.hookPodIP(s.pod, s.rt)}
	err := s.w.m.hooks.run(ctx, call, c.Lifecycle.PostStart)
	if err == nil {
		return true
	}
	if ctx.Err() != nil {
		return false // the pod is being removed: its termination stops the container
	}
	s.log.Error("postStart hook failed: killing the container", "container", c.Name, "id", id, "err", err)
	s.w.event(s.pod, c.Name, v1.EventTypeWarning, "FailedPostStartHook", "%v", err)
	s.waiting[waitingKey(typ, c.Name)] = &v1.ContainerStateWaiting{Reason: reasonPostStartHookError, Message: err.Error()}
	rec := &containerRecord{id: id, name: c.Name, typ: typ, restartCount: restartCount, state: runtimeapi.ContainerState_CONTAINER_RUNNING}
	s.stoppedNow[id] = true
	if err := s.w.stopContainers(ctx, s.pod, s.rt, []*containerRecord{rec}, s.w.gracePeriod(), func(string) string { return "FailedPostStartHook" }); err != nil {
		s.err = err.Error()
		s.requeueIn(time.Second)
		return false
	}
	s.requeueIn(time.Millisecond) // restart it (per restartPolicy) on the next pass
	return false
}

// reportInvalidEnvFromKeys emits the kubelet's event for envFrom keys skipped because they are not
// valid variable names.
func (s *podSync) reportInvalidEnvFromKeys(c *v1.Container, configMaps map[string]map[string]string, secrets map[string]map[string][]byte) {
	for _, from := range c.EnvFrom {
		var kind, name string
		var keys []string
		switch {
		case from.ConfigMapRef != nil:
			kind, name = "configMap", from.ConfigMapRef.Name
			for k := range configMaps[name] {
				keys = append(keys, k)
			}
		case from.SecretRef != nil:
			kind, name = "secret", from.SecretRef.Name
			for k := range secrets[name] {
				keys = append(keys, k)
			}
		}
		var invalid []string
		for _, k := range keys {
			if !cri.ValidEnvFromName(from.Prefix + k) {
				invalid = append(invalid, from.Prefix+k)
			}
		}
		if len(invalid) > 0 {
			sort.Strings(invalid)
			s.w.event(s.pod, c.Name, v1.EventTypeWarning, "InvalidEnvironmentVariableNames",
				"Keys [%s] from the EnvFrom %s %s/%s were skipped since they are considered invalid environment variable names.",
				strings.Join(invalid, ", "), kind, s.pod.Namespace, name)
		}
	}
}

func (s *podSync) podIPs() []string {
	ss := s.rt.sandboxStatus
	if ss == nil || ss.Network == nil || ss.Network.Ip == "" {
		if s.pod.Spec.HostNetwork {
			return s.w.m.cfg.NodeIPs
		}
		return nil
	}
	ips := []string{ss.Network.Ip}
	for _, ip := range ss.Network.AdditionalIps {
		ips = append(ips, ip.Ip)
	}
	return ips
}

// ensureImage applies the pull policy; it returns why the container must wait, or nil.
func (s *podSync) ensureImage(ctx context.Context, c *v1.Container) *v1.ContainerStateWaiting {
	m := s.w.m
	img, err := m.rt.ImageStatus(ctx, c.Image)
	if err != nil {
		s.requeueIn(time.Second)
		return &v1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: err.Error()}
	}
	present := img != nil
	switch c.ImagePullPolicy {
	case v1.PullNever:
		if !present {
			s.requeueIn(m.cfg.SyncFrequency)
			return &v1.ContainerStateWaiting{Reason: reasonErrImageNeverPull, Message: fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)}
		}
		return nil
	case v1.PullIfNotPresent:
		if present {
			if !s.w.reportedPresent[c.Name] {
				s.w.reportedPresent[c.Name] = true
				s.w.event(s.pod, c.Name, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
			}
			return nil
		}
	}
	key := s.w.key("pull/" + c.Image)
	if left := m.pullBackoff.waitSinceUpdate(key); left > 0 {
		s.requeueIn(left)
		s.w.event(s.pod, c.Name, v1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.Image)
		return &v1.ContainerStateWaiting{Reason: reasonImagePullBackOff, Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
	}
	start := m.clock.Now()
	if !s.w.started && s.w.pullStart.IsZero() {
		s.w.pullStart = start
	}
	defer func() {
		if !s.w.started {
			s.w.pullEnd = m.clock.Now()
		}
	}()
	s.log.Info("pulling image", "container", c.Name, "image", c.Image)
	s.w.event(s.pod, c.Name, v1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	if _, err := m.rt.PullImage(ctx, c.Image, s.sandboxConfig); err != nil {
		m.pullBackoff.next(key, m.clock.Now())
		s.requeueIn(time.Second) // show ImagePullBackOff until the back-off ends
		s.log.Error("pulling image failed", "container", c.Name, "image", c.Image, "err", err)
		s.w.event(s.pod, c.Name, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		return &v1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: fmt.Sprintf("failed to pull image %q: %v", c.Image, err)}
	}
	took := m.clock.Since(start).Round(time.Millisecond)
	s.log.Info("pulled image", "container", c.Name, "image", c.Image, "took", took)
	s.w.event(s.pod, c.Name, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, took)
	return nil
}

// collectGarbage keeps, per container, the newest instance and the newest dead one (for its logs
// and exit code) and removes older dead instances, and removes dead sandboxes left empty.
func (s *podSync) collectGarbage(ctx context.Context) {
	m := s.w.m
	inUse := map[string]bool{}
	keptDead := map[string]bool{}
	for _, c := range s.rt.containers { // newest first
		key := c.typ + "/" + c.name
		if !c.exited() {
			inUse[c.sandboxID] = true
			continue
		}
		if !keptDead[key] {
			keptDead[key] = true
			inUse[c.sandboxID] = true
			continue
		}
		if err := m.rt.RemoveContainer(ctx, c.id); err != nil && !cri.IsNotFound(err) {
			s.log.Warn("removing dead container failed", "container", c.name, "id", c.id, "err", err)
			inUse[c.sandboxID] = true
			continue
		}
		if m.cfg.RootDir != "" {
			_ = os.Remove(terminationMessageFile(m.cfg.RootDir, s.w.uid, c.name, c.restartCount))
		}
	}
	for i, sb := range s.rt.sandboxes {
		if i == 0 || inUse[sb.Id] || sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		if err := m.rt.RemovePodSandbox(ctx, sb.Id); err != nil && !cri.IsNotFound(err) {
			s.log.Warn("removing dead sandbox failed", "sandbox", sb.Id, "err", err)
		}
	}
}

// setUpVolumes makes the pod's volumes ready before anything of the pod starts, and on every later
// sync refreshes the files of the volumes built from the API (configMap, secret, downwardAPI,
// projected). It reports whether the sync may go on. A failure is the kubelet's FailedMount: an
// event per distinct message, the pod's last error, retried with back-off. Until the volumes have
// been set up once, nothing of the pod starts; after that, a failed refresh (a ConfigMap deleted,
// the API server away) leaves the files as they were and the pod is managed as usual, as with the
// kubelet.
func (s *podSync) setUpVolumes(ctx context.Context) bool {
	if len(s.pod.Spec.Volumes) == 0 {
		return true
	}
	m := s.w.m
	if m.volumes == nil {
		s.err = "volumes need a root directory"
		return false
	}
	key := s.w.key("volumes")
	if left := m.createBackoff.waitSinceUpdate(key); left > 0 && s.w.lastMountErr != "" {
		s.err = s.w.lastMountErr
		s.requeueIn(left)
		return s.w.volumesReady
	}
	errs := m.volumes.SetUp(ctx, s.pod)
	if len(errs) == 0 {
		if s.w.lastMountErr != "" {
			m.createBackoff.forget(key)
		}
		s.w.lastMountErr = ""
		s.w.reportedMountErr = map[string]bool{}
		s.w.volumesReady = true
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
		if !s.w.reportedMountErr[msgs[i]] {
			s.w.reportedMountErr[msgs[i]] = true
			s.log.Error("volume setup failed", "volume", e.Volume, "err", e.Err)
			s.w.event(s.pod, "", v1.EventTypeWarning, "FailedMount", "%s", msgs[i])
		}
	}
	s.err = "FailedMount: " + strings.Join(msgs, "; ")
	s.w.lastMountErr = s.err
	m.createBackoff.next(key, m.clock.Now())
	s.requeueIn(time.Second)
	return s.w.volumesReady
}
