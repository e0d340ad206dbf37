package cgroups

import (
	"encoding/json"
	"fmt"
)

// RuntimeDriver reads the cgroup driver the runtime uses from its verbose CRI status information,
// where the runtime reports it: containerd puts its CRI configuration under "config", and the
// default runtime's options.SystemdCgroup says systemd (true) or cgroupfs (false). ok is false when
// the information does not tell (another runtime, or a runtime without options).
func RuntimeDriver(info map[string]string) (driver Driver, where string, ok bool) {
	raw, found := info["config"]
	if !found {
		return "", "", false
	}
	var cfg struct {
		SystemdCgroup *bool `json:"systemdCgroup"` // containerd 1.x top-level (deprecated) field
		Containerd    struct {
			DefaultRuntimeName string `json:"defaultRuntimeName"`
			Runtimes           map[string]struct {
				Options map[string]any `json:"options"`
			} `json:"runtimes"`
		} `json:"containerd"`
	}
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return "", "", false
	}
	name := cfg.Containerd.DefaultRuntimeName
	if rt, found := cfg.Containerd.Runtimes[name]; found {
		if v, found := rt.Options["SystemdCgroup"].(bool); found {
			where = fmt.Sprintf("containerd: plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s.options.SystemdCgroup = %t", name, v)
			if v {
				return DriverSystemd, where, true
			}
			return DriverCgroupfs, where, true
		}
	}
	if cfg.SystemdCgroup != nil {
		where = fmt.Sprintf("containerd: plugins.\"io.containerd.grpc.v1.cri\".systemd_cgroup = %t", *cfg.SystemdCgroup)
		if *cfg.SystemdCgroup {
			return DriverSystemd, where, true
		}
		return DriverCgroupfs, where, true
	}
	return "", "", false
}

// CheckRuntimeDriver compares Berth's driver with the runtime's, when the runtime's verbose status
// information reports it, and says what to change when they differ. Two drivers managing one
// hierarchy fight over it, so a mismatch is an error at startup.
func CheckRuntimeDriver(want Driver, info map[string]string) error {
	got, where, ok := RuntimeDriver(info)
	if !ok {
		return nil
	}
	return CheckDriver(want, got, where)
}

// CheckDriver compares Berth's driver with got, the runtime's as read from where.
func CheckDriver(want, got Driver, where string) error {
	if got == want {
		return nil
	}
	set := "true"
	if want == DriverCgroupfs {
		set = "false"
	}
	return fmt.Errorf("cgroup driver mismatch: Berth uses %q (cgroupDriver / --cgroup-driver) but the runtime uses %q (%s): make the runtime use %s (containerd: SystemdCgroup = %s in the runc runtime's options) and restart it, or set cgroupDriver: %s", want, got, where, want, set, got)
}
