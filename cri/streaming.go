package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec asks the runtime to prepare a streaming exec session and returns the URL of its streaming
// server that serves it (once: the URL holds a single-use token). The node server proxies the
// client's upgraded connection to it.
func (c *Client) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.Exec(ctx, req)
	if err != nil {
		return "", wrap("Exec", err)
	}
	return r.Url, nil
}

// Attach is Exec for attaching to a running container's streams.
func (c *Client) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.Attach(ctx, req)
	if err != nil {
		return "", wrap("Attach", err)
	}
	return r.Url, nil
}

// PortForward is Exec for forwarding ports of a pod sandbox's network namespace.
func (c *Client) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.rt.PortForward(ctx, req)
	if err != nil {
		return "", wrap("PortForward", err)
	}
	return r.Url, nil
}

// ReopenContainerLog asks the runtime to reopen a running container's log file at its log path:
// after the log rotation renamed the file, the runtime writes to a new one at the same path.
func (c *Client) ReopenContainerLog(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
	return wrap("ReopenContainerLog", err)
}
