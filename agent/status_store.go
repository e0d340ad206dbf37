package agent

import (
	"sort"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// statusStore holds the latest status each pod worker computed, and the manifest errors of the
// sources: what `berth pods` shows. It is the single place pod status is published to.
type statusStore struct {
	mu             sync.RWMutex
	pods           map[types.UID]*podRecord
	manifestErrors map[string][]ManifestError // by source

	// onChange, when set (cluster mode), is told of every pod whose status was set: the status
	// manager then writes it to the API server.
	onChange func(types.UID)
}

type podRecord struct {
	pod     *v1.Pod
	status  v1.PodStatus
	syncErr string
}

func newStatusStore() *statusStore {
	return &statusStore{pods: map[types.UID]*podRecord{}, manifestErrors: map[string][]ManifestError{}}
}

func (s *statusStore) set(pod *v1.Pod, status v1.PodStatus, syncErr string) {
	s.mu.Lock()
	s.pods[pod.UID] = &podRecord{pod: pod, status: status, syncErr: syncErr}
	onChange := s.onChange
	s.mu.Unlock()
	if onChange != nil {
		onChange(pod.UID)
	}
}

func (s *statusStore) get(uid types.UID) *podRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pods[uid]
}

func (s *statusStore) remove(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pods, uid)
}

func (s *statusStore) setManifestErrors(source string, errs []ManifestError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manifestErrors[source] = errs
}

// podList renders the local view.
func (s *statusStore) podList() PodList {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := PodList{Pods: []PodView{}, ManifestErrors: []ManifestError{}}
	for _, r := range s.pods {
		out.Pods = append(out.Pods, viewOf(r))
	}
	sort.Slice(out.Pods, func(i, j int) bool {
		a, b := out.Pods[i], out.Pods[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for _, src := range []string{SourceFile, SourceAPI} {
		out.ManifestErrors = append(out.ManifestErrors, s.manifestErrors[src]...)
	}
	return out
}
