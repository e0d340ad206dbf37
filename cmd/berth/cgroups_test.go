package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/cgroups"
	"github.com/berth-dev/berth/cri"
	"github.com/berth-dev/berth/cri/fakecri"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCheckRuntimeDriverRuntimeConfig: a runtime that answers the CRI RuntimeConfig call is
// checked with it (containerd 1.6, which does not, is checked through its verbose status: the
// integration test TestCgroupsDriverMismatch).
func TestCheckRuntimeDriverRuntimeConfig(t *testing.T) {
	srv := fakecri.New(fakecri.Config{CgroupDriver: runtimeapi.CgroupDriver_SYSTEMD})
	if err := srv.Serve(filepath.Join(t.TempDir(), "cri.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	client, err := cri.NewClient(cri.ClientConfig{Endpoint: srv.Endpoint(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := checkRuntimeDriver(context.Background(), cgroups.DriverSystemd, client); err != nil {
		t.Errorf("same driver: %v", err)
	}
	err = checkRuntimeDriver(context.Background(), cgroups.DriverCgroupfs, client)
	if err == nil || !strings.Contains(err.Error(), `runtime uses "systemd"`) || !strings.Contains(err.Error(), "CRI RuntimeConfig") ||
		!strings.Contains(err.Error(), "cgroupDriver: systemd") {
		t.Errorf("mismatch: %v", err)
	}
}
