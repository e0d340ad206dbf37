package volumes

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Plugin directory names under <rootDir>/pods/<uid>/volumes/: the kubelet's, so that tools that
// know a kubelet's layout find their way around a Berth node.
const (
	PluginEmptyDir    = "kubernetes.io~empty-dir"
	PluginConfigMap   = "kubernetes.io~configmap"
	PluginSecret      = "kubernetes.io~secret"
	PluginDownwardAPI = "kubernetes.io~downward-api"
	PluginProjected   = "kubernetes.io~projected"
)

// PodDir is a pod's directory: <rootDir>/pods/<uid>.
func PodDir(rootDir string, uid types.UID) string {
	return filepath.Join(rootDir, "pods", string(uid))
}

// VolumeDir is where a volume of a pod lives on the host: <rootDir>/pods/<uid>/volumes/<plugin>/<name>.
func VolumeDir(rootDir string, uid types.UID, plugin, name string) string {
	return filepath.Join(PodDir(rootDir, uid), "volumes", plugin, name)
}

// subPathDir is the bind-mount target of one subPath volume mount of a container:
// <rootDir>/pods/<uid>/volume-subpaths/<volume>/<container>/<index of the mount>.
func subPathDir(rootDir string, uid types.UID, volume, container string, index int) string {
	return filepath.Join(PodDir(rootDir, uid), "volume-subpaths", volume, container, strconv.Itoa(index))
}

// checkRelativePath is the API's rule for paths inside a volume (subPath, items[].path): relative,
// no ".." element, not starting with "..".
func checkRelativePath(p string) error {
	if p == "" {
		return fmt.Errorf("must not be empty")
	}
	if filepath.IsAbs(p) {
		return fmt.Errorf("%q must be a relative path", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("%q must not contain '..'", p)
		}
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("%q must not start with '..'", p)
	}
	return nil
}
