package fakecri_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
)

// TestTranslationRoundTrip runs a pod translated by package cri on the fake runtime and reads
// back, from ListPodSandbox and ListContainers alone, what Berth needs after a restart.
func TestTranslationRoundTrip(t *testing.T) {
	s := fakecri.New(fakecri.Config{Images: []string{"nginx:1.27"}})
	if err := s.Serve(filepath.Join(t.TempDir(), "cri.sock")); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := grpc.NewClient(s.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx := context.Background()

	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", UID: "u-1", Labels: map[string]string{"app": "web"}},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name:  "nginx",
			Image: "nginx:1.27",
			Env:   []v1.EnvVar{{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
			Args:  []string{"--listen=$(IP):80"},
		}}},
	}
	dns, err := cri.DNSConfigForPod(pod, cri.ResolvConf{Servers: []string{"192.168.1.1"}}, []string{"10.96.0.10"}, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	sbCfg, err := cri.PodSandboxConfig(pod, cri.SandboxOptions{DNS: dns})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	ip := st.Status.Network.Ip
	c := &pod.Spec.Containers[0]
	cCfg, err := cri.ContainerConfig(pod, c, cri.ContainerOptions{RestartCount: 2, PodIPs: []string{ip}, Type: cri.ContainerTypeApp})
	if err != nil {
		t.Fatal(err)
	}
	if want := "--listen=" + ip + ":80"; cCfg.Args[0] != want {
		t.Errorf("args = %q, want %q", cCfg.Args, want)
	}
	cc, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: cCfg, SandboxConfig: sbCfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}

	// What Berth reads back after a restart.
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{cri.LabelManagedBy: cri.ManagedByValue}}})
	if err != nil || len(sandboxes.Items) != 1 {
		t.Fatalf("managed sandboxes = %v, %v", sandboxes, err)
	}
	item := sandboxes.Items[0]
	if item.Labels[cri.LabelPodUID] != "u-1" || item.Labels[cri.LabelPodName] != "web" || item.Labels[cri.LabelPodNamespace] != "prod" ||
		item.Annotations[cri.AnnotationTerminationGrace] != "30" {
		t.Errorf("sandbox labels %v annotations %v", item.Labels, item.Annotations)
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{cri.LabelPodUID: "u-1"}}})
	if err != nil || len(containers.Containers) != 1 {
		t.Fatalf("pod containers = %v, %v", containers, err)
	}
	got := containers.Containers[0]
	if got.Labels[cri.LabelContainerName] != "nginx" || got.Annotations[cri.AnnotationContainerHash] != cri.ContainerHash(c) ||
		got.Annotations[cri.AnnotationRestartCount] != strconv.Itoa(2) || got.Annotations[cri.AnnotationContainerType] != cri.ContainerTypeApp ||
		got.State != runtimeapi.ContainerState_CONTAINER_RUNNING || got.Metadata.Attempt != 2 {
		t.Errorf("container = %v", got)
	}
	cs, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: got.Id})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/var/log/pods/prod_web_u-1/nginx/2.log"; cs.Status.LogPath != want {
		t.Errorf("log path = %q, want %q", cs.Status.LogPath, want)
	}
}
