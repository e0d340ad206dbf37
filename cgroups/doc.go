// Package cgroups owns the node's resource hierarchy for pods, as the kubelet lays it out: the QoS
// class of a pod (QOSClass), the pod-level limits (PodResourceConfig) and the cgroups themselves
// (Manager):
//
//	<cgroupRoot>/kubepods                      node allocatable: cpu.shares, memory, pids
//	├── pod<uid>                               Guaranteed pods
//	├── burstable                              cpu.shares: sum of its pods' CPU requests
//	│   └── pod<uid>
//	└── besteffort                             cpu.shares: 2
//	    └── pod<uid>
//
// A Name is a cgroup as components ({"kubepods", "burstable", "pod<uid>"}); each driver writes it
// its own way: a path for cgroupfs, kubepods-burstable-pod<uid>.slice for systemd. Three backends
// make the cgroups: fs1 (cgroupfs on cgroup v1, containerd's cgroup1 package, every mounted
// hierarchy), fs2 (cgroupfs on cgroup v2, containerd's cgroup2 package, cpu.weight from
// SharesToWeight) and systemdBackend (transient slice units over D-Bus). Berth writes the limits
// through those packages; on v1 it does two things itself (fs1.go says why): it sets
// cgroup.clone_children on the QoS cgroups' cpusets at Start, so that a pod's cpuset cgroup gets
// its cpus and mems from the kernel, and it removes a pod cgroup with one rmdir per hierarchy,
// reading cgroup.procs only to name the processes that keep one from going.
//
// The life of a pod cgroup:
//
//	           EnsurePod (every sync; the first before the sandbox)
//	(none) ───────────────────────────▶ present, with the pod's limits ──▶ CgroupParent of the sandbox
//	  ▲                                        │
//	  │ RemovePod: the pod is removed, or      │ the runtime makes the sandbox's and containers'
//	  │ terminal with its sandbox stopped;     │ cgroups under it, and removes them, not the pod's
//	  │ CleanupOrphans: no worker and nothing  │
//	  └─ in the runtime (startup, each minute) ┘
//
// Every EnsurePod and RemovePod of a burstable pod rewrites the burstable class's cpu.shares.
// CheckRuntimeDriver compares the driver with the one the runtime reports. docs/cgroups.md has the
// details, the kubelet's formulas and what is tested where.
package cgroups
