package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pods serves GET /pods: the pods on the node as a v1.PodList.
func (s *Server) pods(w http.ResponseWriter, r *http.Request) {
	list := v1.PodList{}
	list.Kind, list.APIVersion = "PodList", "v1"
	for _, p := range s.cfg.Pods.Pods() {
		list.Items = append(list.Items, *p)
	}
	if list.Items == nil {
		list.Items = []v1.Pod{}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := &list.Items[i], &list.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&list)
}

// httpError is an error with the status code to answer it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, a ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, a...)}
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if he, ok := err.(*httpError); ok {
		code = he.code
	}
	http.Error(w, err.Error(), code)
}

// findPod finds a pod of the node by namespace and name (and UID when the path has one).
func (s *Server) findPod(r *http.Request) (*v1.Pod, error) {
	ns, name, uid := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid")
	for _, p := range s.cfg.Pods.Pods() {
		if p.Namespace == ns && p.Name == name && (uid == "" || p.UID == types.UID(uid)) {
			return p, nil
		}
	}
	return nil, errorf(http.StatusNotFound, "pod %s/%s not found on node %s", ns, name, s.cfg.NodeName)
}

// hasContainer reports whether the pod's spec has a container (app, init or ephemeral) of name.
func hasContainer(p *v1.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range p.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// instances lists the runtime's instances of a pod's container, newest first.
func (s *Server) instances(ctx context.Context, p *v1.Pod, container string) ([]*runtimeapi.Container, error) {
	if !hasContainer(p, container) {
		return nil, errorf(http.StatusBadRequest, "container %s is not valid for pod %s/%s", container, p.Namespace, p.Name)
	}
	cs, err := s.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
		cri.LabelPodUID: string(p.UID), cri.LabelContainerName: container,
	}})
	if err != nil {
		return nil, err
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].CreatedAt > cs[j].CreatedAt })
	return cs, nil
}

// runningContainer is the running instance of a pod's container.
func (s *Server) runningContainer(ctx context.Context, p *v1.Pod, container string) (string, error) {
	cs, err := s.instances(ctx, p, container)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c.Id, nil
		}
	}
	return "", errorf(http.StatusBadRequest, "container %s of pod %s/%s is not running", container, p.Namespace, p.Name)
}

// readySandbox is the pod's ready sandbox.
func (s *Server) readySandbox(ctx context.Context, p *v1.Pod) (string, error) {
	sbs, err := s.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{cri.LabelPodUID: string(p.UID)},
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	})
	if err != nil {
		return "", err
	}
	if len(sbs) == 0 {
		return "", errorf(http.StatusBadRequest, "pod %s/%s has no running sandbox", p.Namespace, p.Name)
	}
	sort.Slice(sbs, func(i, j int) bool { return sbs[i].CreatedAt > sbs[j].CreatedAt })
	return sbs[0].Id, nil
}
