//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/agent"
)

// TestBadManifests: ten kinds of broken manifest each give a clear error naming the file and what is
// wrong, the good pods beside them keep running, and fixing a file brings its pod up.
func TestBadManifests(t *testing.T) {
	e := newEnv(t)
	e.writeManifest("a-good.yaml", shPod("good-a", "Always", "exec sleep 3600"))
	e.writeManifest("b-good.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"good-b"},"spec":{"terminationGracePeriodSeconds":1,
	  "containers":[{"name":"main","image":"localhost/busybox:latest","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]}]}}`)
	e.start()
	e.waitPods("good pods Running", 10*time.Second, func(l agent.PodList) bool {
		return podRunning("good-a")(l) && podRunning("good-b")(l)
	})
	before := e.pods()

	good := shPod("x", "Always", "exec sleep 3600")
	bad := map[string]struct{ body, want string }{
		"yaml-syntax.yaml":   {"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n   bad: indent\n", "invalid YAML"},
		"two-docs.yaml":      {good + "---\n" + good, "more than one document"},
		"not-a-pod.yaml":     {"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n", `kind is "Deployment"`},
		"missing-image.yaml": {strings.Replace(good, "    image: localhost/busybox:latest\n", "", 1), "spec.containers[0].image: Required value"},
		"bad-name.yaml":      {strings.Replace(good, "name: x", "name: Bad_Name", 1), "metadata.name: Invalid value"},
		"unknown-field.yaml": {strings.Replace(good, "image:", "imagee:", 1), "spec.containers[0].imagee: unknown field"},
		"z-duplicate.yaml":   {shPod("good-a", "Always", "exec sleep 3600"), "duplicate"},
		"unsupported.yaml":   {good + "  volumes:\n  - {name: data, persistentVolumeClaim: {claimName: data}}\n", "spec.volumes[0].persistentVolumeClaim: Unsupported value: Berth does not support persistentVolumeClaim volumes"},
		"empty.yaml":         {"", "empty manifest"},
		"huge.yaml":          {good + "# " + strings.Repeat("x", 2<<20) + "\n", "larger than the limit"},
	}
	for file, b := range bad {
		e.writeManifest(file, b.body)
	}
	l := e.waitPods("ten manifest errors", 10*time.Second, func(l agent.PodList) bool { return len(l.ManifestErrors) == len(bad) })
	for file, b := range bad {
		path := filepath.Join(e.manifests, file)
		var found *agent.ManifestError
		for i := range l.ManifestErrors {
			if l.ManifestErrors[i].File == path {
				found = &l.ManifestErrors[i]
			}
		}
		if found == nil {
			t.Errorf("%s: no manifest error", file)
			continue
		}
		if !strings.Contains(found.Error, b.want) {
			t.Errorf("%s: error %q, want it to contain %q", file, found.Error, b.want)
		}
	}
	if d := findManifestError(l, "z-duplicate.yaml"); d != nil && !strings.Contains(d.Error, "a-good.yaml") {
		t.Errorf("the duplicate's error does not name the file that defines the pod first: %q", d.Error)
	}
	if table := e.podsTable(); !strings.Contains(table, "MANIFEST") || !strings.Contains(table, "empty.yaml") {
		t.Errorf("berth pods table does not list the manifest errors:\n%s", table)
	}
	// The good pods were not disturbed, and no pod came from a bad file.
	for _, name := range []string{"good-a", "good-b"} {
		p, q := findPod(l, name), findPod(before, name)
		if p == nil || p.Phase != "Running" || p.UID != q.UID || p.Restarts != 0 || p.Containers[0].ID != q.Containers[0].ID {
			t.Errorf("%s disturbed: before %+v after %+v", name, q, p)
		}
	}
	if len(l.Pods) != 2 {
		t.Errorf("pods = %d, want only the 2 good ones", len(l.Pods))
	}
	if n := len(e.sandboxes("")); n != 2 {
		t.Errorf("runtime has %d sandboxes, want 2", n)
	}

	// Fixing a file brings its pod up; its error goes.
	e.writeManifest("missing-image.yaml", shPod("fixed", "Always", "exec sleep 3600"))
	l = e.waitPods("fixed pod Running", 10*time.Second, podRunning("fixed"))
	if findManifestError(l, "missing-image.yaml") != nil {
		t.Errorf("the fixed file still has an error")
	}

	// A file written in two steps in place (as an editor might): the half-written state is an
	// error, the finished file a pod.
	half := filepath.Join(e.manifests, "half.yaml")
	full := shPod("half", "Always", "exec sleep 3600")
	if err := os.WriteFile(half, []byte(full[:len(full)/2]), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(half, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	l = e.waitPods("half-written pod Running", 10*time.Second, podRunning("half"))
	if findManifestError(l, "half.yaml") != nil {
		t.Errorf("the completed file still has an error")
	}
}

func findManifestError(l agent.PodList, file string) *agent.ManifestError {
	for i := range l.ManifestErrors {
		if filepath.Base(l.ManifestErrors[i].File) == file {
			return &l.ManifestErrors[i]
		}
	}
	return nil
}
