// Package eviction keeps a node out of resource starvation, as the kubelet's eviction manager and
// image manager do. It measures, decides and ranks; the agent gives it the pods and the means to
// stop one, and it never imports the agent.
//
//	SignalReaders ──Observations──▶ Manager.Synchronize (every 10 s)
//	(root memory cgroup, statfs of    │ thresholds met (ParseThresholds: evictionHard)
//	 the root dir and the image fs,   ├─▶ conditions: MemoryPressure / DiskPressure / PIDPressure,
//	 pid_max and the task count)      │   kept for the transition period after last met ──▶ node status
//	                                  ├─▶ Admit: BestEffort pods refused under memory pressure,
//	                                  │   every pod under disk or PID pressure (critical pods never)
//	                                  ├─▶ disk: Reclaim first (ImageGC.DeleteUnusedImages)
//	                                  └─▶ Rank the non-critical active pods; Evict the first that can
//	                                      be; wait for it to be gone before the next
//
//	ImageGC (every 5 m): image fs ≥ high threshold ──▶ remove unused images, least recently used
//	first, until the low threshold; images any container refers to, pinned images and images
//	younger than imageMinimumGCAge stay.
//
// Each measurement sits behind a small interface (MemoryReader, FsReader, ImageFsLocator,
// PIDReader) so that tests give fakes; the Manager takes an injected clock, so the transition
// period is tested without waiting. See docs/eviction.md.
package eviction
