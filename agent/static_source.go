package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
)

// StaticSourceConfig configures the static pod source: a directory of pod manifests, one per file.
type StaticSourceConfig struct {
	Dir      string           // staticPodPath
	NodeName string           // appended to every static pod's name, and its spec.nodeName
	Rescan   time.Duration    // fileCheckFrequency: full rescan period; 20s if zero
	Clock    clock.WithTicker // real clock if nil
	Logger   *slog.Logger     // slog.Default() if nil
}

const (
	defaultStaticRescan = 20 * time.Second
	// staticDebounce is how long the directory must be quiet after an event before it is scanned,
	// so that a file written in several steps gives one update. staticMaxDelay bounds the wait
	// when events keep coming.
	staticDebounce = 100 * time.Millisecond
	staticMaxDelay = time.Second
)

// staticSource turns the manifests in a directory into full snapshots of the static pods wanted on
// this node. Every regular file (or symlink to one) whose name does not start with '.' holds one
// pod; subdirectories are ignored. A file that cannot be used becomes a ManifestError and never
// affects the others.
//
// The pods it sends are shared with later snapshots (an unchanged file keeps its *v1.Pod) and must
// not be modified.
type staticSource struct {
	dir      string
	nodeName string
	rescan   time.Duration
	debounce time.Duration
	maxDelay time.Duration
	clock    clock.WithTicker
	log      *slog.Logger
	watch    bool // use fsnotify; tests turn it off to play lost events

	// Owned by whoever scans: Run, or a test calling scan directly.
	pods     map[types.UID]*v1.Pod // the pods of the last scan
	files    map[types.UID]string  // and their files
	lastPods []*v1.Pod             // the same pods, in snapshot order
	logged   map[string]string     // file → the error last logged for it
}

func newStaticSource(cfg StaticSourceConfig) (*staticSource, error) {
	if cfg.Dir == "" {
		return nil, errors.New("static pod source: no directory given: set the static pod path to a directory of pod manifests")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("static pod directory %s: %w", cfg.Dir, err)
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("static pod directory %s does not exist: create it (mkdir -p %s) or point the static pod path at an existing directory", dir, dir)
	case err != nil:
		return nil, fmt.Errorf("static pod directory %s: %w", dir, err)
	case !info.IsDir():
		return nil, fmt.Errorf("static pod path %s is not a directory: it must be a directory holding one pod manifest per file", dir)
	}
	if cfg.NodeName == "" {
		return nil, errors.New("static pod source: the node name is required (static pods are named <name>-<node name>)")
	}
	if msgs := validation.IsDNS1123Subdomain(cfg.NodeName); len(msgs) > 0 {
		return nil, fmt.Errorf("static pod source: invalid node name %q: %s", cfg.NodeName, strings.Join(msgs, "; "))
	}
	s := &staticSource{
		dir:      dir,
		nodeName: cfg.NodeName,
		rescan:   cfg.Rescan,
		debounce: staticDebounce,
		maxDelay: staticMaxDelay,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		watch:    true,
		pods:     map[types.UID]*v1.Pod{},
		files:    map[types.UID]string{},
		logged:   map[string]string{},
	}
	if s.rescan <= 0 {
		s.rescan = defaultStaticRescan
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Run scans the directory and sends a full snapshot after the first scan (even an empty one: the
// agent waits for it before cleaning up pods that vanished while Berth was down), then a new
// snapshot whenever the pods or the errors change. Changes are noticed through fsnotify, with
// bursts of events debounced, and by a full rescan every Rescan period, since events can be lost.
// Run returns when ctx is done.
func (s *staticSource) Run(ctx context.Context, out chan<- SourceUpdate) {
	var (
		watcher  *fsnotify.Watcher
		events   <-chan fsnotify.Event
		errs     <-chan error
		watching bool
	)
	if s.watch {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			s.log.Warn("cannot watch the static pod directory; changes are seen at the next rescan", "dir", s.dir, "rescan", s.rescan, "err", err)
		} else {
			defer w.Close()
			watcher, events, errs = w, w.Events, w.Errors
			watching = s.addWatch(watcher)
		}
	}
	// The ticker exists before the first snapshot is sent, so a fake clock stepped after it is
	// received always reaches it.
	ticker := s.clock.NewTicker(s.rescan)
	defer ticker.Stop()

	last := s.scan()
	if !send(ctx, out, last) {
		return
	}
	var (
		debounce   clock.Timer
		burstStart time.Time
	)
	defer func() {
		if debounce != nil {
			debounce.Stop()
		}
	}()
	for {
		var fire <-chan time.Time
		if debounce != nil {
			fire = debounce.C()
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Name == s.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				watching = false // the watch went with the directory: try again at the next rescan
			}
			// Wait for a quiet moment, but not for ever.
			now := s.clock.Now()
			if debounce == nil {
				burstStart = now
			}
			if debounce == nil || now.Sub(burstStart) < s.maxDelay {
				if debounce != nil {
					debounce.Stop()
				}
				debounce = s.clock.NewTimer(s.debounce)
			}
			continue
		case err, ok := <-errs:
			if !ok {
				errs = nil
			} else {
				s.log.Warn("watching the static pod directory", "dir", s.dir, "err", err)
			}
			continue
		case <-fire:
			debounce = nil
		case <-ticker.C():
			if watcher != nil && !watching {
				watching = s.addWatch(watcher)
			}
		}
		next := s.scan()
		if !snapshotChanged(last, next) {
			continue
		}
		if !send(ctx, out, next) {
			return
		}
		last = next
	}
}

// addWatch watches the directory. A missing directory is not logged: scan reports it.
func (s *staticSource) addWatch(w *fsnotify.Watcher) bool {
	if err := w.Add(s.dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false
		}
		s.log.Warn("cannot watch the static pod directory; changes are seen at the next rescan", "dir", s.dir, "rescan", s.rescan, "err", err)
		return false
	}
	return true
}

func send(ctx context.Context, out chan<- SourceUpdate, u SourceUpdate) bool {
	select {
	case out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// snapshotChanged reports whether two snapshots differ in their pods (by UID, which changes with
// any edit) or their errors.
func snapshotChanged(a, b SourceUpdate) bool {
	samePods := slices.EqualFunc(a.Pods, b.Pods, func(x, y *v1.Pod) bool { return x.UID == y.UID })
	return !samePods || !slices.Equal(a.Errors, b.Errors)
}

// scan reads the whole directory and returns the snapshot it describes: pods sorted by file name,
// and one ManifestError per file that could not be used.
func (s *staticSource) scan() SourceUpdate {
	u := SourceUpdate{Source: SourceFile, Pods: []*v1.Pod{}, Errors: []ManifestError{}}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The directory was removed: as if every file in it was. Say so, until it comes back.
			s.fail(&u, s.dir, "the static pod directory does not exist (any more): no static pods until it is created again")
			s.keep(u.Pods, nil)
		} else {
			// Probably transient: keep the pods of the last good scan rather than stop them all.
			s.fail(&u, s.dir, fmt.Sprintf("cannot read the static pod directory: %v", err))
			u.Pods = append(u.Pods, s.lastPods...)
		}
		s.forgetLogged(u.Errors)
		return u
	}

	byName := map[string]string{}   // namespace/name → file that defines it
	files := map[types.UID]string{} // pod → its file
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		info, err := os.Stat(path) // follows symlinks
		if err != nil {
			s.fail(&u, path, fmt.Sprintf("cannot read: %v", err))
			continue
		}
		if info.IsDir() || !info.Mode().IsRegular() {
			continue // subdirectories are ignored, as are sockets, pipes and devices
		}
		pod, err := s.load(path, info)
		if err != nil {
			s.fail(&u, path, err.Error())
			continue
		}
		key := pod.Namespace + "/" + pod.Name
		if other, dup := byName[key]; dup {
			s.fail(&u, path, fmt.Sprintf("duplicate pod %q: already defined in %s", key, other))
			continue
		}
		byName[key] = path
		files[pod.UID] = path
		u.Pods = append(u.Pods, pod)
	}
	s.forgetLogged(u.Errors)
	s.keep(u.Pods, files)
	return u
}

// keep records the pods of a scan and their files: the next scan reuses the objects of unchanged
// files.
func (s *staticSource) keep(pods []*v1.Pod, files map[types.UID]string) {
	next := make(map[types.UID]*v1.Pod, len(pods))
	for _, p := range pods {
		next[p.UID] = p
		if s.pods[p.UID] == nil {
			s.log.Info("static pod added", "pod", p.Namespace+"/"+p.Name, "uid", p.UID, "file", files[p.UID])
		}
	}
	for uid, p := range s.pods {
		if next[uid] == nil {
			s.log.Info("static pod removed", "pod", p.Namespace+"/"+p.Name, "uid", uid, "file", s.files[uid])
		}
	}
	s.pods, s.files, s.lastPods = next, files, pods
}

// fail adds a ManifestError to u, and logs it unless it was already logged for this file.
func (s *staticSource) fail(u *SourceUpdate, file, reason string) {
	u.Errors = append(u.Errors, ManifestError{File: file, Error: reason})
	if s.logged[file] != reason {
		s.logged[file] = reason
		s.log.Warn("static pod manifest rejected", "file", file, "error", reason)
	}
}

// forgetLogged drops the logged errors of files that no longer have one, so that a file that
// breaks again is logged again.
func (s *staticSource) forgetLogged(errs []ManifestError) {
	for file := range s.logged {
		if !slices.ContainsFunc(errs, func(e ManifestError) bool { return e.File == file }) {
			delete(s.logged, file)
		}
	}
}

// load reads one manifest and returns its static pod, reusing the pod of the previous scan when
// the file has not changed.
func (s *staticSource) load(path string, info fs.FileInfo) (*v1.Pod, error) {
	if info.Size() > maxManifestBytes {
		return nil, manifestTooLarge(info.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", err)
	}
	if len(data) > maxManifestBytes { // it grew since Stat
		return nil, manifestTooLarge(max(info.Size(), int64(len(data))))
	}
	uid := staticPodUID(s.nodeName, path, data)
	if pod := s.pods[uid]; pod != nil {
		return pod, nil
	}
	pod, err := parseManifest(data)
	if err != nil {
		return nil, err
	}
	if errs := validateStaticPodName(pod.Name, s.nodeName); len(errs) > 0 {
		return nil, errorListError(errs)
	}
	s.makeStatic(pod, uid)
	return pod, nil
}

// makeStatic turns a manifest's pod into this node's static pod: named <name>-<node>, bound to the
// node, with a UID derived from the file, the config annotations, and the toleration the kubelet
// gives static pods (so that a NoExecute taint never evicts them).
func (s *staticSource) makeStatic(pod *v1.Pod, uid types.UID) {
	pod.Name = pod.Name + "-" + s.nodeName
	pod.Spec.NodeName = s.nodeName
	pod.UID = uid
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotationConfigHash] = string(uid)
	pod.Annotations[annotationConfigSource] = SourceFile
	pod.Annotations[annotationConfigSeen] = s.clock.Now().UTC().Format(time.RFC3339)
	if !slices.ContainsFunc(pod.Spec.Tolerations, toleratesAllNoExecute) {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute})
	}
}

func toleratesAllNoExecute(t v1.Toleration) bool {
	return t.Key == "" && t.Operator == v1.TolerationOpExists && (t.Effect == "" || t.Effect == v1.TaintEffectNoExecute)
}

// staticPodUID derives a pod UID from the node, the file and its content: the same file gives the
// same UID across restarts, and any edit gives a new one (so the agent replaces the pod). It is
// formatted as an RFC 9562 version 8 UUID.
func staticPodUID(nodeName, path string, content []byte) types.UID {
	h := sha256.New()
	h.Write([]byte(nodeName))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(content)
	sum := h.Sum(nil)
	sum[6] = sum[6]&0x0f | 0x80 // version 8
	sum[8] = sum[8]&0x3f | 0x80 // variant 10
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16]))
}

// validateStaticPodName checks that the static pod name, <name>-<node>, is still a valid name.
func validateStaticPodName(name, nodeName string) field.ErrorList {
	full := name + "-" + nodeName
	if len(full) <= validation.DNS1123SubdomainMaxLength {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), name, fmt.Sprintf(
		"the static pod name %q (name-node) is %d characters, more than %d: shorten the name",
		full, len(full), validation.DNS1123SubdomainMaxLength))}
}
