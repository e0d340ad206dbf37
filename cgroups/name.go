package cgroups

import (
	"fmt"
	"path"
	"strings"
)

// Name is a cgroup as the list of its components below the root of the hierarchy, without any
// driver's syntax: {"kubepods", "burstable", "pod<uid>"}. The cgroupfs driver writes it as a path
// (/kubepods/burstable/pod<uid>), the systemd driver as a slice
// (kubepods-burstable-pod<uid>.slice, under kubepods.slice/kubepods-burstable.slice).
type Name []string

// Child is n with one more component.
func (n Name) Child(c string) Name {
	out := make(Name, 0, len(n)+1)
	return append(append(out, n...), c)
}

// Cgroupfs is the cgroupfs path: "/" + the components joined by "/".
func (n Name) Cgroupfs() string {
	return "/" + path.Join(n...)
}

// SystemdSlice is the systemd slice unit: the components, each escaped (a '-' in a component
// becomes '_', as the kubelet does with pod UIDs), joined by '-', with ".slice"; the root is
// "-.slice".
func (n Name) SystemdSlice() string {
	if len(n) == 0 {
		return "-.slice"
	}
	parts := make([]string, len(n))
	for i, c := range n {
		parts[i] = systemdEscape(c)
	}
	return strings.Join(parts, "-") + ".slice"
}

// SystemdPath is the cgroupfs path systemd gives the slice: each ancestor slice is a directory,
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice.
func (n Name) SystemdPath() string {
	p := "/"
	for i := range n {
		p = path.Join(p, n[:i+1].SystemdSlice())
	}
	return p
}

func systemdEscape(c string) string { return strings.ReplaceAll(c, "-", "_") }

// ParseRoot reads cgroupRoot: a cgroupfs path ("/", "/berth") for the cgroupfs driver; "/" or a
// path of slices ("/berth.slice", "/a.slice/a-b.slice") for the systemd driver.
func ParseRoot(driver Driver, root string) (Name, error) {
	if !strings.HasPrefix(root, "/") {
		return nil, fmt.Errorf("cgroupRoot %q: must be an absolute path", root)
	}
	clean := path.Clean(root)
	if clean != root && clean+"/" != root {
		return nil, fmt.Errorf("cgroupRoot %q: not a clean path (%q)", root, clean)
	}
	if clean == "/" {
		return Name{}, nil
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	if driver != DriverSystemd {
		return Name(parts), nil
	}
	var n Name
	for i, p := range parts {
		base, ok := strings.CutSuffix(p, ".slice")
		if !ok || base == "" {
			return nil, fmt.Errorf("cgroupRoot %q: with the systemd driver every component must be a slice (%q is not)", root, p)
		}
		// "a-b.slice" under "a.slice": the last dash-separated part is the new component.
		comps := strings.Split(base, "-")
		if len(comps) != i+1 || (i > 0 && strings.Join(comps[:i], "-") != strings.Join(n, "-")) {
			return nil, fmt.Errorf("cgroupRoot %q: slice %q is not named after its parent (want %s-<name>.slice)", root, p, strings.Join(n, "-"))
		}
		n = append(n, comps[i])
	}
	return n, nil
}
