//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
)

func podReadyN(name string, ready int) func(agent.PodList) bool {
	return func(l agent.PodList) bool {
		p := findPod(l, name)
		return p != nil && p.Phase == "Running" && p.Ready == ready
	}
}

// TestProbesReal runs every probe handler for real against containerd: each passes and fails at
// least once, readiness flips both ways, a failing liveness probe restarts its container in time,
// and a startup probe holds liveness back until it passes.
func TestProbesReal(t *testing.T) {
	e := newEnv(t)
	e.writeManifest("http.yaml", `apiVersion: v1
kind: Pod
metadata: {name: http}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    # sh stays PID 1 and exits on SIGTERM (httpd as PID 1 would ignore it and wait out the grace).
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"]
    ports: [{name: http, containerPort: 80}]
    readinessProbe:            # exec: passes once /tmp/ready exists
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:             # httpGet by port name: fails once the page is gone
      httpGet: {path: /index.html, port: http}
      periodSeconds: 1
      failureThreshold: 3
`)
	e.writeManifest("tcp.yaml", `apiVersion: v1
kind: Pod
metadata: {name: tcp}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && exec sleep 3600"]
    readinessProbe:
      tcpSocket: {port: 8081}
      periodSeconds: 1
      failureThreshold: 1
`)
	e.writeManifest("grpc.yaml", `apiVersion: v1
kind: Pod
metadata: {name: grpc}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["grpchealth", "-port", "9090", "-service", "berth", "-fail-file", "/tmp/unhealthy"]
    readinessProbe:
      grpc: {port: 9090, service: berth}
      periodSeconds: 1
      failureThreshold: 1
`)
	e.writeManifest("startup.yaml", `apiVersion: v1
kind: Pod
metadata: {name: startup}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 60
    livenessProbe:             # always fails: only the startup probe keeps it from killing
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 1
`)
	e.start()
	l := e.waitPods("all Running", 15*time.Second, func(l agent.PodList) bool {
		for _, n := range []string{"http", "tcp", "grpc", "startup"} {
			if p := findPod(l, n); p == nil || p.Phase != "Running" {
				return false
			}
		}
		return true
	})
	id := func(name string) string { return findPod(e.pods(), name).Containers[0].ID }

	// exec readiness: fails (starts unready), passes, fails again.
	e.waitPods("http unready without /tmp/ready", 5*time.Second, podReadyN("http", 0))
	e.exec(id("http"), "touch", "/tmp/ready")
	e.waitPods("http ready", 5*time.Second, podReadyN("http", 1))
	e.exec(id("http"), "rm", "/tmp/ready")
	e.waitPods("http unready again", 5*time.Second, podReadyN("http", 0))

	// tcpSocket: fails with nothing listening, passes once something listens.
	e.waitPods("tcp unready", 5*time.Second, podReadyN("tcp", 0))
	e.exec(id("tcp"), "httpd", "-p", "8081", "-h", "/www") // busybox httpd daemonises
	e.waitPods("tcp ready", 5*time.Second, podReadyN("tcp", 1))
	e.exec(id("tcp"), "killall", "httpd")
	e.waitPods("tcp unready again", 5*time.Second, podReadyN("tcp", 0))

	// grpc: SERVING passes, NOT_SERVING fails.
	e.waitPods("grpc ready", 10*time.Second, podReadyN("grpc", 1))
	e.exec(id("grpc"), "touch", "/tmp/unhealthy")
	e.waitPods("grpc unready", 5*time.Second, podReadyN("grpc", 0))
	e.exec(id("grpc"), "rm", "/tmp/unhealthy")
	e.waitPods("grpc ready again", 5*time.Second, podReadyN("grpc", 1))

	// startup gates liveness: the always-failing liveness probe kills nothing until startup passes.
	time.Sleep(3 * time.Second)
	if p := findPod(e.pods(), "startup"); p.Restarts != 0 || p.Ready != 0 {
		t.Fatalf("startup pod before its startup probe passed: restarts %d ready %d", p.Restarts, p.Ready)
	}
	e.exec(id("startup"), "touch", "/tmp/started")
	e.waitPods("liveness restarts startup once started", 10*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "startup")
		return p != nil && p.Restarts >= 1
	})

	// httpGet liveness (by port name): passes while the page is there, and once it is removed the
	// container is restarted within periodSeconds × failureThreshold + 2 s.
	if p := findPod(e.pods(), "http"); p.Restarts != 0 {
		t.Fatalf("http restarted while its liveness probe passed: %+v", p)
	}
	removed := time.Now()
	e.exec(id("http"), "rm", "/www/index.html")
	e.waitPods("http restarted by liveness", 1*3*time.Second+2*time.Second, func(l agent.PodList) bool {
		p := findPod(l, "http")
		return p != nil && p.Restarts == 1 && p.Containers[0].State == "running"
	})
	t.Logf("liveness restart %s after the page was removed", time.Since(removed).Round(time.Millisecond))
	log := string(mustRead(t, e.logPath))
	if !strings.Contains(log, "failed liveness probe") || !strings.Contains(log, "404") {
		t.Errorf("the log does not say why the container was killed (want the liveness failure and the HTTP status)")
	}
	_ = l
}
