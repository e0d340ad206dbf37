package agent

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/volumes"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestVolumesInThePodWorker: a pod whose configMap volume is missing waits in ContainerCreating
// with FailedMount and no sandbox; once the ConfigMap exists it starts with the volume mounted
// read-only; a later failure to refresh (the ConfigMap deleted) does not hold the running pod back
// (its container is still restarted); the pod's removal leaves no directory.
func TestVolumesInThePodWorker(t *testing.T) {
	h := newWorkersHarness(t)
	ctx := context.Background()
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "vol", UID: "vol-uid"},
		Spec: v1.PodSpec{
			RestartPolicy:                 v1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Volumes: []v1.Volume{
				{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}}},
				{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			},
			Containers: []v1.Container{{
				Name: "app", Image: "busybox", ImagePullPolicy: v1.PullIfNotPresent,
				VolumeMounts: []v1.VolumeMount{{Name: "cfg", MountPath: "/etc/app"}, {Name: "scratch", MountPath: "/tmp/s"}},
			}},
		},
	}
	h.workers.update(p)
	h.waitStatus(t, p.UID, "FailedMount", func(st v1.PodStatus) bool {
		r := h.store.get(p.UID)
		return r != nil && strings.Contains(r.syncErr, `FailedMount: MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found`) &&
			len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].State.Waiting != nil && st.ContainerStatuses[0].State.Waiting.Reason == "ContainerCreating"
	})
	if n := h.srv.Calls()["RunPodSandbox"]; n != 0 {
		t.Errorf("%d sandboxes created while a volume fails", n)
	}

	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "settings"}, Data: map[string]string{"level": "3"}}
	if _, err := h.client.CoreV1().ConfigMaps("apps").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus(t, p.UID, "running", func(st v1.PodStatus) bool { return st.ContainerStatuses[0].State.Running != nil })
	root := h.workers.cfg.RootDir
	h.rt.mu.Lock()
	mounts := h.rt.configs["app"].Mounts
	h.rt.mu.Unlock()
	cfgDir := volumes.VolumeDir(root, p.UID, volumes.PluginConfigMap, "cfg")
	if len(mounts) < 2 || mounts[0].HostPath != cfgDir || mounts[0].ContainerPath != "/etc/app" || !mounts[0].Readonly ||
		mounts[1].HostPath != volumes.VolumeDir(root, p.UID, volumes.PluginEmptyDir, "scratch") || mounts[1].Readonly {
		t.Errorf("mounts %v", mounts)
	}
	if b, err := os.ReadFile(cfgDir + "/level"); err != nil || string(b) != "3" {
		t.Errorf("configMap file: %q %v", b, err)
	}

	// The ConfigMap goes away: the files stay as they were, and the pod is still managed.
	if err := h.client.CoreV1().ConfigMaps("apps").Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.clock.Step(volumeObjectTTL)
	id := strings.TrimPrefix(st.ContainerStatuses[0].ContainerID, "fakecri://")
	if err := h.srv.SetContainerExited(id, 1, "Error"); err != nil {
		t.Fatal(err)
	}
	h.workers.wake(p.UID)
	h.waitStatus(t, p.UID, "restarted despite the failing refresh", func(st v1.PodStatus) bool {
		return st.ContainerStatuses[0].RestartCount == 1 && st.ContainerStatuses[0].State.Running != nil
	})
	if r := h.store.get(p.UID); !strings.Contains(r.syncErr, `configmap "settings" not found`) {
		t.Errorf("the failed refresh is not reported: %q", r.syncErr)
	}
	if b, err := os.ReadFile(cfgDir + "/level"); err != nil || string(b) != "3" {
		t.Errorf("configMap file after a failed refresh: %q %v", b, err)
	}

	h.workers.remove(p.UID)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(volumes.PodDir(root, p.UID)); os.IsNotExist(err) {
			return
		}
		h.clock.Step(100 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("pod directory still there after removal")
}
