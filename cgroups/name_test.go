package cgroups

import (
	"reflect"
	"testing"
)

func TestNames(t *testing.T) {
	n := Name{"kubepods", "burstable", "pod0a1b-2c3d"}
	if got, want := n.Cgroupfs(), "/kubepods/burstable/pod0a1b-2c3d"; got != want {
		t.Errorf("Cgroupfs = %s, want %s", got, want)
	}
	if got, want := n.SystemdSlice(), "kubepods-burstable-pod0a1b_2c3d.slice"; got != want {
		t.Errorf("SystemdSlice = %s, want %s", got, want)
	}
	if got, want := n.SystemdPath(), "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b_2c3d.slice"; got != want {
		t.Errorf("SystemdPath = %s, want %s", got, want)
	}
	if got := (Name{}).SystemdSlice(); got != "-.slice" {
		t.Errorf("root slice = %s", got)
	}
}

func TestParseRoot(t *testing.T) {
	for _, tt := range []struct {
		driver  Driver
		root    string
		want    Name
		wantErr bool
	}{
		{DriverCgroupfs, "/", Name{}, false},
		{DriverCgroupfs, "/berth", Name{"berth"}, false},
		{DriverCgroupfs, "/a/b/", Name{"a", "b"}, false},
		{DriverCgroupfs, "berth", nil, true},
		{DriverCgroupfs, "/a/../b", nil, true},
		{DriverSystemd, "/", Name{}, false},
		{DriverSystemd, "/berth.slice", Name{"berth"}, false},
		{DriverSystemd, "/a.slice/a-b.slice", Name{"a", "b"}, false},
		{DriverSystemd, "/a.slice/b.slice", nil, true},
		{DriverSystemd, "/berth", nil, true},
	} {
		got, err := ParseRoot(tt.driver, tt.root)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseRoot(%s, %q) = %v, %v; want %v (error %v)", tt.driver, tt.root, got, err, tt.want, tt.wantErr)
		}
	}
}
