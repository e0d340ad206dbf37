package cri

import (
	"context"
	"encoding/json"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerPID is the host pid of a running container's main process, from the verbose
// ContainerStatus: containerd and CRI-O both put it in the "info" JSON ({"pid": N}). It is not part
// of the CRI proper, so callers treat an error as "unknown" and rely on other means.
func (c *Client) ContainerPID(ctx context.Context, id string) (int, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, wrap("ContainerStatus", err)
	}
	return pidFromInfo(r.GetInfo())
}

func pidFromInfo(info map[string]string) (int, error) {
	raw, ok := info["info"]
	if !ok {
		return 0, fmt.Errorf("the runtime's verbose container status has no \"info\"")
	}
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return 0, fmt.Errorf("the runtime's verbose container info: %v", err)
	}
	if v.Pid <= 0 {
		return 0, fmt.Errorf("the runtime's verbose container info has no pid")
	}
	return v.Pid, nil
}
