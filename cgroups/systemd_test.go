package cgroups

import (
	"fmt"
	"strings"
	"testing"
)

// TestSystemdProperties: the unit properties for a pod's limits on cgroup v1 and v2 (the v1 ones
// are also checked against a real systemd in test/integration TestCgroupsSystemdDriver).
func TestSystemdProperties(t *testing.T) {
	rc := &ResourceConfig{CPUShares: u64(1024), CPUQuota: i64(25500), CPUPeriod: u64(100000), Memory: i64(64 << 20), PidsLimit: i64(-1)}
	show := func(unified bool) string {
		var parts []string
		for _, p := range (&systemdBackend{unified: unified}).properties(rc) {
			parts = append(parts, fmt.Sprintf("%s=%v", p.Name, p.Value.Value()))
		}
		return strings.Join(parts, " ")
	}
	// 25.5 ms per 100 ms is 255 ms per second, rounded up to systemd's 10 ms steps: 260 ms.
	if got, want := show(false), "CPUAccounting=true MemoryAccounting=true TasksAccounting=true CPUShares=1024 CPUQuotaPerSecUSec=260000 MemoryLimit=67108864 TasksMax=18446744073709551615"; got != want {
		t.Errorf("v1:\n got %s\nwant %s", got, want)
	}
	if got, want := show(true), "CPUAccounting=true MemoryAccounting=true TasksAccounting=true CPUWeight=100 CPUQuotaPerSecUSec=260000 MemoryMax=67108864 TasksMax=18446744073709551615"; got != want {
		t.Errorf("v2:\n got %s\nwant %s", got, want)
	}
}
