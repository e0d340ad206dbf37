package agent

import (
	"time"

	"github.com/berth-dev/berth/kubeclient"
	v1 "k8s.io/api/core/v1"
)

// ClusterConfig turns standalone Berth into a cluster node. It is nil in standalone mode.
type ClusterConfig struct {
	// Client talks to the API server with the node's identity (system:node:<name>); every call
	// Berth makes must pass the Node authorizer and NodeRestriction.
	Client kubeclient.Interface
	// EventClient writes Events (nil: Client). The kubelet gives events a client of their own with
	// its own rate limit (eventRecordQPS/eventBurst), so that a burst of events never delays pod
	// status writes, which share kubeAPIQPS with everything else.
	EventClient kubeclient.Interface

	// NodeLabels are added to the Node's well-known labels (--node-labels).
	NodeLabels map[string]string
	// RegisterWithTaints are set on the Node when Berth creates it.
	RegisterWithTaints []v1.Taint

	// NodeStatusUpdateFrequency is how often node status is computed (10s); it is written when it
	// changed or NodeStatusReportFrequency (5m) passed since the last write.
	NodeStatusUpdateFrequency time.Duration
	NodeStatusReportFrequency time.Duration
	// NodeLeaseDurationSeconds is the Lease's duration (40); it is renewed every quarter of it.
	NodeLeaseDurationSeconds int32

	// KubeReserved and SystemReserved are subtracted from capacity for allocatable, with the hard
	// eviction thresholds of EvictionHard (memory.available, nodefs.available, ...).
	KubeReserved   v1.ResourceList
	SystemReserved v1.ResourceList
	EvictionHard   map[string]string

	// Version is Berth's version, reported as nodeInfo.kubeletVersion.
	Version string
	// Port is the node server's port, reported in status.daemonEndpoints (0: none).
	Port int32
}
