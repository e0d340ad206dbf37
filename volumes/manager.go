package volumes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/cri"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// APIObjects is how volumes read what lives in the API server (cluster mode only). A Get of an
// object that does not exist returns (nil, nil); an error means the API server could not say.
// Implementations cache: SetUp runs on every sync of every pod.
type APIObjects interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
	// CreateToken asks the TokenRequest API for a token of a service account.
	CreateToken(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

// Config is what a Manager runs with.
type Config struct {
	// RootDir is Berth's root directory; pods' volumes live under <RootDir>/pods/<uid>/volumes.
	RootDir string
	// Objects reads ConfigMaps and Secrets and requests tokens; nil in standalone mode, where the
	// volume kinds that need them fail with a clear error.
	Objects APIObjects
	// NodeMemoryCapacity sizes a memory-backed emptyDir of a pod without memory limits (bytes).
	NodeMemoryCapacity int64
	Clock              clock.PassiveClock
}

// Manager sets up and tears down pods' volumes. It keeps the service-account tokens it requested
// (to refresh them at 80% of their lifetime, not on every sync); everything else is on disk.
type Manager struct {
	cfg Config

	mu     sync.Mutex
	tokens map[tokenKey]*token
}

// NewManager checks cfg.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.RootDir == "" {
		return nil, errors.New("volumes: no root directory")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Manager{cfg: cfg, tokens: map[tokenKey]*token{}}, nil
}

// VolumeError is why one volume of a pod could not be set up; it reads as the kubelet's FailedMount
// event: `MountVolume.SetUp failed for volume "data" : hostPath type check failed: ...`.
type VolumeError struct {
	Volume string
	Err    error
}

func (e *VolumeError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.Volume, e.Err)
}

func (e *VolumeError) Unwrap() error { return e.Err }

// SetUp makes every volume of pod ready on the host, in spec order, and returns the errors of those
// that are not. It is idempotent and cheap when nothing changed, so it runs on every sync: that is
// also how the files of configMap, secret, downwardAPI and projected volumes follow their sources
// (written atomically, only when different).
func (m *Manager) SetUp(ctx context.Context, pod *v1.Pod) []*VolumeError {
	var errs []*VolumeError
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if err := m.setUp(ctx, pod, vol); err != nil {
			errs = append(errs, &VolumeError{Volume: vol.Name, Err: err})
		}
	}
	return errs
}

func (m *Manager) setUp(ctx context.Context, pod *v1.Pod, vol *v1.Volume) error {
	src := &vol.VolumeSource
	switch {
	case src.HostPath != nil:
		typ := v1.HostPathUnset
		if src.HostPath.Type != nil {
			typ = *src.HostPath.Type
		}
		return CheckHostPath(src.HostPath.Path, typ)
	case src.EmptyDir != nil:
		return m.setUpEmptyDir(pod, vol.Name, src.EmptyDir)
	case src.ConfigMap != nil:
		dir, err := m.volumeDir(pod, PluginConfigMap, vol.Name, false)
		if err != nil {
			return err
		}
		files, err := m.configMapFiles(ctx, pod, src.ConfigMap.Name, src.ConfigMap.Items, modeOr(src.ConfigMap.DefaultMode), src.ConfigMap.Optional)
		if err != nil {
			return err
		}
		_, err = WriteAtomic(dir, files, m.cfg.Clock.Now())
		return err
	case src.Secret != nil:
		dir, err := m.volumeDir(pod, PluginSecret, vol.Name, true)
		if err != nil {
			return err
		}
		files, err := m.secretFiles(ctx, pod, src.Secret.SecretName, src.Secret.Items, modeOr(src.Secret.DefaultMode), src.Secret.Optional)
		if err != nil {
			return err
		}
		_, err = WriteAtomic(dir, files, m.cfg.Clock.Now())
		return err
	case src.DownwardAPI != nil:
		dir, err := m.volumeDir(pod, PluginDownwardAPI, vol.Name, false)
		if err != nil {
			return err
		}
		files, err := m.downwardAPIFiles(pod, src.DownwardAPI.Items, modeOr(src.DownwardAPI.DefaultMode))
		if err != nil {
			return err
		}
		_, err = WriteAtomic(dir, files, m.cfg.Clock.Now())
		return err
	case src.Projected != nil:
		dir, err := m.volumeDir(pod, PluginProjected, vol.Name, true)
		if err != nil {
			return err
		}
		files, err := m.projectedFiles(ctx, pod, vol.Name, src.Projected)
		if err != nil {
			return err
		}
		_, err = WriteAtomic(dir, files, m.cfg.Clock.Now())
		return err
	}
	return fmt.Errorf("volume kind %s is not supported by Berth", VolumeKind(vol))
}

// VolumeKind names a volume's kind by its field name (hostPath, persistentVolumeClaim, csi, ...).
func VolumeKind(vol *v1.Volume) string {
	s := &vol.VolumeSource
	kinds := []struct {
		set  bool
		name string
	}{
		{s.HostPath != nil, "hostPath"}, {s.EmptyDir != nil, "emptyDir"}, {s.ConfigMap != nil, "configMap"},
		{s.Secret != nil, "secret"}, {s.DownwardAPI != nil, "downwardAPI"}, {s.Projected != nil, "projected"},
		{s.PersistentVolumeClaim != nil, "persistentVolumeClaim"}, {s.CSI != nil, "csi"}, {s.Ephemeral != nil, "ephemeral"},
		{s.NFS != nil, "nfs"}, {s.ISCSI != nil, "iscsi"}, {s.Image != nil, "image"}, {s.FC != nil, "fc"},
	}
	for _, k := range kinds {
		if k.set {
			return k.name
		}
	}
	return "(unknown)"
}

// volumeDir creates a volume's directory; memory-backed ones (secret, projected) get a tmpfs, so
// that their contents never reach a disk.
func (m *Manager) volumeDir(pod *v1.Pod, plugin, name string, memory bool) (string, error) {
	dir := VolumeDir(m.cfg.RootDir, pod.UID, plugin, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	if memory {
		return dir, mountTmpfs(dir, 0, 0o1777)
	}
	return dir, os.Chmod(dir, 0o777)
}

func (m *Manager) setUpEmptyDir(pod *v1.Pod, name string, src *v1.EmptyDirVolumeSource) error {
	dir := VolumeDir(m.cfg.RootDir, pod.UID, PluginEmptyDir, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	switch src.Medium {
	case v1.StorageMediumDefault:
		// World-writable, as the kubelet makes it: any container user may write.
		return os.Chmod(dir, 0o777)
	case v1.StorageMediumMemory:
		return mountTmpfs(dir, m.emptyDirMemorySize(pod, src.SizeLimit), 0o1777)
	}
	return fmt.Errorf("emptyDir medium %q is not supported by Berth (use \"\" or Memory)", src.Medium)
}

// emptyDirMemorySize is the size of a memory-backed emptyDir's tmpfs: its sizeLimit, else the pod's
// memory limit (its containers' limits when every container has one), else the node's memory.
func (m *Manager) emptyDirMemorySize(pod *v1.Pod, sizeLimit *resource.Quantity) int64 {
	if sizeLimit != nil && sizeLimit.Value() > 0 {
		return sizeLimit.Value()
	}
	if l := PodMemoryLimit(pod); l > 0 {
		return l
	}
	return m.cfg.NodeMemoryCapacity
}

// PodMemoryLimit is the pod's memory limit in bytes, as the API's resource helpers compute it: the
// sum of the limits its app containers and sidecars set or, if larger, the largest limit of a
// regular init container plus those of the sidecars started before it. Containers without a
// limit add nothing; 0 means no container sets one.
func PodMemoryLimit(pod *v1.Pod) int64 {
	limit := func(c *v1.Container) int64 {
		if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
			return q.Value()
		}
		return 0
	}
	var apps, sidecars, initMax int64
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			sidecars += limit(c)
		} else {
			initMax = max(initMax, limit(c)+sidecars)
		}
	}
	for i := range pod.Spec.Containers {
		apps += limit(&pod.Spec.Containers[i])
	}
	return max(apps+sidecars, initMax)
}

func modeOr(m *int32) int32 {
	if m == nil {
		return 0o644 // the API's default for defaultMode
	}
	return *m
}

func fileMode(item *int32, def int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item) & os.ModePerm
	}
	return os.FileMode(def) & os.ModePerm
}

func isOptional(b *bool) bool { return b != nil && *b }

func (m *Manager) needObjects(kind string) error {
	if m.cfg.Objects == nil {
		return fmt.Errorf("%s volumes need an API server (cluster mode)", kind)
	}
	return nil
}

// configMapFiles is the content of a configMap volume or projection: every key of Data and
// BinaryData, or the items asked for, with their modes.
func (m *Manager) configMapFiles(ctx context.Context, pod *v1.Pod, name string, items []v1.KeyToPath, defaultMode int32, optional *bool) (map[string]File, error) {
	if err := m.needObjects("configMap"); err != nil {
		return nil, err
	}
	cm, err := m.cfg.Objects.ConfigMap(ctx, pod.Namespace, name)
	if err != nil {
		return nil, err
	}
	if cm == nil {
		if isOptional(optional) {
			return map[string]File{}, nil
		}
		return nil, fmt.Errorf("configmap %q not found", name)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, defaultMode, optional, "configmap references non-existent config key")
}

// secretFiles is configMapFiles for a Secret.
func (m *Manager) secretFiles(ctx context.Context, pod *v1.Pod, name string, items []v1.KeyToPath, defaultMode int32, optional *bool) (map[string]File, error) {
	if err := m.needObjects("secret"); err != nil {
		return nil, err
	}
	s, err := m.cfg.Objects.Secret(ctx, pod.Namespace, name)
	if err != nil {
		return nil, err
	}
	if s == nil {
		if isOptional(optional) {
			return map[string]File{}, nil
		}
		return nil, fmt.Errorf("secret %q not found", name)
	}
	return keyFiles(s.Data, items, defaultMode, optional, "references non-existent secret key")
}

func keyFiles(data map[string][]byte, items []v1.KeyToPath, defaultMode int32, optional *bool, missing string) (map[string]File, error) {
	files := map[string]File{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = File{Data: v, Mode: fileMode(nil, defaultMode)}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if isOptional(optional) {
				continue
			}
			return nil, fmt.Errorf("%s: %s", missing, it.Key)
		}
		if err := checkRelativePath(it.Path); err != nil {
			return nil, fmt.Errorf("items path: %w", err)
		}
		files[filepath.Clean(it.Path)] = File{Data: v, Mode: fileMode(it.Mode, defaultMode)}
	}
	return files, nil
}

// downwardAPIFiles is the content of a downwardAPI volume or projection.
func (m *Manager) downwardAPIFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, defaultMode int32) (map[string]File, error) {
	files := map[string]File{}
	for _, it := range items {
		var value string
		switch {
		case it.FieldRef != nil:
			v, err := downwardFieldValue(pod, it.FieldRef)
			if err != nil {
				return nil, err
			}
			value = v
		case it.ResourceFieldRef != nil:
			v, err := cri.ResourceFieldValue(pod, nil, it.ResourceFieldRef, m.cfg.NodeMemoryCapacity)
			if err != nil {
				return nil, err
			}
			value = v
		default:
			return nil, fmt.Errorf("downwardAPI item %q has neither fieldRef nor resourceFieldRef", it.Path)
		}
		if err := checkRelativePath(it.Path); err != nil {
			return nil, fmt.Errorf("items path: %w", err)
		}
		files[filepath.Clean(it.Path)] = File{Data: []byte(value), Mode: fileMode(it.Mode, defaultMode)}
	}
	return files, nil
}

// downwardFieldValue is a fieldRef of a downwardAPI volume: the metadata fields (labels and
// annotations whole, as key="value" lines sorted by key, or one of them).
func downwardFieldValue(pod *v1.Pod, ref *v1.ObjectFieldSelector) (string, error) {
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", fmt.Errorf("fieldRef %s: apiVersion %q: only v1 is supported", ref.FieldPath, ref.APIVersion)
	}
	switch path := ref.FieldPath; path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	default:
		if key, ok := cri.FieldPathSubscript(path, "metadata.labels"); ok {
			return pod.Labels[key], nil
		}
		if key, ok := cri.FieldPathSubscript(path, "metadata.annotations"); ok {
			return pod.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("fieldRef %s: unsupported field path in a downwardAPI volume", ref.FieldPath)
}

// formatMap writes labels or annotations one per line, key="value" with the value quoted as in Go,
// sorted by key, without a final newline.
func formatMap(m map[string]string) string {
	var lines []string
	for _, k := range slices.Sorted(mapsKeys(m)) {
		lines = append(lines, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return strings.Join(lines, "\n")
}

// projectedFiles is the union of a projected volume's sources.
func (m *Manager) projectedFiles(ctx context.Context, pod *v1.Pod, volume string, p *v1.ProjectedVolumeSource) (map[string]File, error) {
	def := modeOr(p.DefaultMode)
	files := map[string]File{}
	add := func(more map[string]File) error {
		for k, v := range more {
			if _, dup := files[k]; dup {
				return fmt.Errorf("projected volume: two sources write %q", k)
			}
			files[k] = v
		}
		return nil
	}
	for i, s := range p.Sources {
		var more map[string]File
		var err error
		switch {
		case s.ConfigMap != nil:
			more, err = m.configMapFiles(ctx, pod, s.ConfigMap.Name, s.ConfigMap.Items, def, s.ConfigMap.Optional)
		case s.Secret != nil:
			more, err = m.secretFiles(ctx, pod, s.Secret.Name, s.Secret.Items, def, s.Secret.Optional)
		case s.DownwardAPI != nil:
			more, err = m.downwardAPIFiles(pod, s.DownwardAPI.Items, def)
		case s.ServiceAccountToken != nil:
			var data []byte
			data, err = m.token(ctx, pod, volume, i, s.ServiceAccountToken)
			if err == nil {
				if perr := checkRelativePath(s.ServiceAccountToken.Path); perr != nil {
					return nil, fmt.Errorf("serviceAccountToken path: %w", perr)
				}
				more = map[string]File{filepath.Clean(s.ServiceAccountToken.Path): {Data: data, Mode: fileMode(nil, def)}}
			}
		case s.ClusterTrustBundle != nil:
			err = errors.New("clusterTrustBundle projections are not supported by Berth yet")
		case s.PodCertificate != nil:
			err = errors.New("podCertificate projections are not supported by Berth yet")
		default:
			err = fmt.Errorf("projected source %d has no kind Berth knows", i)
		}
		if err != nil {
			return nil, err
		}
		if err := add(more); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// ContainerMounts is the CRI mount list of container c's volumeMounts. vars are the container's
// environment variables, for subPathExpr. A subPath is resolved inside its volume (never through a
// symlink out of it) and bind-mounted under the pod's volume-subpaths directory, which is what the
// runtime mounts. configMap, secret, downwardAPI and projected volumes are always read-only.
func (m *Manager) ContainerMounts(pod *v1.Pod, c *v1.Container, vars map[string]string) ([]*runtimeapi.Mount, error) {
	var mounts []*runtimeapi.Mount
	for i, vm := range c.VolumeMounts {
		vol := findVolume(pod, vm.Name)
		if vol == nil {
			return nil, fmt.Errorf("volumeMount %q: no volume of that name in the pod", vm.Name)
		}
		host, readOnly, err := m.hostPath(pod, vol)
		if err != nil {
			return nil, fmt.Errorf("volumeMount %q: %w", vm.Name, err)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = cri.ExpandVars(vm.SubPathExpr, vars)
			if err := checkRelativePath(sub); err != nil {
				return nil, fmt.Errorf("volumeMount %q: subPathExpr %q expands to an invalid path: %w", vm.Name, vm.SubPathExpr, err)
			}
		}
		if sub != "" {
			fd, err := resolveSubPath(host, sub)
			if err != nil {
				return nil, fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", vm.Name, c.Name, err)
			}
			target := subPathDir(m.cfg.RootDir, pod.UID, vol.Name, c.Name, i)
			err = bindSubPath(fd, target)
			closeFd(fd)
			if err != nil {
				return nil, fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", vm.Name, c.Name, err)
			}
			host = target
		}
		prop, err := propagation(vm.MountPropagation)
		if err != nil {
			return nil, fmt.Errorf("volumeMount %q: %w", vm.Name, err)
		}
		mounts = append(mounts, &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      host,
			Readonly:      vm.ReadOnly || readOnly,
			Propagation:   prop,
		})
	}
	return mounts, nil
}

// hostPath is where a volume is on the host, and whether it is always mounted read-only.
func (m *Manager) hostPath(pod *v1.Pod, vol *v1.Volume) (string, bool, error) {
	s := &vol.VolumeSource
	switch {
	case s.HostPath != nil:
		return s.HostPath.Path, false, nil
	case s.EmptyDir != nil:
		return VolumeDir(m.cfg.RootDir, pod.UID, PluginEmptyDir, vol.Name), false, nil
	case s.ConfigMap != nil:
		return VolumeDir(m.cfg.RootDir, pod.UID, PluginConfigMap, vol.Name), true, nil
	case s.Secret != nil:
		return VolumeDir(m.cfg.RootDir, pod.UID, PluginSecret, vol.Name), true, nil
	case s.DownwardAPI != nil:
		return VolumeDir(m.cfg.RootDir, pod.UID, PluginDownwardAPI, vol.Name), true, nil
	case s.Projected != nil:
		return VolumeDir(m.cfg.RootDir, pod.UID, PluginProjected, vol.Name), true, nil
	}
	return "", false, fmt.Errorf("volume kind %s is not supported by Berth", VolumeKind(vol))
}

func findVolume(pod *v1.Pod, name string) *v1.Volume {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return &pod.Spec.Volumes[i]
		}
	}
	return nil
}

// propagation maps a volumeMount's mountPropagation to the CRI's.
func propagation(p *v1.MountPropagationMode) (runtimeapi.MountPropagation, error) {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	}
	switch *p {
	case v1.MountPropagationNone:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	case v1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, nil
	case v1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, nil
	}
	return 0, fmt.Errorf("mountPropagation %q: want None, HostToContainer or Bidirectional", *p)
}

// TearDown removes everything of a pod's volumes: every mount under its directory (tmpfs volumes,
// subPath bind mounts) is unmounted, then the directory is removed, and its tokens forgotten. It
// works from the mount table, not the spec, so it also cleans up after a pod known only from
// the runtime.
func (m *Manager) TearDown(uid types.UID) error {
	m.mu.Lock()
	for k := range m.tokens {
		if k.podUID == uid {
			delete(m.tokens, k)
		}
	}
	m.mu.Unlock()
	return RemovePodDir(PodDir(m.cfg.RootDir, uid))
}

// PodsWithVolumes lists the UIDs of the pod directories under the root directory (for cleaning up
// after pods removed while Berth was down).
func (m *Manager) PodsWithVolumes() ([]types.UID, error) {
	entries, err := os.ReadDir(filepath.Join(m.cfg.RootDir, "pods"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []types.UID
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, types.UID(e.Name()))
		}
	}
	return out, nil
}

// now is the manager's clock, for the token cache.
func (m *Manager) now() time.Time { return m.cfg.Clock.Now() }
