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
