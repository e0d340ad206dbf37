// Package cgroups owns the node's resource hierarchy for pods: the QoS class of a pod, and (as it
// grows) the kubepods/QoS/pod cgroups under the cgroupfs and systemd drivers.
//
// So far it holds the QoS classification that pod status and the runtime translation share; the
// cgroup hierarchy itself is not created yet, and pods run under the runtime's default parent.
package cgroups
