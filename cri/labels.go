package cri

// Labels and annotations that Berth writes on every sandbox and container it creates. The runtime
// is the source of truth for what runs: after any restart Berth rebuilds its view of a node from a
// ListPodSandbox + ListContainers by reading these keys back. The io.kubernetes.* keys are the ones
// the kubelet uses, so crictl and other node tools recognise Berth's pods; LabelManagedBy marks what
// Berth owns, so it never adopts or removes a sandbox some other agent created.
const (
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelContainerName = "io.kubernetes.container.name"
	LabelManagedBy     = "io.berth.managed-by"
	ManagedByValue     = "berth"

	// AnnotationRestartCount is the container's restart count (0 for the first instance); the next
	// instance of a container gets the newest one's count + 1.
	AnnotationRestartCount = "io.kubernetes.container.restartCount"
	// AnnotationContainerHash is ContainerHash of the v1.Container the instance was created from; a
	// different hash means the spec changed and the container must be replaced.
	AnnotationContainerHash = "io.kubernetes.container.hash"
	// AnnotationTerminationGrace is the pod's terminationGracePeriodSeconds, kept on the sandbox so a
	// pod whose spec is gone (manifest deleted while Berth was down) is still stopped gracefully.
	AnnotationTerminationGrace = "io.kubernetes.pod.terminationGracePeriod"
	// AnnotationContainerType records whether a container is an init ("init") or app ("app")
	// container, so status can be rebuilt without the spec.
	AnnotationContainerType = "io.berth.container.type"
	// AnnotationTerminationMessagePath and Policy are kept for reading the termination message of a
	// container after it exits.
	AnnotationTerminationMessagePath   = "io.kubernetes.container.terminationMessagePath"
	AnnotationTerminationMessagePolicy = "io.kubernetes.container.terminationMessagePolicy"
	// AnnotationPreStopHandler is the container's preStop hook (JSON of a v1.LifecycleHandler), the
	// kubelet's key: a container whose pod spec is gone still gets its hook before it is stopped.
	AnnotationPreStopHandler = "io.kubernetes.container.preStopHandler"
)

// Container types for AnnotationContainerType.
const (
	ContainerTypeInit = "init"
	ContainerTypeApp  = "app"
)
