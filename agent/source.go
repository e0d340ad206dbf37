package agent

import (
	v1 "k8s.io/api/core/v1"
)

// Source tags: where a desired pod comes from. They are written into the pod's
// kubernetes.io/config.source annotation, as the kubelet does.
const (
	SourceFile = "file"
	SourceAPI  = "api"
)

// Annotations the kubelet puts on pods, with the same keys and meaning: where a pod comes from, its
// static pod hash (the UID), when it was first seen, and, on a mirror pod, the hash of the static
// pod it mirrors.
const (
	annotationConfigSource = "kubernetes.io/config.source"
	annotationConfigHash   = "kubernetes.io/config.hash"
	annotationConfigSeen   = "kubernetes.io/config.seen"
	annotationConfigMirror = "kubernetes.io/config.mirror"
)

// ManifestError is a static pod manifest that could not be turned into a pod: which file, and why.
// It is shown by `berth pods` and logged; it never stops the other pods.
type ManifestError struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// SourceUpdate is a full snapshot of the pods one source wants on this node. Sources send a new
// snapshot whenever anything changes; the agent diffs it against the previous one.
type SourceUpdate struct {
	Source string
	Pods   []*v1.Pod
	Errors []ManifestError
}
