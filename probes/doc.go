// Package probes runs the liveness, readiness and startup probes of a node's containers and keeps
// their results, for the agent to act on. It is a leaf: it knows the Pod API and, through Execer,
// one CRI call; it never imports the agent, and never kills or restarts anything itself.
//
// # The seam
//
// The agent makes one Manager (NewManager) and, for each pod:
//
//	after every sync of the pod ── Sync(pod, podIP, containers) ──▶ Manager
//	                                                                  │ starts/stops workers
//	status computation ◀── Ready(id), Started(id) ──────────────────  │ (one goroutine each)
//	sync's kill step   ◀── LivenessFailed(id) → Kill (why, grace)     │
//	pod worker wake-up ◀── OnChange(podUID) ◀─────────────────────────┤ a result changed
//	events, log        ◀── OnEvent(Event) ◀───────────────────────────┘ an attempt failed/errored/warned
//	pod gone           ── RemovePod(uid);  agent shutdown ── Stop()
//
// Sync is given the container instances the agent sees in the runtime (name, ID, start time,
// running). A running instance whose container (an app container or a sidecar) has probes gets
// workers; an instance that stopped, vanished or was replaced by a new ID loses them, and its
// results are forgotten: a new instance always starts afresh. Results are read by container ID.
//
// # Results
//
// Each probe has a published Result; one attempt's Outcome only moves it once a run of identical
// outcomes reaches the probe's threshold (successThreshold, default 1; failureThreshold, default 3):
//
//	kind       before any attempt           successThreshold successes     failureThreshold failures
//	startup    Unknown: not started         Started; liveness and          Kill (LivenessFailed);
//	                                        readiness start; worker ends   worker ends
//	liveness   Success: alive               (stays Success)                Kill; worker ends
//	readiness  Failure: not ready           Ready                          not Ready; worker goes on
//
// Passed and Warned outcomes are successes, Failed ones failures. An Errored attempt (the probe
// could not be run: a runtime error, a port name the container does not have, no pod IP yet) is
// reported but thrown away: it neither counts nor breaks a run, as with the kubelet.
//
// Ready(id) is true once the instance has started and its readiness probe (if any) has passed;
// Started(id) once its startup probe (if any) has passed. Both are false for an ID Sync never
// listed as running. LivenessFailed(id) stays true from the failure until Sync no longer lists the
// instance; the agent kills it with Kill.GracePeriod (the probe's terminationGracePeriodSeconds,
// else the pod's) and the restart policy does the rest.
//
// # A worker
//
// A worker runs one probe of one container instance, in its own goroutine:
//
//	          Sync: a running instance with this probe
//	          (liveness, readiness: once started — at Sync without a startup probe,
//	           else when the startup probe passes)
//	                        │
//	                        ▼
//	              ┌───────────────────┐  on the Manager's clock, until the next attempt is due:
//	      ┌──────▶│      waiting      │  first at startedAt + initialDelaySeconds (or now if past;
//	      │       └─────────┬─────────┘  plus a random part of a period for an adopted container
//	      │                 │ due        when Jitter is set), then every periodSeconds on that grid
//	      │                 ▼
//	      │       ┌───────────────────┐  one attempt: exec, httpGet, tcpSocket or grpc,
//	      │       │      probing      │  bounded by timeoutSeconds (default 1)
//	      │       └─────────┬─────────┘
//	      │                 │ Passed, Warned, Failed, Errored (Event for all but Passed)
//	      │                 ▼
//	      │       ┌───────────────────┐  run of identical outcomes; at the threshold the result
//	      └───────│     counting      │  is published (OnChange when it changes)
//	   not final  └─────────┬─────────┘
//	                        │ final: startup passed, liveness or startup failed
//	                        ▼
//	                      ended
//
//	from any state ── stopped ──▶ ended: Sync (instance gone, not running, replaced; liveness and
//	startup when the pod has a DeletionTimestamp), RemovePod, Stop. An attempt in flight is
//	cancelled and its outcome dropped.
//
// So: while the startup probe has not passed, liveness and readiness do not run; once it has, it
// never runs again for that instance; after a liveness failure nothing probes the instance (it is
// about to be killed); readiness runs for the whole life of the container, and during the pod's
// termination too.
//
// # Probe handlers
//
//   - exec: Execer.ExecSync (CRI ExecSync) with the probe's timeout. Exit code 0 passes; another code
//     fails with the command's output (or its exit code when silent); a timeout (gRPC
//     DeadlineExceeded or a context deadline) fails; any other error errors.
//   - httpGet: GET scheme://host:port/path, host defaulting to the pod IP, port a number or the name
//     of one of the container's ports. Headers: User-Agent kube-probe/1.37 and Accept */*, replaced
//     by probe headers of the same name and removed by an empty one; a Host header sets the request's
//     host. 200–299 passes; 300–399 passes with a warning ("Probe terminated redirects"); anything
//     else fails with the status and the start of the body. Redirects are followed to the same host
//     name only, at most 10; a redirect elsewhere, or the 11th, is the response judged (so a warning).
//     HTTPS certificates are not verified. At most 10 KiB of the body is read.
//   - tcpSocket: a TCP connection to host (default the pod IP) and port opens within the timeout.
//   - grpc: grpc.health.v1.Health/Check with the probe's service on podIP:port, plain text. SERVING
//     passes; NOT_SERVING, an unknown service, no health service, no connection or a timeout fail
//     with a message that says which.
//
// Outputs are trimmed and cut to 1 KiB: they end up in events, log lines and Kill.Output.
//
// # Cost
//
// A worker holds a goroutine and, while it waits, one timer; nothing else. Probes hold no
// connection between attempts: the HTTP transport disables keep-alives (one short connection per
// attempt, closed once the capped body is read), a gRPC probe makes its connection and closes it,
// a TCP probe closes at once. TestProbingManyPodsLeaksNothing checks it with 120 pods over ten
// periods: goroutines and open file descriptors return to their baseline.
//
// # Defaults and validation
//
// Static pods meet no API server, so the agent defaults and validates their probes itself:
// DefaultContainer fills in the API server's defaults (period 10 s, timeout 1 s, thresholds 1 and
// 3, httpGet path "/" and scheme HTTP), ValidateContainer applies its rules. The Manager applies the
// same defaults to any zero value it is given.
package probes
