package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/cgroups"
	"github.com/berth-dev/berth/cri"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// kubepodsResources is what the kubepods cgroup may use: with enforceNodeAllocatable [pods],
// capacity minus kubeReserved and systemReserved (the kubelet's "node allocatable" for cgroups,
// which, unlike the Node's reported allocatable, keeps the hard eviction threshold so that Berth
// can evict before the kernel kills); otherwise the capacity.
func kubepodsResources(c *Configuration, capacity v1.ResourceList) v1.ResourceList {
	out := v1.ResourceList{}
	kube, _ := resourceList(c.KubeReserved) // validated with the config
	system, _ := resourceList(c.SystemReserved)
	for name, q := range capacity {
		v := q.DeepCopy()
		if c.enforcePods() {
			for _, r := range []v1.ResourceList{kube, system} {
				if x, ok := r[name]; ok {
					v.Sub(x)
				}
			}
			if v.Sign() < 0 {
				v = *resource.NewQuantity(0, q.Format)
			}
		}
		out[name] = v
	}
	return out
}

// newPodCgroups makes the pod cgroup hierarchy (cgroupsPerQOS): it checks that the runtime uses
// the same cgroup driver, reads the machine's capacity and creates kubepods and the QoS classes.
func newPodCgroups(ctx context.Context, c *Configuration, rootDir string, client *cri.Client, log *slog.Logger) (*cgroups.Manager, error) {
	driver, err := cgroups.ParseDriver(c.CgroupDriver)
	if err != nil {
		return nil, err
	}
	root, err := cgroups.ParseRoot(driver, c.CgroupRoot)
	if err != nil {
		return nil, err
	}
	if err := checkRuntimeDriver(ctx, driver, client); err != nil {
		return nil, err
	}
	capacity, err := agent.MachineCapacity(rootDir)
	if err != nil {
		return nil, err
	}
	kubepods := kubepodsResources(c, capacity)
	m, err := cgroups.New(cgroups.Config{
		Driver:       driver,
		Root:         root,
		PodPidsLimit: *c.PodPidsLimit,
		Kubepods:     cgroups.NodeResourceConfig(kubepods),
		Logger:       log.With("component", "cgroups"),
	})
	if err != nil {
		return nil, err
	}
	if err := m.Start(); err != nil {
		m.Close()
		return nil, fmt.Errorf("creating the pod cgroup hierarchy: %w", err)
	}
	log.Info("pod cgroups ready", "driver", driver, "kubepods", m.KubepodsParent(),
		"limits", cgroups.NodeResourceConfig(kubepods).String(), "enforceNodeAllocatable", c.EnforceNodeAllocatable)
	return m, nil
}

// checkRuntimeDriver compares the cgroup driver with the runtime's: from the CRI RuntimeConfig call
// when the runtime implements it (as the kubelet asks), else from its verbose status (containerd
// 1.x reports its configuration there). A runtime that reports neither is not checked.
func checkRuntimeDriver(ctx context.Context, driver cgroups.Driver, client *cri.Client) error {
	got, err := client.RuntimeCgroupDriver(ctx)
	if err != nil {
		return fmt.Errorf("asking the runtime for its cgroup driver: %w", err)
	}
	if got != "" {
		return cgroups.CheckDriver(driver, cgroups.Driver(got), "reported by the runtime's CRI RuntimeConfig")
	}
	info, err := client.StatusInfo(ctx)
	if err != nil {
		return fmt.Errorf("asking the runtime for its cgroup driver: %w", err)
	}
	return cgroups.CheckRuntimeDriver(driver, info)
}
