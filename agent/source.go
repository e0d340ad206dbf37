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
