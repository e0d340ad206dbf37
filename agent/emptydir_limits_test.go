package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/volumes"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestEmptyDirOverLimit(t *testing.T) {
	root := t.TempDir()
	a := &Agent{cfg: Config{RootDir: root}}
	lim := resource.MustParse("64Ki")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{Volumes: []v1.Volume{
		{Name: "nolimit", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &lim}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{SizeLimit: &lim}}},
	}}}
	write := func(vol string, n int) {
		dir := volumes.VolumeDir(root, pod.UID, volumes.PluginEmptyDir, vol)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if msg := a.emptyDirOverLimit(pod); msg != "" {
		t.Errorf("before any volume exists: %q", msg)
	}
	write("nolimit", 1<<20)
	write("mem", 1<<20) // not measured: its tmpfs is the limit
	write("scratch", 32<<10)
	if msg := a.emptyDirOverLimit(pod); msg != "" {
		t.Errorf("within the limit: %q", msg)
	}
	write("scratch", 256<<10)
	if msg, want := a.emptyDirOverLimit(pod), `Usage of EmptyDir volume "scratch" exceeds the limit "64Ki". `; msg != want {
		t.Errorf("over the limit: %q, want %q", msg, want)
	}
	if evictionExempt(pod) {
		t.Errorf("an API pod is not critical")
	}
	static := pod.DeepCopy()
	static.Annotations = map[string]string{annotationConfigSource: SourceFile}
	high := pod.DeepCopy()
	high.Spec.Priority = ptr.To(int32(2000001000))
	if !evictionExempt(static) || !evictionExempt(high) {
		t.Errorf("static or system-critical pods must not be evicted")
	}
}
