// Package cri is Berth's side of the Container Runtime Interface. It owns two things:
//
//   - the CRI client (client.go): the gRPC connection to the runtime (containerd, CRI-O) and the
//     RuntimeService and ImageService calls made over it;
//   - the translation of a v1.Pod into CRI messages: PodSandboxConfig for the pod's sandbox,
//     ContainerConfig for each of its containers, the pod's DNS configuration and hostname, the
//     container spec hash, and the labels and annotations (labels.go) that let Berth rebuild its
//     view of a node from the runtime alone after a restart.
//
// The translation follows the kubelet's documented semantics (namespaces, $(VAR) expansion,
// downward API environment variables, CPU shares and quota, OOM score adjustment, DNS policies),
// so that a pod behaves on Berth as it does on a kubelet.
//
// The package knows nothing of where pods come from (static manifests, the API server), of pod
// workers or of status reporting: callers hand it a pod and the facts it cannot read from the pod
// (SandboxOptions, ContainerOptions) and get CRI messages or CRI results back. Package
// cri/fakecri is an in-memory CRI gRPC server for tests and benchmarks of the real client.
package cri
