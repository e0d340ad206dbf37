package cgroups

import (
	"strings"
	"testing"
)

// containerd 1.6's verbose CRI status "config", cut to what matters.
const containerdConfig = `{"containerd":{"snapshotter":"overlayfs","defaultRuntimeName":"runc","runtimes":{"runc":{"runtimeType":"io.containerd.runc.v2","options":{"Root":"/run/x/runc","SystemdCgroup":%s}}}},"systemdCgroup":false}`

func TestCheckRuntimeDriver(t *testing.T) {
	cgroupfs := map[string]string{"config": strings.Replace(containerdConfig, "%s", "false", 1)}
	systemd := map[string]string{"config": strings.Replace(containerdConfig, "%s", "true", 1)}
	if d, _, ok := RuntimeDriver(cgroupfs); !ok || d != DriverCgroupfs {
		t.Errorf("RuntimeDriver(cgroupfs config) = %s, %v", d, ok)
	}
	if d, _, ok := RuntimeDriver(systemd); !ok || d != DriverSystemd {
		t.Errorf("RuntimeDriver(systemd config) = %s, %v", d, ok)
	}
	if err := CheckRuntimeDriver(DriverCgroupfs, cgroupfs); err != nil {
		t.Errorf("same driver: %v", err)
	}
	err := CheckRuntimeDriver(DriverSystemd, cgroupfs)
	if err == nil || !strings.Contains(err.Error(), "SystemdCgroup = true") || !strings.Contains(err.Error(), "cgroupDriver: cgroupfs") {
		t.Errorf("mismatch error does not say what to change: %v", err)
	}
	// A runtime that does not report it: nothing to compare.
	if err := CheckRuntimeDriver(DriverSystemd, map[string]string{"config": `{"other":1}`}); err != nil {
		t.Errorf("unknown runtime config: %v", err)
	}
	if err := CheckRuntimeDriver(DriverSystemd, nil); err != nil {
		t.Errorf("no info: %v", err)
	}
}
