package eviction

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Signal is an eviction signal, named as the kubelet names it.
type Signal string

// The signals Berth measures and acts on.
const (
	SignalMemoryAvailable   Signal = "memory.available"
	SignalNodeFsAvailable   Signal = "nodefs.available"
	SignalNodeFsInodesFree  Signal = "nodefs.inodesFree"
	SignalImageFsAvailable  Signal = "imagefs.available"
	SignalImageFsInodesFree Signal = "imagefs.inodesFree"
	SignalPIDAvailable      Signal = "pid.available"
)

// Signals lists the signals a threshold may name, in the order they are acted upon: memory first,
// then process ids, then disk (the kubelet's eviction priority).
var Signals = []Signal{
	SignalMemoryAvailable, SignalPIDAvailable,
	SignalNodeFsAvailable, SignalNodeFsInodesFree, SignalImageFsAvailable, SignalImageFsInodesFree,
}

// DefaultEvictionHard are the kubelet's default hard thresholds on Linux.
func DefaultEvictionHard() map[string]string {
	return map[string]string{
		string(SignalMemoryAvailable):  "100Mi",
		string(SignalNodeFsAvailable):  "10%",
		string(SignalNodeFsInodesFree): "5%",
		string(SignalImageFsAvailable): "15%",
	}
}

// Threshold is a hard eviction threshold: the signal is met when what is available falls below the
// quantity, or below the percentage of capacity.
type Threshold struct {
	Signal Signal
	// Quantity is the absolute threshold; nil when Percentage is used.
	Quantity *resource.Quantity
	// Percentage is a fraction of capacity in [0, 1], used when Quantity is nil.
	Percentage float64
}

// Value is the threshold in the unit of capacity.
func (t Threshold) Value(capacity resource.Quantity) resource.Quantity {
	if t.Quantity != nil {
		return t.Quantity.DeepCopy()
	}
	return *resource.NewQuantity(int64(float64(capacity.Value())*t.Percentage), capacity.Format)
}

// String is the threshold as configured ("100Mi", "10%").
func (t Threshold) String() string {
	if t.Quantity != nil {
		return t.Quantity.String()
	}
	return strconv.FormatFloat(t.Percentage*100, 'f', -1, 64) + "%"
}

// Met reports whether an observation is below the threshold.
func (t Threshold) Met(o Observation) bool {
	v := t.Value(o.Capacity)
	return o.Available.Cmp(v) < 0
}

// Resource is what a signal measures, as the kubelet names it in eviction messages.
func (s Signal) Resource() v1.ResourceName {
	switch s {
	case SignalMemoryAvailable:
		return v1.ResourceMemory
	case SignalNodeFsAvailable, SignalImageFsAvailable:
		return v1.ResourceEphemeralStorage
	case SignalNodeFsInodesFree, SignalImageFsInodesFree:
		return "inodes"
	case SignalPIDAvailable:
		return "pids"
	}
	return v1.ResourceName(s)
}

// Condition is the node condition a signal's pressure sets.
func (s Signal) Condition() v1.NodeConditionType {
	switch s {
	case SignalMemoryAvailable:
		return v1.NodeMemoryPressure
	case SignalPIDAvailable:
		return v1.NodePIDPressure
	}
	return v1.NodeDiskPressure
}

// ParseThresholds reads the evictionHard map of a KubeletConfiguration: signal → quantity
// ("100Mi") or percentage of capacity ("10%"). A nil map means the kubelet's defaults; a given map
// is taken as it is (a signal it leaves out has no threshold). Thresholds of zero ("0%", "0") are
// dropped, as the kubelet drops them: they can never be met. The result is in Signals order.
func ParseThresholds(m map[string]string) ([]Threshold, error) {
	if m == nil {
		m = DefaultEvictionHard()
	}
	var out []Threshold
	for name, value := range m {
		s := Signal(name)
		if !slices.Contains(Signals, s) {
			known := make([]string, len(Signals))
			for i, k := range Signals {
				known[i] = string(k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("evictionHard: unknown signal %q (known: %s)", name, strings.Join(known, ", "))
		}
		t := Threshold{Signal: s}
		value = strings.TrimSpace(value)
		if p, ok := strings.CutSuffix(value, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || f < 0 || f > 100 || math.IsNaN(f) {
				return nil, fmt.Errorf("evictionHard: %s: %q is not a percentage between 0%% and 100%%", name, value)
			}
			if f == 0 {
				continue
			}
			t.Percentage = f / 100
		} else {
			q, err := resource.ParseQuantity(value)
			if err != nil || q.Sign() < 0 {
				return nil, fmt.Errorf("evictionHard: %s: %q is neither a quantity nor a percentage", name, value)
			}
			if q.IsZero() {
				continue
			}
			t.Quantity = &q
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		return slices.Index(Signals, out[i].Signal) < slices.Index(Signals, out[j].Signal)
	})
	return out, nil
}
