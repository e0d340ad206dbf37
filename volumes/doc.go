// Package volumes sets up a pod's volumes on the host, turns its containers' volumeMounts into CRI
// mounts, and tears everything down when the pod goes. It follows the kubelet's behaviour and
// on-disk layout:
//
//	<rootDir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>      emptyDir (0777; tmpfs 1777 for medium Memory)
//	<rootDir>/pods/<uid>/volumes/kubernetes.io~configmap/<name>      configMap (atomic writer, on disk)
//	<rootDir>/pods/<uid>/volumes/kubernetes.io~secret/<name>         secret (atomic writer, on a tmpfs)
//	<rootDir>/pods/<uid>/volumes/kubernetes.io~downward-api/<name>   downwardAPI (atomic writer, on disk)
//	<rootDir>/pods/<uid>/volumes/kubernetes.io~projected/<name>      projected (atomic writer, on a tmpfs)
//	<rootDir>/pods/<uid>/volume-subpaths/<volume>/<container>/<i>    bind mount of a checked subPath
//
// hostPath volumes live where they are: only their type is checked (and DirectoryOrCreate /
// FileOrCreate create them).
//
// The life of a pod's volumes:
//
//	           SetUp (before the sandbox, then on every sync)          TearDown (pod removed)
//	(none) ───────────────────────────────────────────────▶ ready ─────────────────────────▶ (none)
//	                │ a volume fails: VolumeError                │ ▲   unmount every mount under the pod
//	                ▼ (FailedMount), retried with back-off       │ │   directory, then remove it; never a
//	             failing ────────────────────────────────────────┘ │   removal through a mount
//	                                                               │
//	            ContainerMounts (each container start) ────────────┘
//	            resolves subPath / subPathExpr inside the volume (openat2 RESOLVE_BENEATH: no
//	            symlink out of it), bind-mounts the checked descriptor, returns the CRI mounts
//
// SetUp is idempotent and cheap when nothing changed, which is how API-backed contents follow their
// sources: every sync rebuilds the files of configMap, secret, downwardAPI and projected volumes
// from the current objects (read through the caller's cached APIObjects) and WriteAtomic swaps in
// a new version only when it differs — one rename of the ..data symlink, so a reader sees the old
// or the new files, never a mix. Service-account tokens come from the TokenRequest API, bound to
// the pod, and are requested again at 80% of their lifetime.
//
// The mounts under a pod's directory are found by walking it and asking statx of each entry
// whether it is the root of a mount (Linux 5.8 and later): a teardown costs the pod's own entries.
// On older kernels, /proc/self/mountinfo is read instead, which costs every mount of the node. The
// walk uses file descriptors and never follows a symlink: what is under a volume is the
// containers' to make.
//
// The package never imports agent: the pod worker calls SetUp, ContainerMounts and TearDown, and
// gives it the API through the small APIObjects interface (nil in standalone mode, where the kinds
// that need API objects fail with a clear error).
package volumes
