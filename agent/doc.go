// Package agent is Berth's core: it turns the pods its sources want into pods running in the
// container runtime, and reports what runs.
//
// The flow goes one way:
//
//		sources ──SourceUpdate──▶ Agent.apply ──update/remove──▶ podWorkers ──▶ one podWorker per UID
//		(staticSource: the         (diff per source,                              │ CRI calls (Runtime)
//		 manifest directory)        admission: maxPods)                           ▼
//		                                                                       runtime ◀── relist (1 s):
//		                        statusStore ◀── status after every sync ──────────┘   wakes the worker of
//		                        (berth pods, GET /pods on berth.sock)                 every pod that changed
//
//	  - Sources (static_source.go) validate manifests and send full snapshots; they never touch the
//	    runtime. A broken manifest is a ManifestError beside the pods, never a stop. The API source
//	    (api_source.go) snapshots its pod informer 5 ms after a lone change; changes that follow a
//	    snapshot closely (a burst, and its status echoes) are gathered for 50 ms, longer past 250
//	    pods (coalesceFor), so that a burst costs each pod a bounded number of snapshots.
//	  - A podWorker (pod_worker.go) is the only writer to the runtime for its pod. Each sync
//	    (pod_sync.go) reads the pod's sandboxes and containers from the runtime (pod_runtime.go), makes
//	    one step towards the spec — sandbox, image, init containers in order (sidecars only have to
//	    start), app containers, each postStart hook waited for — applies the restart policy with the
//	    crash-loop back-off (backoff.go), removes dead instances beyond the newest, and publishes the
//	    status computed from the runtime (pod_status.go). Every stop goes through pod_stop.go:
//	    preStop hooks (hooks.go) within the grace period, apps before sidecars, sidecars in reverse
//	    order; termination messages are read after an exit (termination_message.go). Volumes are set
//	    up before each sync's step and torn down with the pod (package volumes; volume_objects.go
//	    caches the ConfigMaps and Secrets they read; emptydir_limits.go evicts a pod whose emptyDir
//	    outgrows its sizeLimit through pod_evict.go).
//	  - Node pressure (eviction.go): the eviction package's manager measures the node, sets the
//	    pressure conditions, refuses pods under pressure (admission.go) and evicts the pods it ranks
//	    first through evictPod (pod_evict.go): stopped with the eviction's grace period, Failed
//	    with reason Evicted, never started again. Image garbage collection runs beside it.
//	  - The relist (relist.go) is the kubelet's PLEG: it notices containers that died and wakes their
//	    workers (only for a change the worker has not seen itself: runtime fingerprints), and, once
//	    every source has reported, terminates pods no source wants. Where the runtime streams
//	    container events (container_events.go), a stop wakes the worker at once and the relist runs
//	    every 30 s as a safety net; where it does not, an exit watcher (exit_watch.go) waits on each
//	    container's pidfd.
//
// State that survives a restart lives in the runtime: the labels and annotations of cri/labels.go
// (pod UID, names, container name, restart count, spec hash) let a new Berth adopt every sandbox and
// container it finds, without restarting or duplicating any.
package agent
