package agent

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const goodManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx:1.27
`

// badManifests are the kinds of broken manifest the integration suite also uses (the tenth,
// a duplicate pod name, only exists between files: see static_source_test.go). Each error must
// name what is wrong.
var badManifests = []struct {
	name     string
	manifest string
	want     []string // substrings of the error
}{
	{"yaml syntax error", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n   bad: indent\n", []string{"invalid YAML", "line 5"}},
	{"two documents", goodManifest + "---\n" + goodManifest, []string{"more than one document", "line 9"}},
	{"not a pod", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n", []string{`kind is "Deployment"`, "Pod"}},
	{"no kind", "apiVersion: v1\nmetadata:\n  name: web\n", []string{"missing kind"}},
	{"missing image", strings.Replace(goodManifest, "    image: nginx:1.27\n", "", 1), []string{"spec.containers[0].image: Required value"}},
	{"bad name", strings.Replace(goodManifest, "name: web", "name: Bad_Name", 1), []string{`metadata.name: Invalid value: "Bad_Name"`, "RFC 1123"}},
	{"unknown field", strings.Replace(goodManifest, "image:", "imagee:", 1), []string{"spec.containers[0].imagee: unknown field"}},
	{"unsupported lifecycle hook", goodManifest + "    lifecycle:\n      preStop:\n        tcpSocket:\n          port: 80\n", []string{"spec.containers[0].lifecycle.preStop.tcpSocket: Unsupported value: tcpSocket is deprecated and not supported as a lifecycle handler"}},
	{"probe on a plain init container", strings.Replace(goodManifest, "  containers:", "  initContainers:\n  - name: init\n    image: busybox\n    readinessProbe:\n      exec:\n        command: [\"true\"]\n  containers:", 1), []string{"spec.initContainers[0].readinessProbe"}},
	{"unsupported volume kind", goodManifest + "  volumes:\n  - name: data\n    persistentVolumeClaim: {claimName: data}\n", []string{"spec.volumes[0].persistentVolumeClaim: Unsupported value: Berth does not support persistentVolumeClaim volumes"}},
	{"volume without a kind", goodManifest + "  volumes:\n  - name: data\n", []string{"spec.volumes[0]: Required value: must specify a volume type"}},
	{"mount of a missing volume", strings.Replace(goodManifest, "    image: nginx:1.27\n", "    image: nginx:1.27\n    volumeMounts:\n    - {name: nope, mountPath: /x}\n", 1), []string{`spec.containers[0].volumeMounts[0].name: Not found: "nope"`}},
	{"subPath escape", strings.Replace(goodManifest, "    image: nginx:1.27\n", "    image: nginx:1.27\n    volumeMounts:\n    - {name: data, mountPath: /x, subPath: ../etc}\n", 1) + "  volumes:\n  - name: data\n    emptyDir: {}\n", []string{`spec.containers[0].volumeMounts[0].subPath: Invalid value: "../etc": must not contain '..'`}},
	{"bad hostPath type", goodManifest + "  volumes:\n  - name: data\n    hostPath: {path: /x, type: Dir}\n", []string{`spec.volumes[0].hostPath.type: Unsupported value: "Dir"`}},
	{"empty file", "", []string{"empty manifest"}},
	{"whitespace only", "  \n\t\n", []string{"empty manifest"}},
	{"comments only", "# nothing here\n---\n", []string{"empty manifest"}},
	{"huge file", goodManifest + "# " + strings.Repeat("x", maxManifestBytes) + "\n", []string{"bytes, larger than the limit of 1048576 bytes"}},
}

func TestParseManifestBad(t *testing.T) {
	for _, tc := range badManifests {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := parseManifest([]byte(tc.manifest))
			if err == nil {
				t.Fatalf("parseManifest succeeded (%v), want an error", pod.Name)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseManifestGood(t *testing.T) {
	// What `kubectl run web --image=nginx --dry-run=client -o yaml` prints.
	kubectlRun := `apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    run: web
  name: web
spec:
  containers:
  - image: nginx
    name: web
    resources: {}
  dnsPolicy: ClusterFirst
  restartPolicy: Always
status: {}
`
	json := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}`
	cases := map[string]string{
		"yaml":                    goodManifest,
		"yaml with markers":       "---\n" + goodManifest + "---\n# trailing comment\n",
		"yaml with end marker":    goodManifest + "...\n",
		"json":                    json,
		"json with whitespace":    "\n  " + json + "\n\n",
		"yaml flow mapping":       `{apiVersion: v1, kind: Pod, metadata: {name: web}, spec: {containers: [{name: app, image: "nginx:1.27"}]}}`,
		"byte order mark":         "\xef\xbb\xbf" + goodManifest,
		"crlf line endings":       strings.ReplaceAll(goodManifest, "\n", "\r\n"),
		"kubectl run output":      kubectlRun,
		"marker with comment":     "--- # the pod\n" + goodManifest,
		"yaml status is ignored":  goodManifest + "status:\n  phase: Running\n",
		"empty unsupported field": goodManifest + "  volumes: []\n  imagePullSecrets: []\n",
	}
	for name, manifest := range cases {
		t.Run(name, func(t *testing.T) {
			pod, err := parseManifest([]byte(manifest))
			if err != nil {
				t.Fatalf("parseManifest: %v", err)
			}
			if pod.Name != "web" || len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Image == "" {
				t.Errorf("unexpected pod: %+v", pod)
			}
		})
	}
}

func TestDecodeManifestErrors(t *testing.T) {
	cases := []struct {
		name     string
		manifest string
		want     string
	}{
		{"second document after end marker", goodManifest + "...\n" + goodManifest, "more than one document"},
		{"second document on the marker line", goodManifest + "--- {apiVersion: v1, kind: Pod}\n", "more than one document"},
		{"two json objects", `{"apiVersion":"v1","kind":"Pod"}` + "\n" + `{"apiVersion":"v1","kind":"Pod"}`, "more than one document (a second JSON value starts at line 2): put each pod in its own file"},
		{"json syntax error", "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\"\n  \"metadata\": {}\n}", "invalid JSON at line 4"},
		{"truncated json", `{"apiVersion":"v1","kind":"Pod","metadata":{`, "invalid JSON: unexpected end of file"},
		{"json trailing garbage", `{"apiVersion":"v1","kind":"Pod"} }`, "invalid JSON"},
		{"list", "- a\n- b\n", "not an object (a list)"},
		{"scalar", "hello\n", "not an object (a string)"},
		{"wrong apiVersion", "apiVersion: apps/v1\nkind: Pod\n", `apiVersion is "apps/v1"`},
		{"no apiVersion", "kind: Pod\n", "missing apiVersion"},
		{"duplicate yaml key", goodManifest + "  restartPolicy: Never\n  restartPolicy: Always\n", `key "restartPolicy" already set`},
		{"duplicate json key", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","name":"b"}}`, "metadata.name: duplicate field"},
		{"two unknown fields", strings.Replace(goodManifest, "spec:", "spec:\n  foo: 1\n  bar: 2", 1), "spec.bar: unknown field; spec.foo: unknown field"},
		{"wrong case", strings.Replace(goodManifest, "image:", "Image:", 1), "spec.containers[0].Image: unknown field"},
		{"string for a list", "apiVersion: v1\nkind: Pod\nspec:\n  containers: nginx\n", "spec.containers: must be a list, not a string"},
		{"list for an object", "apiVersion: v1\nkind: Pod\nspec: [1]\n", "spec: must be an object, not a list"},
		{"string for a bool", "apiVersion: v1\nkind: Pod\nspec:\n  hostNetwork: 'yes'\n", "spec.hostNetwork: must be true or false, not a string"},
		{"string for a number", "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{ports: [{containerPort: '80'}]}]\n", "spec.containers.ports.containerPort: must be a whole number (32-bit), not a string"},
		{"fraction for an integer", "apiVersion: v1\nkind: Pod\nspec:\n  terminationGracePeriodSeconds: 1.5\n", "spec.terminationGracePeriodSeconds: must be a whole number (64-bit), not 1.5"},
		{"integer out of range", "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{ports: [{containerPort: 99999999999}]}]\n", "spec.containers.ports.containerPort: must be a whole number (32-bit), not 99999999999"},
		{"bad quantity", "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{resources: {limits: {cpu: 2, memory: lots}}}]\n", `spec.containers[0].resources.limits[memory]: Invalid value: "lots": must be a quantity`},
		{"bad divisor", "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{env: [{name: X, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: x1}}}]}]\n", `spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: "x1"`},
		{"tabs", "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: web\n", "invalid YAML: line 4"},
		{"exactly over the limit", strings.Repeat(" ", maxManifestBytes+1), "manifest is 1048577 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeManifest([]byte(tc.manifest))
			if err == nil {
				t.Fatalf("decodeManifest succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeManifestAtTheLimit(t *testing.T) {
	data := []byte(goodManifest + "#")
	data = append(data, []byte(strings.Repeat("x", maxManifestBytes-len(data)))...)
	if _, err := decodeManifest(data); err != nil {
		t.Fatalf("a manifest of exactly %d bytes: %v", len(data), err)
	}
}

func TestDefaultPod(t *testing.T) {
	pod := &v1.Pod{
		Spec: v1.PodSpec{
			HostNetwork:    true,
			InitContainers: []v1.Container{{Name: "init", Image: "busybox"}},
			Containers: []v1.Container{{
				Name:  "app",
				Image: "registry:5000/app:v1",
				Ports: []v1.ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, HostPort: 53, Protocol: v1.ProtocolUDP}},
				Env:   []v1.EnvVar{{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
				Resources: v1.ResourceRequirements{
					Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi")},
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")},
				},
			}},
		},
	}
	defaultPod(pod)

	if pod.Namespace != "default" {
		t.Errorf("namespace = %q", pod.Namespace)
	}
	s := pod.Spec
	if s.RestartPolicy != v1.RestartPolicyAlways || s.DNSPolicy != v1.DNSClusterFirst || s.SchedulerName != "default-scheduler" {
		t.Errorf("restartPolicy, dnsPolicy, schedulerName = %q, %q, %q", s.RestartPolicy, s.DNSPolicy, s.SchedulerName)
	}
	if s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 30 {
		t.Errorf("terminationGracePeriodSeconds = %v", s.TerminationGracePeriodSeconds)
	}
	if s.EnableServiceLinks == nil || !*s.EnableServiceLinks {
		t.Errorf("enableServiceLinks = %v", s.EnableServiceLinks)
	}
	if s.SecurityContext == nil {
		t.Errorf("securityContext is nil")
	}
	for _, c := range append(s.InitContainers, s.Containers...) {
		if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != v1.TerminationMessageReadFile {
			t.Errorf("%s: terminationMessagePath, Policy = %q, %q", c.Name, c.TerminationMessagePath, c.TerminationMessagePolicy)
		}
	}
	if got := s.InitContainers[0].ImagePullPolicy; got != v1.PullAlways {
		t.Errorf("init imagePullPolicy = %q", got)
	}
	app := s.Containers[0]
	if app.ImagePullPolicy != v1.PullIfNotPresent {
		t.Errorf("app imagePullPolicy = %q", app.ImagePullPolicy)
	}
	if p := app.Ports[0]; p.Protocol != v1.ProtocolTCP || p.HostPort != 80 {
		t.Errorf("port 0 = %+v, want TCP with hostPort 80 (hostNetwork)", p)
	}
	if p := app.Ports[1]; p.Protocol != v1.ProtocolUDP || p.HostPort != 53 {
		t.Errorf("port 1 = %+v", p)
	}
	if v := app.Env[0].ValueFrom.FieldRef.APIVersion; v != "v1" {
		t.Errorf("fieldRef.apiVersion = %q", v)
	}
	if q := app.Resources.Requests[v1.ResourceCPU]; q.String() != "100m" {
		t.Errorf("cpu request = %s, want the one set (100m)", q.String())
	}
	if q := app.Resources.Requests[v1.ResourceMemory]; q.String() != "1Gi" {
		t.Errorf("memory request = %s, want the limit (1Gi)", q.String())
	}
	if errs := validatePod(pod); len(errs) == 0 {
		// The pod has no name: validation must say so, and nothing else.
		t.Errorf("validatePod of a pod without a name found nothing")
	} else if len(errs) != 1 || errs[0].Field != "metadata.name" {
		t.Errorf("validatePod after defaultPod: %v", errs)
	}

	// Explicit values are kept.
	pod = &v1.Pod{ObjectMeta: metaName("x"), Spec: v1.PodSpec{
		RestartPolicy:                 v1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr.To[int64](0),
		EnableServiceLinks:            ptr.To(false),
		Containers:                    []v1.Container{{Name: "a", Image: "a:latest", ImagePullPolicy: v1.PullNever, Ports: []v1.ContainerPort{{ContainerPort: 80}}}},
	}}
	defaultPod(pod)
	if pod.Spec.RestartPolicy != v1.RestartPolicyNever || *pod.Spec.TerminationGracePeriodSeconds != 0 || *pod.Spec.EnableServiceLinks ||
		pod.Spec.Containers[0].ImagePullPolicy != v1.PullNever || pod.Spec.Containers[0].Ports[0].HostPort != 0 {
		t.Errorf("defaultPod overwrote explicit values: %+v", pod.Spec)
	}
}

func TestDefaultImagePullPolicy(t *testing.T) {
	cases := map[string]v1.PullPolicy{
		"nginx":                             v1.PullAlways,
		"nginx:latest":                      v1.PullAlways,
		"nginx:1.27":                        v1.PullIfNotPresent,
		"library/nginx":                     v1.PullAlways,
		"registry:5000/nginx":               v1.PullAlways,
		"registry:5000/nginx:latest":        v1.PullAlways,
		"registry:5000/nginx:1.27":          v1.PullIfNotPresent,
		"nginx@sha256:0123456789abcdef":     v1.PullIfNotPresent,
		"nginx:latest@sha256:0123456789abc": v1.PullIfNotPresent,
		"docker.io/library/nginx:stable":    v1.PullIfNotPresent,
	}
	for image, want := range cases {
		if got := defaultImagePullPolicy(image); got != want {
			t.Errorf("defaultImagePullPolicy(%q) = %q, want %q", image, got, want)
		}
	}
}

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// fullPod uses every supported field, validly.
func fullPod() *v1.Pod {
	c := v1.Container{
		Name:       "app",
		Image:      "registry.example:5000/app:v1",
		Command:    []string{"/app"},
		Args:       []string{"--port=8080"},
		WorkingDir: "/srv",
		Ports: []v1.ContainerPort{
			{Name: "http", ContainerPort: 8080, HostPort: 8080, HostIP: "127.0.0.1", Protocol: v1.ProtocolTCP},
			{Name: "dns", ContainerPort: 53, Protocol: v1.ProtocolUDP},
		},
		Env: []v1.EnvVar{
			{Name: "PLAIN", Value: "x"},
			{Name: "my.env-name", Value: "relaxed"},
			{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "TIER", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
			{Name: "CPU", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "init", Resource: "requests.memory", Divisor: resource.MustParse("1Mi")}}},
		},
		Resources: v1.ResourceRequirements{
			Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("256Mi")},
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("128Mi")},
		},
		SecurityContext: &v1.SecurityContext{
			Privileged:               ptr.To(false),
			RunAsUser:                ptr.To[int64](1000),
			RunAsGroup:               ptr.To[int64](1000),
			RunAsNonRoot:             ptr.To(true),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &v1.Capabilities{Add: []v1.Capability{"NET_BIND_SERVICE"}, Drop: []v1.Capability{"ALL"}},
		},
		Stdin:                    true,
		StdinOnce:                true,
		TTY:                      true,
		TerminationMessagePath:   "/tmp/msg",
		TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError,
	}
	init := *c.DeepCopy()
	init.Name = "init"
	init.Ports = nil
	sidecar := *init.DeepCopy()
	sidecar.Name = "proxy"
	sidecar.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	sidecar.Ports = []v1.ContainerPort{{Name: "admin", ContainerPort: 9901, Protocol: v1.ProtocolTCP, HostPort: 9901}}
	sidecar.StartupProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("admin")}}}
	sidecar.Lifecycle = &v1.Lifecycle{
		PostStart: &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/started", Port: intstr.FromString("admin"), Scheme: v1.URISchemeHTTP}},
		PreStop:   &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"/drain"}}},
	}
	c.Lifecycle = &v1.Lifecycle{
		PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"/warm-up"}}},
		PreStop:   &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 3}},
	}
	return &v1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        "web",
			Namespace:   "kube-system",
			UID:         "ignored",
			Labels:      map[string]string{"tier": "front", "example.com/app": "web"},
			Annotations: map[string]string{"example.com/note": "anything goes here"},
		},
		Spec: v1.PodSpec{
			InitContainers:                []v1.Container{init, sidecar},
			Containers:                    []v1.Container{c},
			RestartPolicy:                 v1.RestartPolicyOnFailure,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			DNSPolicy:                     v1.DNSNone,
			DNSConfig:                     &v1.PodDNSConfig{Nameservers: []string{"10.0.0.10"}, Searches: []string{"example.com."}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}}},
			HostNetwork:                   true,
			HostIPC:                       true,
			ShareProcessNamespace:         ptr.To(true),
			Hostname:                      "web",
			Subdomain:                     "svc",
			NodeName:                      "node-1",
			NodeSelector:                  map[string]string{"kubernetes.io/os": "linux"},
			ServiceAccountName:            "web",
			DeprecatedServiceAccount:      "web",
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext: &v1.PodSecurityContext{
				RunAsUser:          ptr.To[int64](1000),
				RunAsGroup:         ptr.To[int64](1000),
				RunAsNonRoot:       ptr.To(true),
				SupplementalGroups: []int64{2000},
				Sysctls:            []v1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}, {Name: "kernel/shm_rmid_forced", Value: "1"}},
			},
			SchedulerName:      "my-scheduler",
			EnableServiceLinks: ptr.To(false),
			Priority:           ptr.To[int32](2000001000),
			PriorityClassName:  "system-node-critical",
			PreemptionPolicy:   ptr.To(v1.PreemptNever),
			Tolerations: []v1.Toleration{
				{Operator: v1.TolerationOpExists},
				{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "edge", Effect: v1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
			},
			Affinity: &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"a"}}}}},
			}}},
		},
	}
}

func TestFullPodIsSupportedAndValid(t *testing.T) {
	pod := fullPod()
	if errs := unsupportedFields(pod); len(errs) != 0 {
		t.Errorf("unsupportedFields before defaults: %v", errs)
	}
	defaultPod(pod)
	if errs := unsupportedFields(pod); len(errs) != 0 {
		t.Errorf("unsupportedFields after defaults (a default outside the allowlist?): %v", errs)
	}
	if errs := validatePod(pod); len(errs) != 0 {
		t.Errorf("validatePod: %v", errs)
	}
}

func TestValidatePod(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *v1.Pod)
		want   []string // each must appear in some error
	}{
		{"no name", func(p *v1.Pod) { p.Name = "" }, []string{"metadata.name: Required value"}},
		{"bad name", func(p *v1.Pod) { p.Name = "Bad_Name" }, []string{`metadata.name: Invalid value: "Bad_Name"`}},
		{"name too long", func(p *v1.Pod) { p.Name = strings.Repeat("a", 254) }, []string{"metadata.name: Invalid value", "no more than 253 characters"}},
		{"bad namespace", func(p *v1.Pod) { p.Namespace = "a.b" }, []string{`metadata.namespace: Invalid value: "a.b"`}},
		{"bad label", func(p *v1.Pod) { p.Labels = map[string]string{"a": "not valid!"} }, []string{"metadata.labels: Invalid value"}},
		{"bad label key", func(p *v1.Pod) { p.Labels = map[string]string{"-a": "b"} }, []string{"metadata.labels: Invalid value"}},
		{"bad annotation key", func(p *v1.Pod) { p.Annotations = map[string]string{"a b": "c"} }, []string{"metadata.annotations: Invalid value"}},
		{"no containers", func(p *v1.Pod) { p.Spec.Containers = nil }, []string{"spec.containers: Required value"}},
		{"no container name", func(p *v1.Pod) { p.Spec.Containers[0].Name = "" }, []string{"spec.containers[0].name: Required value"}},
		{"bad container name", func(p *v1.Pod) { p.Spec.Containers[0].Name = "App" }, []string{`spec.containers[0].name: Invalid value: "App"`}},
		{"duplicate across init and app", func(p *v1.Pod) { p.Spec.Containers[0].Name = "init" }, []string{`spec.containers[0].name: Duplicate value: "init"`}},
		{"duplicate app", func(p *v1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, []string{`spec.containers[1].name: Duplicate value: "app"`}},
		{"no image", func(p *v1.Pod) { p.Spec.InitContainers[0].Image = "" }, []string{"spec.initContainers[0].image: Required value"}},
		{"image whitespace", func(p *v1.Pod) { p.Spec.Containers[0].Image = " nginx" }, []string{"spec.containers[0].image: Invalid value", "leading or trailing whitespace"}},
		{"pull policy", func(p *v1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, []string{`spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes"`}},
		{"port zero", func(p *v1.Pod) { p.Spec.Containers[0].Ports[1].ContainerPort = 0 }, []string{"spec.containers[0].ports[1].containerPort: Required value"}},
		{"port too big", func(p *v1.Pod) { p.Spec.Containers[0].Ports[1].ContainerPort = 70000 }, []string{"spec.containers[0].ports[1].containerPort: Invalid value: 70000", "between 1 and 65535"}},
		{"host port too big", func(p *v1.Pod) { p.Spec.HostNetwork = false; p.Spec.Containers[0].Ports[1].HostPort = 70000 }, []string{"spec.containers[0].ports[1].hostPort: Invalid value: 70000"}},
		{"host port differs with hostNetwork", func(p *v1.Pod) { p.Spec.Containers[0].Ports[0].HostPort = 9090 }, []string{"spec.containers[0].ports[0].hostPort: Invalid value: 9090", "must match containerPort"}},
		{"duplicate host port", func(p *v1.Pod) {
			p.Spec.HostNetwork = false
			p.Spec.InitContainers[0].Ports = []v1.ContainerPort{{ContainerPort: 1, HostPort: 8080, Protocol: v1.ProtocolTCP}}
		}, []string{`spec.containers[0].ports[0].hostPort: Duplicate value: "TCP/8080": already used by spec.initContainers[0].ports[0]`}},
		{"port name", func(p *v1.Pod) { p.Spec.Containers[0].Ports[0].Name = "Not_IANA" }, []string{`spec.containers[0].ports[0].name: Invalid value: "Not_IANA"`}},
		{"duplicate port name", func(p *v1.Pod) { p.Spec.Containers[0].Ports[1].Name = "http" }, []string{`spec.containers[0].ports[1].name: Duplicate value: "http"`}},
		{"protocol", func(p *v1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "ICMP" }, []string{`spec.containers[0].ports[0].protocol: Unsupported value: "ICMP"`}},
		{"host ip", func(p *v1.Pod) { p.Spec.Containers[0].Ports[0].HostIP = "localhost" }, []string{`spec.containers[0].ports[0].hostIP: Invalid value: "localhost"`}},
		{"env name", func(p *v1.Pod) { p.Spec.Containers[0].Env[0].Name = "A=B" }, []string{`spec.containers[0].env[0].name: Invalid value: "A=B"`}},
		{"env no name", func(p *v1.Pod) { p.Spec.Containers[0].Env[0].Name = "" }, []string{"spec.containers[0].env[0].name: Required value"}},
		{"env value and valueFrom", func(p *v1.Pod) { p.Spec.Containers[0].Env[2].Value = "x" }, []string{"spec.containers[0].env[2].valueFrom: Invalid value", "may not be specified when `value` is not empty"}},
		{"env empty valueFrom", func(p *v1.Pod) { p.Spec.Containers[0].Env[2].ValueFrom = &v1.EnvVarSource{} }, []string{"spec.containers[0].env[2].valueFrom: Invalid value", "must specify one of"}},
		{"env two sources", func(p *v1.Pod) {
			p.Spec.Containers[0].Env[2].ValueFrom.ResourceFieldRef = &v1.ResourceFieldSelector{Resource: "limits.cpu"}
		}, []string{"spec.containers[0].env[2].valueFrom: Invalid value", "more than one field"}},
		{"env field path", func(p *v1.Pod) { p.Spec.Containers[0].Env[2].ValueFrom.FieldRef.FieldPath = "spec.containers" }, []string{`spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.containers"`}},
		{"env field api version", func(p *v1.Pod) { p.Spec.Containers[0].Env[2].ValueFrom.FieldRef.APIVersion = "v2" }, []string{`spec.containers[0].env[2].valueFrom.fieldRef.apiVersion: Unsupported value: "v2"`}},
		{"env label key", func(p *v1.Pod) { p.Spec.Containers[0].Env[3].ValueFrom.FieldRef.FieldPath = "metadata.labels['-x']" }, []string{"spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Invalid value", "invalid label key"}},
		{"env resource", func(p *v1.Pod) { p.Spec.Containers[0].Env[4].ValueFrom.ResourceFieldRef.Resource = "limits.gpu" }, []string{`spec.containers[0].env[4].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu"`}},
		{"env divisor", func(p *v1.Pod) {
			p.Spec.Containers[0].Env[4].ValueFrom.ResourceFieldRef.Divisor = resource.MustParse("1Mi")
		}, []string{`spec.containers[0].env[4].valueFrom.resourceFieldRef.divisor: Unsupported value: "1Mi"`}},
		{"env container", func(p *v1.Pod) { p.Spec.Containers[0].Env[5].ValueFrom.ResourceFieldRef.ContainerName = "nope" }, []string{`spec.containers[0].env[5].valueFrom.resourceFieldRef.containerName: Not found: "nope"`}},
		{"negative limit", func(p *v1.Pod) { p.Spec.Containers[0].Resources.Limits[v1.ResourceCPU] = resource.MustParse("-1") }, []string{`spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0`}},
		{"request above limit", func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Requests[v1.ResourceMemory] = resource.MustParse("1Gi")
		}, []string{`spec.containers[0].resources.requests[memory]: Invalid value: "1Gi": must be less than or equal to memory limit of 256Mi`}},
		{"restart policy", func(p *v1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []string{`spec.restartPolicy: Unsupported value: "Sometimes"`}},
		{"restart policy empty", func(p *v1.Pod) { p.Spec.RestartPolicy = "" }, []string{"spec.restartPolicy: Required value"}},
		{"grace period", func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) }, []string{"spec.terminationGracePeriodSeconds: Invalid value: -1", "greater than or equal to 0"}},
		{"dns policy", func(p *v1.Pod) { p.Spec.DNSPolicy = "Google" }, []string{`spec.dnsPolicy: Unsupported value: "Google"`}},
		{"dns none without config", func(p *v1.Pod) { p.Spec.DNSConfig = nil }, []string{"spec.dnsConfig: Required value"}},
		{"dns nameserver", func(p *v1.Pod) { p.Spec.DNSConfig.Nameservers = []string{"dns.example"} }, []string{`spec.dnsConfig.nameservers[0]: Invalid value: "dns.example"`}},
		{"dns too many nameservers", func(p *v1.Pod) { p.Spec.DNSConfig.Nameservers = []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"} }, []string{"spec.dnsConfig.nameservers: Too many: 4"}},
		{"dns search", func(p *v1.Pod) { p.Spec.DNSConfig.Searches = []string{"bad_domain"} }, []string{`spec.dnsConfig.searches[0]: Invalid value: "bad_domain"`}},
		{"hostname", func(p *v1.Pod) { p.Spec.Hostname = "web.example" }, []string{`spec.hostname: Invalid value: "web.example"`}},
		{"node selector", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"a": "b c"} }, []string{"spec.nodeSelector: Invalid value"}},
		{"service account", func(p *v1.Pod) { p.Spec.ServiceAccountName = "Web" }, []string{`spec.serviceAccountName: Invalid value: "Web"`}},
		{"preemption", func(p *v1.Pod) { p.Spec.PreemptionPolicy = ptr.To(v1.PreemptionPolicy("Always")) }, []string{`spec.preemptionPolicy: Unsupported value: "Always"`}},
		{"hostPID and shared pid namespace", func(p *v1.Pod) { p.Spec.HostPID = true }, []string{"spec.shareProcessNamespace: Invalid value: true"}},
		{"run as user", func(p *v1.Pod) { p.Spec.SecurityContext.RunAsUser = ptr.To[int64](-1) }, []string{"spec.securityContext.runAsUser: Invalid value: -1"}},
		{"supplemental group", func(p *v1.Pod) { p.Spec.SecurityContext.SupplementalGroups = []int64{-5} }, []string{"spec.securityContext.supplementalGroups[0]: Invalid value: -5"}},
		{"sysctl name", func(p *v1.Pod) { p.Spec.SecurityContext.Sysctls[0].Name = "Net.IPv4" }, []string{`spec.securityContext.sysctls[0].name: Invalid value: "Net.IPv4"`}},
		{"duplicate sysctl", func(p *v1.Pod) { p.Spec.SecurityContext.Sysctls[1].Name = p.Spec.SecurityContext.Sysctls[0].Name }, []string{"spec.securityContext.sysctls[1].name: Duplicate value"}},
		{"container run as group", func(p *v1.Pod) { p.Spec.Containers[0].SecurityContext.RunAsGroup = ptr.To[int64](-2) }, []string{"spec.containers[0].securityContext.runAsGroup: Invalid value: -2"}},
		{"privileged without escalation", func(p *v1.Pod) { p.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true) }, []string{"spec.containers[0].securityContext: Invalid value", "`privileged` to true"}},
		{"sys admin without escalation", func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext.Capabilities.Add = []v1.Capability{"SYS_ADMIN"}
		}, []string{"spec.containers[0].securityContext: Invalid value", "CAP_SYS_ADMIN"}},
		{"init restart policy", func(p *v1.Pod) {
			p.Spec.InitContainers[1].RestartPolicy = ptr.To(v1.ContainerRestartPolicy("OnFailure"))
		}, []string{`spec.initContainers[1].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"`}},
		{"lifecycle on a plain init container", func(p *v1.Pod) { p.Spec.InitContainers[0].Lifecycle = p.Spec.Containers[0].Lifecycle }, []string{"spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always"}},
		{"hook without handler", func(p *v1.Pod) { p.Spec.Containers[0].Lifecycle.PostStart = &v1.LifecycleHandler{} }, []string{"spec.containers[0].lifecycle.postStart: Required value: must specify a handler type"}},
		{"hook with two handlers", func(p *v1.Pod) { p.Spec.Containers[0].Lifecycle.PreStop.Exec = &v1.ExecAction{Command: []string{"x"}} }, []string{"spec.containers[0].lifecycle.preStop: Forbidden: may not specify more than 1 handler type"}},
		{"exec hook without command", func(p *v1.Pod) { p.Spec.Containers[0].Lifecycle.PostStart.Exec.Command = nil }, []string{"spec.containers[0].lifecycle.postStart.exec.command: Required value"}},
		{"sleep longer than the grace period", func(p *v1.Pod) { p.Spec.Containers[0].Lifecycle.PreStop.Sleep.Seconds = 6 }, []string{"spec.containers[0].lifecycle.preStop.sleep.seconds: Invalid value: 6: must be non-negative and less than terminationGracePeriodSeconds (5)"}},
		{"negative sleep", func(p *v1.Pod) { p.Spec.Containers[0].Lifecycle.PreStop.Sleep.Seconds = -1 }, []string{"spec.containers[0].lifecycle.preStop.sleep.seconds: Invalid value: -1"}},
		{"httpGet hook port", func(p *v1.Pod) { p.Spec.InitContainers[1].Lifecycle.PostStart.HTTPGet.Port = intstr.FromInt32(0) }, []string{"spec.initContainers[1].lifecycle.postStart.httpGet.port: Invalid value: 0"}},
		{"httpGet hook scheme", func(p *v1.Pod) { p.Spec.InitContainers[1].Lifecycle.PostStart.HTTPGet.Scheme = "FTP" }, []string{`spec.initContainers[1].lifecycle.postStart.httpGet.scheme: Unsupported value: "FTP"`}},
		{"termination message policy", func(p *v1.Pod) { p.Spec.Containers[0].TerminationMessagePolicy = "Logs" }, []string{`spec.containers[0].terminationMessagePolicy: Unsupported value: "Logs"`}},
		{"toleration value with exists", func(p *v1.Pod) { p.Spec.Tolerations[0].Value = "x" }, []string{`spec.tolerations[0].value: Invalid value: "x"`}},
		{"toleration equal without key", func(p *v1.Pod) { p.Spec.Tolerations[0].Operator = v1.TolerationOpEqual }, []string{"spec.tolerations[0].operator: Invalid value"}},
		{"toleration seconds", func(p *v1.Pod) { p.Spec.Tolerations[1].Effect = v1.TaintEffectNoSchedule }, []string{"spec.tolerations[1].effect: Invalid value", "NoExecute"}},
		{"toleration effect", func(p *v1.Pod) { p.Spec.Tolerations[0].Effect = "Evict" }, []string{`spec.tolerations[0].effect: Unsupported value: "Evict"`}},
		{"every problem is reported", func(p *v1.Pod) {
			p.Name = ""
			p.Spec.Containers[0].Image = ""
			p.Spec.RestartPolicy = "x"
		}, []string{"metadata.name: Required value", "spec.containers[0].image: Required value", `spec.restartPolicy: Unsupported value: "x"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := fullPod()
			defaultPod(pod)
			tc.mutate(pod)
			errs := validatePod(pod)
			if len(errs) == 0 {
				t.Fatalf("no error, want %q", tc.want)
			}
			got := errorListError(errs).Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("errors %q do not contain %q", got, w)
				}
			}
		})
	}
}

func TestUnsupportedFields(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *v1.Pod)
		want   string
	}{
		{"persistent volume claim", func(p *v1.Pod) {
			p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}
		}, "spec.volumes[0].persistentVolumeClaim: Unsupported value: Berth does not support persistentVolumeClaim volumes (persistent volumes) yet"},
		{"csi", func(p *v1.Pod) {
			p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "d"}}}}
		}, "spec.volumes[0].csi: Unsupported value: Berth does not support csi volumes yet (CSI may come later: see docs/volumes.md)"},
		{"configMap volume in a static pod", func(p *v1.Pod) {
			p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "c"}}}}}
		}, "spec.volumes[0].configMap: Unsupported value: a static pod cannot refer to ConfigMaps"},
		{"service account token in a static pod", func(p *v1.Pod) {
			p.Spec.Volumes = []v1.Volume{{Name: "t", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token"}}}}}}}
		}, "spec.volumes[0].projected.sources[0].serviceAccountToken: Unsupported value: a static pod cannot have service account tokens"},
		{"recursive read-only mount", func(p *v1.Pod) {
			rro := v1.RecursiveReadOnlyEnabled
			p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "d", MountPath: "/d", RecursiveReadOnly: &rro}}
		}, "spec.containers[0].volumeMounts[0].recursiveReadOnly: Unsupported value"},
		{"volume devices", func(p *v1.Pod) { p.Spec.Containers[0].VolumeDevices = []v1.VolumeDevice{{Name: "d", DevicePath: "/d"}} }, "spec.containers[0].volumeDevices: Unsupported value"},
		{"tcpSocket hook", func(p *v1.Pod) {
			p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
		}, "spec.containers[0].lifecycle.preStop.tcpSocket: Unsupported value: tcpSocket is deprecated and not supported as a lifecycle handler: use exec, httpGet or sleep"},
		{"tcpSocket hook on a sidecar", func(p *v1.Pod) {
			p.Spec.InitContainers[1].Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
		}, "spec.initContainers[1].lifecycle.postStart.tcpSocket: Unsupported value"},
		{"stop signal", func(p *v1.Pod) {
			p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{StopSignal: ptr.To(v1.SIGUSR1)}
		}, "spec.containers[0].lifecycle.stopSignal: Unsupported value"},
		{"restart policy of an app container", func(p *v1.Pod) { p.Spec.Containers[0].RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways) }, "spec.containers[0].restartPolicy: Unsupported value"},
		{"env from", func(p *v1.Pod) { p.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{Prefix: "X"}} }, "spec.containers[0].envFrom: Unsupported value: Berth does not support envFrom: a static pod cannot refer to ConfigMaps or Secrets"},
		{"config map key ref", func(p *v1.Pod) {
			p.Spec.Containers[0].Env[0] = v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{Key: "k"}}}
		}, "spec.containers[0].env[0].valueFrom.configMapKeyRef: Unsupported value: Berth does not support configMapKeyRef"},
		{"secret key ref", func(p *v1.Pod) {
			p.Spec.Containers[0].Env[0] = v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "k"}}}
		}, "spec.containers[0].env[0].valueFrom.secretKeyRef: Unsupported value"},
		{"hugepages", func(p *v1.Pod) { p.Spec.Containers[0].Resources.Limits["hugepages-2Mi"] = resource.MustParse("2Mi") }, `spec.containers[0].resources.limits[hugepages-2Mi]: Unsupported value: Berth does not support "hugepages-2Mi" here yet (supported: cpu, memory)`},
		{"ephemeral storage", func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Requests["ephemeral-storage"] = resource.MustParse("1Gi")
		}, "spec.containers[0].resources.requests[ephemeral-storage]: Unsupported value"},
		{"resource claims", func(p *v1.Pod) { p.Spec.Containers[0].Resources.Claims = []v1.ResourceClaim{{Name: "gpu"}} }, "spec.containers[0].resources.claims: Unsupported value"},
		{"resize policy", func(p *v1.Pod) { p.Spec.Containers[0].ResizePolicy = []v1.ContainerResizePolicy{{ResourceName: "cpu"}} }, "spec.containers[0].resizePolicy: Unsupported value"},
		{"seccomp", func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext.SeccompProfile = &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
		}, "spec.containers[0].securityContext.seccompProfile: Unsupported value"},
		{"fs group", func(p *v1.Pod) { p.Spec.SecurityContext.FSGroup = ptr.To[int64](0) }, "spec.securityContext.fsGroup: Unsupported value"},
		{"generate name", func(p *v1.Pod) { p.GenerateName = "web-" }, "metadata.generateName: Unsupported value: a static pod needs a fixed metadata.name"},
		{"owner references", func(p *v1.Pod) { p.OwnerReferences = []metav1.OwnerReference{{Name: "x"}} }, "metadata.ownerReferences: Unsupported value"},
		{"active deadline", func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](10) }, "spec.activeDeadlineSeconds: Unsupported value"},
		{"ephemeral containers", func(p *v1.Pod) {
			p.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug"}}}
		}, "spec.ephemeralContainers: Unsupported value: static pods do not support ephemeral containers"},
		{"image pull secrets", func(p *v1.Pod) { p.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: "reg"}} }, "spec.imagePullSecrets: Unsupported value"},
		{"runtime class", func(p *v1.Pod) { p.Spec.RuntimeClassName = ptr.To("gvisor") }, "spec.runtimeClassName: Unsupported value"},
		{"overhead", func(p *v1.Pod) { p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")} }, "spec.overhead: Unsupported value"},
		{"topology spread", func(p *v1.Pod) { p.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{MaxSkew: 1}} }, "spec.topologySpreadConstraints: Unsupported value"},
		{"readiness gates", func(p *v1.Pod) { p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "x"}} }, "spec.readinessGates: Unsupported value"},
		{"host aliases", func(p *v1.Pod) { p.Spec.HostAliases = []v1.HostAlias{{IP: "1.2.3.4"}} }, "spec.hostAliases: Unsupported value"},
		{"os", func(p *v1.Pod) { p.Spec.OS = &v1.PodOS{Name: v1.Linux} }, "spec.os: Unsupported value"},
		{"scheduling gates", func(p *v1.Pod) { p.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "x"}} }, "spec.schedulingGates: Unsupported value"},
		{"fqdn hostname", func(p *v1.Pod) { p.Spec.SetHostnameAsFQDN = ptr.To(true) }, "spec.setHostnameAsFQDN: Unsupported value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := fullPod()
			tc.mutate(pod)
			errs := unsupportedFields(pod)
			if len(errs) != 1 {
				t.Fatalf("got %d errors (%v), want one containing %q", len(errs), errs, tc.want)
			}
			if got := errs[0].Error(); !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestUnsupportedFieldsIgnoresUnsetValues(t *testing.T) {
	pod := fullPod()
	pod.Spec.Volumes = []v1.Volume{}
	pod.Spec.SetHostnameAsFQDN = ptr.To(false)
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{}
	pod.Spec.Containers[0].SecurityContext.SeccompProfile = &v1.SeccompProfile{}
	pod.Status.Phase = v1.PodRunning
	if errs := unsupportedFields(pod); len(errs) != 0 {
		t.Errorf("unsupportedFields: %v", errs)
	}
}

// TestAPIPodFields: API pods may refer to ConfigMaps and Secrets in their environment, static pods
// may not; everything else is the same allowlist.
func TestAPIPodFields(t *testing.T) {
	pod := fullPod()
	c := &pod.Spec.Containers[0]
	c.EnvFrom = []v1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true)}}, {SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "s"}}}}
	c.Env = append(c.Env,
		v1.EnvVar{Name: "A", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "a"}}},
		v1.EnvVar{Name: "B", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "b", Optional: ptr.To(false)}}})
	pod.Spec.InitContainers[1].EnvFrom = c.EnvFrom
	if errs := unsupportedAPIPodFields(pod); len(errs) != 0 {
		t.Errorf("API pod: %v", errs)
	}
	errs := unsupportedFields(pod)
	got := errorListError(errs).Error()
	for _, want := range []string{
		"spec.containers[0].envFrom: Unsupported value",
		"spec.containers[0].env[6].valueFrom.configMapKeyRef: Unsupported value: Berth does not support configMapKeyRef: a static pod cannot refer to ConfigMaps",
		"spec.containers[0].env[7].valueFrom.secretKeyRef: Unsupported value: Berth does not support secretKeyRef: a static pod cannot refer to Secrets",
		"spec.initContainers[1].envFrom: Unsupported value",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("static pod errors %q do not contain %q", got, want)
		}
	}
	pod.Spec.Volumes = []v1.Volume{
		{Name: "c", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "c"}}}},
		{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "t", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token"}},
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
	}
	if errs := unsupportedAPIPodFields(pod); len(errs) != 0 {
		t.Errorf("API pod with configMap, secret and projected volumes: %v", errs)
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, v1.Volume{Name: "v", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "x"}}})
	if errs := unsupportedAPIPodFields(pod); len(errs) != 1 || !strings.Contains(errs[0].Error(), "spec.volumes[3].persistentVolumeClaim: Unsupported value: Berth does not support persistentVolumeClaim") {
		t.Errorf("API pod with a persistentVolumeClaim: %v", errs)
	}
}

func TestTokenizeFieldPath(t *testing.T) {
	got := fmt.Sprint(tokenizeFieldPath("spec.containers[].resources.limits[example.com/gpu].x"))
	if want := "[spec containers [] resources limits [example.com/gpu] x]"; got != want {
		t.Errorf("tokenizeFieldPath = %s, want %s", got, want)
	}
}

// TestStaticPodVolumes: the volume kinds static pods may use pass; the rules the API server applies
// to them hold.
func TestStaticPodVolumes(t *testing.T) {
	good := goodManifest + `    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: cache, mountPath: /sub, subPath: a/b, readOnly: true}
    - {name: host, mountPath: /host, mountPropagation: HostToContainer}
    - {name: info, mountPath: /info}
    - {name: proj, mountPath: /proj, subPathExpr: "$(POD)"}
  volumes:
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 10Mi}}
  - {name: host, hostPath: {path: /srv, type: DirectoryOrCreate}}
  - name: info
    downwardAPI:
      defaultMode: 0400
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu}}
  - name: proj
    projected:
      sources:
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
`
	if _, err := parseManifest([]byte(good)); err != nil {
		t.Fatalf("good volumes refused: %v", err)
	}
	bad := []struct{ name, manifest, want string }{
		{"duplicate volume", goodManifest + "  volumes:\n  - {name: a, emptyDir: {}}\n  - {name: a, emptyDir: {}}\n", `spec.volumes[1].name: Duplicate value: "a"`},
		{"two kinds", goodManifest + "  volumes:\n  - {name: a, emptyDir: {}, hostPath: {path: /x}}\n", "spec.volumes[0]: Forbidden: may not specify more than 1 volume type"},
		{"hostPath without path", goodManifest + "  volumes:\n  - {name: a, hostPath: {path: \"\"}}\n", "spec.volumes[0].hostPath.path: Required value"},
		{"bad medium", goodManifest + "  volumes:\n  - {name: a, emptyDir: {medium: Disk}}\n", `spec.volumes[0].emptyDir.medium: Unsupported value: "Disk"`},
		{"downward status field", goodManifest + "  volumes:\n  - {name: a, downwardAPI: {items: [{path: ip, fieldRef: {fieldPath: status.podIP}}]}}\n", `spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: "status.podIP"`},
		{"downward mode", goodManifest + "  volumes:\n  - {name: a, downwardAPI: {items: [{path: nm, mode: 01000, fieldRef: {fieldPath: metadata.name}}]}}\n", "spec.volumes[0].downwardAPI.items[0].mode: Invalid value: 512"},
		{"downward absolute path", goodManifest + "  volumes:\n  - {name: a, downwardAPI: {items: [{path: /n, fieldRef: {fieldPath: metadata.name}}]}}\n", `spec.volumes[0].downwardAPI.items[0].path: Invalid value: "/n": must be a relative path`},
		{"resource of an unknown container", goodManifest + "  volumes:\n  - {name: a, downwardAPI: {items: [{path: c, resourceFieldRef: {containerName: nope, resource: limits.cpu}}]}}\n", `containerName: Not found: "nope"`},
		{"bidirectional unprivileged", strings.Replace(goodManifest, "    image: nginx:1.27\n", "    image: nginx:1.27\n    volumeMounts: [{name: a, mountPath: /a, mountPropagation: Bidirectional}]\n", 1) + "  volumes:\n  - {name: a, emptyDir: {}}\n", "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"},
		{"inline struct in a type error", goodManifest + "  volumes:\n  - {name: a, downwardAPI: {items: [{path: true}]}}\n", "spec.volumes.downwardAPI.items.path: must be a string, not true or false"},
		{"subPath and subPathExpr", strings.Replace(goodManifest, "    image: nginx:1.27\n", "    image: nginx:1.27\n    volumeMounts: [{name: a, mountPath: /a, subPath: xx, subPathExpr: yy}]\n", 1) + "  volumes:\n  - {name: a, emptyDir: {}}\n", "subPathExpr and subPath are mutually exclusive"},
		{"duplicate mountPath", strings.Replace(goodManifest, "    image: nginx:1.27\n", "    image: nginx:1.27\n    volumeMounts: [{name: a, mountPath: /a}, {name: a, mountPath: /a}]\n", 1) + "  volumes:\n  - {name: a, emptyDir: {}}\n", `spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/a": must be unique`},
		{"secret in a static pod", goodManifest + "  volumes:\n  - {name: a, secret: {secretName: s}}\n", "spec.volumes[0].secret: Unsupported value: a static pod cannot refer to Secrets"},
		{"empty projection", goodManifest + "  volumes:\n  - {name: a, projected: {sources: [{}]}}\n", "spec.volumes[0].projected.sources[0]: Required value: must specify exactly one projection source"},
	}
	for _, tc := range bad {
		_, err := parseManifest([]byte(tc.manifest))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
