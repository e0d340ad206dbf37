// Command runtimectl is the CRI half of test/env/runtime.sh, for a machine
// without crictl. It talks CRI v1 to the runtime's socket:
//
//	runtimectl -endpoint unix:///run/berth-test/containerd/containerd.sock wait [-image REF]...
//	runtimectl -endpoint ... cleanup
//
// wait returns once the CRI reports RuntimeReady and NetworkReady and every
// -image is visible to ImageStatus: containerd answers on its socket before
// the CRI plugin has finished initialising, and it learns of images imported
// with ctr through events, so neither is a given right after start.
//
// cleanup stops and removes every pod sandbox and container, so that the
// runtime itself tears down their networks (CNI DEL: IPAM, iptables) and
// mounts before runtime.sh stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	endpoint := flag.String("endpoint", os.Getenv("CONTAINER_RUNTIME_ENDPOINT"), "CRI endpoint, unix:///path or /path")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: runtimectl -endpoint unix:///SOCK [-timeout D] wait [-image REF]... | cleanup\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *endpoint == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	target := *endpoint
	if strings.HasPrefix(target, "/") {
		target = "unix://" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	img := runtimeapi.NewImageServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	verb, args := flag.Arg(0), flag.Args()[1:]
	switch verb {
	case "wait":
		fs := flag.NewFlagSet("wait", flag.ExitOnError)
		var images listFlag
		fs.Var(&images, "image", "image reference that must be visible (repeatable)")
		_ = fs.Parse(args)
		err = wait(ctx, rt, img, images)
	case "cleanup":
		err = cleanup(ctx, rt)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fail(fmt.Errorf("%s: %w", verb, err))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "runtimectl: %v\n", err)
	os.Exit(1)
}

// wait polls until the runtime is ready and sees every image.
func wait(ctx context.Context, rt runtimeapi.RuntimeServiceClient, img runtimeapi.ImageServiceClient, images []string) error {
	check := func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := rt.Status(cctx, &runtimeapi.StatusRequest{})
		if err != nil {
			return err
		}
		for _, want := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
			ok := false
			for _, c := range st.GetStatus().GetConditions() {
				if c.GetType() == want {
					if !c.GetStatus() {
						return fmt.Errorf("condition %s false: %s: %s", want, c.GetReason(), c.GetMessage())
					}
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("condition %s not reported", want)
			}
		}
		for _, ref := range images {
			is, err := img.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			if err != nil {
				return fmt.Errorf("image %s: %w", ref, err)
			}
			if is.GetImage() == nil {
				return fmt.Errorf("image %s: not known to the CRI", ref)
			}
		}
		return nil
	}
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cleanup stops and removes all sandboxes, then any container left (one
// whose sandbox is already gone). It goes on after an error and reports them
// all at the end.
func cleanup(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
	var errs []error
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	for _, p := range pods.GetItems() {
		name := p.GetMetadata().GetNamespace() + "/" + p.GetMetadata().GetName()
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s (%s): %w", p.GetId(), name, err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s (%s): %w", p.GetId(), name, err))
		}
	}
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, c := range ctrs.GetContainers() {
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("stop container %s: %w", c.GetId(), err))
		}
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.GetId(), err))
		}
	}
	fmt.Fprintf(os.Stderr, "runtimectl: cleanup: %d sandbox(es), %d leftover container(s)\n", len(pods.GetItems()), len(ctrs.GetContainers()))
	return errors.Join(errs...)
}
