package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestBinaryLinksNoClientset keeps client-go's clientset, informers, discovery and the API groups
// Berth does not use out of the binary: they were half of its size and most of its resident memory
// (package kubeclient, docs/design.md).
func TestBinaryLinksNoClientset(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/berth-dev/berth/cmd/berth").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := regexp.MustCompile(`^(k8s.io/client-go/(kubernetes|informers|discovery|applyconfigurations|gentype|testing)(/|$)|github.com/emicklei/go-restful|k8s.io/api/)`)
	allowed := map[string]bool{
		"k8s.io/api/core/v1": true, "k8s.io/api/coordination/v1": true,
		"k8s.io/api/authentication/v1": true, "k8s.io/api/authorization/v1": true,
	}
	n := 0
	for _, p := range strings.Fields(string(out)) {
		n++
		if forbidden.MatchString(p) && !allowed[p] {
			t.Errorf("berth links %s", p)
		}
	}
	if n < 100 {
		t.Fatalf("go list -deps listed %d packages: %s", n, out)
	}
}
