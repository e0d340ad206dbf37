package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/probes"
	"io"
	"maps"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// This file turns the bytes of a static pod manifest into a defaulted, validated Pod:
//
//	decodeManifest → defaultPod → validatePod + unsupportedFields
//
// Validation follows the rules the API server applies to the fields Berth supports, and
// unsupportedFields rejects every field Berth does not implement yet, so a manifest is never
// half-applied silently.

// maxManifestBytes is the largest manifest file Berth reads (1 MiB, well above any real pod).
const maxManifestBytes = 1 << 20

// errEmptyManifest is returned for a file with no document in it.
var errEmptyManifest = errors.New("empty manifest")

// manifestTooLarge is the error for a manifest over maxManifestBytes.
func manifestTooLarge(size int64) error {
	return fmt.Errorf("manifest is %d bytes, larger than the limit of %d bytes (1 MiB)", size, maxManifestBytes)
}

// decodeManifest turns one file's bytes into a Pod: YAML or JSON, exactly one document, kind Pod
// and apiVersion v1, decoded strictly (an unknown or duplicated field is an error that names it).
func decodeManifest(data []byte) (*v1.Pod, error) {
	if len(data) > maxManifestBytes {
		return nil, manifestTooLarge(int64(len(data)))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errEmptyManifest
	}
	doc, err := manifestToJSON(data)
	if err != nil {
		return nil, err
	}
	if doc[0] != '{' {
		return nil, fmt.Errorf("manifest is not an object (a %s): it must be a Pod with kind: Pod and apiVersion: v1", jsonKind(doc))
	}

	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(doc, &meta); err != nil {
		return nil, fmt.Errorf("invalid kind or apiVersion: %v", err)
	}
	switch {
	case meta.Kind == "":
		return nil, errors.New(`missing kind: a static pod manifest must have kind: Pod and apiVersion: v1`)
	case meta.Kind != "Pod":
		return nil, fmt.Errorf("kind is %q, not Pod: only Pods can be static pods", meta.Kind)
	case meta.APIVersion == "":
		return nil, errors.New(`missing apiVersion: a Pod must have apiVersion: v1`)
	case meta.APIVersion != "v1":
		return nil, fmt.Errorf("apiVersion is %q, not v1: Pods are in apiVersion v1", meta.APIVersion)
	}

	pod := &v1.Pod{}
	strictErrs, err := sigsjson.UnmarshalStrict(doc, pod)
	if err != nil {
		return nil, typeError(doc, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, 0, len(strictErrs))
		for _, e := range strictErrs {
			msgs = append(msgs, strictErrorMessage(e))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return pod, nil
}

// parseManifest runs the whole pipeline on one manifest: decode, default, then validate and
// reject unsupported fields. The error lists every problem found, separated by "; ".
func parseManifest(data []byte) (*v1.Pod, error) {
	pod, err := decodeManifest(data)
	if err != nil {
		return nil, err
	}
	// Look for unsupported fields in the manifest as written, before defaults fill anything in.
	errs := unsupportedFields(pod)
	defaultPod(pod)
	errs = append(validatePod(pod), errs...)
	if len(errs) > 0 {
		return nil, errorListError(errs)
	}
	return pod, nil
}

// errorListError joins field errors into one error: `spec.containers[0].image: Required value; ...`.
func errorListError(errs field.ErrorList) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// goTypeError matches the decoder's message for a value of the wrong JSON type, e.g.
// "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container".
var goTypeError = regexp.MustCompile(`cannot unmarshal ([a-z]+) ?(\S*) into Go struct field \w+\.(\S+) of type (\S+)`)

// typeError rewrites a typed-decoding error so that it names the field and the JSON types
// rather than Go types: `spec.containers: must be a list, not a string`.
func typeError(doc []byte, err error) error {
	if errors.Is(err, resource.ErrFormatWrong) || errors.Is(err, resource.ErrNumeric) || errors.Is(err, resource.ErrSuffix) {
		// The quantity decoder does not know where it is: find the bad quantities.
		var obj any
		if json.Unmarshal(doc, &obj) == nil {
			var errs field.ErrorList
			findBadQuantities(obj, nil, false, &errs)
			if len(errs) > 0 {
				return errorListError(errs)
			}
		}
		return fmt.Errorf("invalid quantity: %v", err)
	}
	m := goTypeError.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("invalid Pod: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	got := map[string]string{"array": "a list", "object": "an object", "bool": "true or false", "string": "a string"}[m[1]]
	if got == "" {
		got = "a number"
		if m[2] != "" {
			got = m[2] // the number itself, e.g. 1.5 for an integer field
		}
	}
	// Embedded structs (VolumeSource, ProbeHandler, ...) appear by their Go type name in the
	// decoder's path; their fields are the parent's in JSON.
	var parts []string
	for _, p := range strings.Split(m[3], ".") {
		if p != "" && (p[0] < 'A' || p[0] > 'Z') {
			parts = append(parts, p)
		}
	}
	path := strings.Join(parts, ".")
	return fmt.Errorf("%s: must be %s, not %s", path, jsonTypeOfField(path), got)
}

// jsonTypeOfField describes the JSON type expected at a Pod field path such as
// "spec.containers.ports.containerPort" (list items are implicit), found by reflection.
func jsonTypeOfField(path string) string {
	t := reflect.TypeOf(v1.Pod{})
	for _, name := range strings.Split(path, ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return "a valid value"
		}
		f, ok := structFieldByJSONName(t, name)
		if !ok {
			return "a valid value"
		}
		t = f.Type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		return "a list"
	case reflect.Map:
		return "an object (a map)"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("a whole number (%d-bit)", t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a non-negative whole number (%d-bit)", t.Bits())
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an object"
}

func structFieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" {
			if sf, ok := structFieldByJSONName(f.Type, name); ok {
				return sf, true
			}
			continue
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// findBadQuantities reports every resource quantity in a decoded manifest that does not parse:
// the values of "limits", "requests" and "overhead" maps and "divisor" fields.
func findBadQuantities(v any, path *field.Path, quantities bool, errs *field.ErrorList) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			var p *field.Path
			switch {
			case quantities:
				p = path.Key(k)
			case path == nil:
				p = field.NewPath(k)
			default:
				p = path.Child(k)
			}
			switch {
			case quantities || k == "divisor":
				checkQuantity(v[k], p, errs)
			default:
				findBadQuantities(v[k], p, k == "limits" || k == "requests" || k == "overhead", errs)
			}
		}
	case []any:
		for i, item := range v {
			findBadQuantities(item, path.Index(i), false, errs)
		}
	}
}

func checkQuantity(v any, path *field.Path, errs *field.ErrorList) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case float64:
		return // a JSON number is a valid quantity
	case nil:
		return
	default:
		*errs = append(*errs, field.Invalid(path, v, "must be a quantity such as 500m, 2 or 1.5Gi"))
		return
	}
	if _, err := resource.ParseQuantity(strings.TrimSpace(s)); err != nil {
		*errs = append(*errs, field.Invalid(path, s, "must be a quantity such as 500m, 2 or 1.5Gi"))
	}
}

// strictErrorMessage formats an unknown or duplicated field as `spec.containers[0].imagee: unknown field`.
func strictErrorMessage(err error) string {
	var fe sigsjson.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	kind := "invalid field"
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "unknown field"):
		kind = "unknown field"
	case strings.HasPrefix(msg, "duplicate field"):
		kind = "duplicate field"
	}
	return fe.FieldPath() + ": " + kind
}

// jsonKind names the type of a JSON value for error messages.
func jsonKind(doc []byte) string {
	switch doc[0] {
	case '[':
		return "list"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// manifestToJSON returns the single document in data as JSON. JSON input is recognised by its
// leading '{'; anything else (and JSON-looking input that turns out to be a YAML flow mapping)
// is read as YAML. More than one non-empty document is an error.
func manifestToJSON(data []byte) ([]byte, error) {
	if bytes.TrimSpace(data)[0] == '{' {
		doc, firstValid, err := singleJSONDocument(data)
		if err == nil {
			return doc, nil
		}
		if !firstValid {
			// Not JSON from the start: maybe a YAML flow mapping such as {kind: Pod, ...}.
			if doc, yerr := singleYAMLDocument(data); yerr == nil {
				return doc, nil
			}
		}
		return nil, jsonError(data, err)
	}
	return singleYAMLDocument(data)
}

// singleJSONDocument reads one JSON value from data and checks nothing else follows. firstValid
// tells whether the first value was valid JSON.
func singleJSONDocument(data []byte) (doc []byte, firstValid bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var first json.RawMessage
	if err := dec.Decode(&first); err != nil {
		return nil, false, err
	}
	var second json.RawMessage
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
		return first, true, nil
	case err != nil:
		return nil, true, err
	default:
		line, _ := lineAndColumn(data, dec.InputOffset()-int64(len(second)))
		return nil, true, fmt.Errorf("more than one document (a second JSON value starts at line %d): put each pod in its own file", line)
	}
}

// jsonError rewrites a JSON syntax error with its line and column.
func jsonError(data []byte, err error) error {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		line, col := lineAndColumn(data, syntaxErr.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of file")
	}
	return err
}

// lineAndColumn converts a byte offset into 1-based line and column numbers.
func lineAndColumn(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// singleYAMLDocument converts the only non-empty YAML document in data to JSON. The YAML library
// reads just the first document of a stream and silently drops the rest, so documents are split
// here, at "---" (and "...") marker lines, and each is converted on its own. A document with an
// error is converted again, padded with the newlines that precede it, so that the error's line
// number is the file's.
func singleYAMLDocument(data []byte) ([]byte, error) {
	var found []byte
	foundLine := 0
	for _, d := range splitYAMLDocuments(string(data)) {
		if strings.TrimSpace(d.text) == "" {
			continue
		}
		doc, err := yaml.YAMLToJSONStrict([]byte(d.text))
		if err != nil {
			if _, perr := yaml.YAMLToJSONStrict([]byte(strings.Repeat("\n", d.line-1) + d.text)); perr != nil {
				err = perr
			}
			return nil, yamlError(err)
		}
		if string(doc) == "null" { // only comments, whitespace or markers
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("more than one document (a second document starts at line %d, after the one at line %d): put each pod in its own file", d.line, foundLine)
		}
		found, foundLine = doc, d.line
	}
	if found == nil {
		return nil, errEmptyManifest
	}
	return found, nil
}

type yamlDocument struct {
	line int // 1-based line of the document's first line in the file
	text string
}

// splitYAMLDocuments splits a YAML stream at document markers: a line that is "---" or "..."
// alone or followed by whitespace. Text after "---" on the marker line belongs to the next
// document (e.g. "--- # comment").
func splitYAMLDocuments(s string) []yamlDocument {
	lines := strings.Split(s, "\n")
	var docs []yamlDocument
	cur := yamlDocument{line: 1}
	var b strings.Builder
	flush := func(nextLine int) {
		cur.text = b.String()
		docs = append(docs, cur)
		b.Reset()
		cur = yamlDocument{line: nextLine}
	}
	for i, l := range lines {
		trimmed := strings.TrimRight(l, "\r")
		if marker, rest, ok := yamlMarker(trimmed); ok {
			flush(i + 1)
			if marker == "---" && strings.TrimSpace(rest) != "" {
				b.WriteString(strings.Repeat(" ", 3) + rest + "\n")
			} else {
				b.WriteString("\n")
			}
			continue
		}
		b.WriteString(l)
		b.WriteString("\n")
	}
	flush(len(lines) + 1)
	return docs
}

func yamlMarker(line string) (marker, rest string, ok bool) {
	for _, m := range []string{"---", "..."} {
		if line == m {
			return m, "", true
		}
		if strings.HasPrefix(line, m) && (line[3] == ' ' || line[3] == '\t') {
			return m, line[3:], true
		}
	}
	return "", "", false
}

// yamlError makes a YAML parser error readable on one line: `invalid YAML: line 3: ...`.
func yamlError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.Join(strings.Fields(msg), " ")
	return errors.New("invalid YAML: " + msg)
}

// Defaults the API server applies, for the fields Berth supports.
const (
	defaultNamespace              = "default"
	defaultTerminationGracePeriod = int64(30)
	defaultSchedulerName          = "default-scheduler"
	defaultTerminationMessagePath = "/dev/termination-log"
	defaultFieldRefAPIVersion     = "v1"
)

// defaultPod applies the API server's defaults for the fields Berth supports, in place.
func defaultPod(pod *v1.Pod) {
	if pod.Namespace == "" {
		pod.Namespace = defaultNamespace
	}
	spec := &pod.Spec
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = v1.RestartPolicyAlways
	}
	if spec.TerminationGracePeriodSeconds == nil {
		grace := defaultTerminationGracePeriod
		spec.TerminationGracePeriodSeconds = &grace
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = v1.DNSClusterFirst
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = defaultSchedulerName
	}
	if spec.EnableServiceLinks == nil {
		enable := v1.DefaultEnableServiceLinks
		spec.EnableServiceLinks = &enable
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &v1.PodSecurityContext{}
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i], spec.HostNetwork)
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i], spec.HostNetwork)
	}
}

func defaultContainer(c *v1.Container, hostNetwork bool) {
	probes.DefaultContainer(c)
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultImagePullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = defaultTerminationMessagePath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = v1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		p := &c.Ports[i]
		if p.Protocol == "" {
			p.Protocol = v1.ProtocolTCP
		}
		if hostNetwork && p.HostPort == 0 {
			p.HostPort = p.ContainerPort
		}
	}
	for i := range c.Env {
		if ref := c.Env[i].ValueFrom; ref != nil && ref.FieldRef != nil && ref.FieldRef.APIVersion == "" {
			ref.FieldRef.APIVersion = defaultFieldRefAPIVersion
		}
	}
	// A resource with a limit and no request is requested at its limit.
	for name, limit := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[name]; ok {
			continue
		}
		if c.Resources.Requests == nil {
			c.Resources.Requests = v1.ResourceList{}
		}
		c.Resources.Requests[name] = limit.DeepCopy()
	}
}

// defaultImagePullPolicy is Always for an image with the tag "latest" or with neither a tag nor a
// digest, and IfNotPresent otherwise.
func defaultImagePullPolicy(image string) v1.PullPolicy {
	if strings.Contains(image, "@") {
		return v1.PullIfNotPresent // pinned by digest
	}
	last := image[strings.LastIndex(image, "/")+1:] // a registry's ":port" is before the last '/'
	i := strings.LastIndex(last, ":")
	if i < 0 || last[i+1:] == "latest" {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}

// Valid values of the enumerated fields Berth supports.
var (
	validRestartPolicies  = []v1.RestartPolicy{v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever}
	validDNSPolicies      = []v1.DNSPolicy{v1.DNSClusterFirstWithHostNet, v1.DNSClusterFirst, v1.DNSDefault, v1.DNSNone}
	validPullPolicies     = []v1.PullPolicy{v1.PullAlways, v1.PullIfNotPresent, v1.PullNever}
	validProtocols        = []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP}
	validTerminationMsgs  = []v1.TerminationMessagePolicy{v1.TerminationMessageReadFile, v1.TerminationMessageFallbackToLogsOnError}
	validPreemption       = []v1.PreemptionPolicy{v1.PreemptLowerPriority, v1.PreemptNever}
	validTolerationOps    = []v1.TolerationOperator{v1.TolerationOpEqual, v1.TolerationOpExists}
	validTaintEffects     = []v1.TaintEffect{v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute}
	validEnvResourceRefs  = []string{"limits.cpu", "limits.memory", "requests.cpu", "requests.memory"}
	validEnvFieldPaths    = []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}
	validCPUDivisors      = []string{"1m", "1"}
	validMemoryDivisors   = []string{"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"}
	sysctlSegment         = `[a-z0-9]([-_a-z0-9]*[a-z0-9])?`
	sysctlNameRegexp      = regexp.MustCompile(`^` + sysctlSegment + `([./]` + sysctlSegment + `)*$`)
	envFieldPathSubscript = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.*)'\]$`)
)

const (
	maxDNSNameservers   = 3
	maxDNSSearchDomains = 32
	maxDNSSearchLength  = 2048
	maxSysctlNameLength = 253
)

// validatePod returns every problem with a defaulted pod (call defaultPod first: fields that have
// defaults are required here), with the API server's rules for the fields Berth supports.
// Fields Berth does not support are unsupportedFields' business, not validated here.
func validatePod(pod *v1.Pod) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validatePodMeta(pod, field.NewPath("metadata"))...)
	errs = append(errs, validatePodSpec(&pod.Spec, field.NewPath("spec"))...)
	return errs
}

func validatePodMeta(pod *v1.Pod, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if pod.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	} else {
		for _, msg := range apivalidation.NameIsDNSSubdomain(pod.Name, false) {
			errs = append(errs, field.Invalid(path.Child("name"), pod.Name, msg))
		}
	}
	if pod.Namespace == "" {
		errs = append(errs, field.Required(path.Child("namespace"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(pod.Namespace) {
			errs = append(errs, field.Invalid(path.Child("namespace"), pod.Namespace, msg))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(pod.Labels, path.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(pod.Annotations, path.Child("annotations"))...)
	return errs
}

func validatePodSpec(spec *v1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(path.Child("containers"), "a pod needs at least one container"))
	}
	names := map[string]bool{}
	for _, c := range spec.InitContainers {
		names[c.Name] = true
	}
	for _, c := range spec.Containers {
		names[c.Name] = true
	}
	seen := map[string]bool{}
	hostPorts := map[string]*field.Path{}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		p := path.Child("initContainers").Index(i)
		errs = append(errs, validateContainer(c, spec, p, seen, names, hostPorts)...)
		errs = append(errs, probes.ValidateContainer(c, true, p)...)
		if c.RestartPolicy != nil && *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
			errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *c.RestartPolicy, []v1.ContainerRestartPolicy{v1.ContainerRestartPolicyAlways}))
		}
		if c.Lifecycle != nil && !isSidecar(c) {
			errs = append(errs, field.Forbidden(p.Child("lifecycle"), "may not be set for init containers without restartPolicy=Always"))
		} else {
			errs = append(errs, validateLifecycle(c.Lifecycle, spec.TerminationGracePeriodSeconds, p.Child("lifecycle"))...)
		}
	}
	for i := range spec.Containers {
		p := path.Child("containers").Index(i)
		errs = append(errs, validateContainer(&spec.Containers[i], spec, p, seen, names, hostPorts)...)
		errs = append(errs, probes.ValidateContainer(&spec.Containers[i], false, p)...)
		errs = append(errs, validateLifecycle(spec.Containers[i].Lifecycle, spec.TerminationGracePeriodSeconds, p.Child("lifecycle"))...)
	}

	errs = append(errs, validateEnum(spec.RestartPolicy, path.Child("restartPolicy"), validRestartPolicies)...)
	if spec.TerminationGracePeriodSeconds != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(*spec.TerminationGracePeriodSeconds, path.Child("terminationGracePeriodSeconds"))...)
	}
	errs = append(errs, validateEnum(spec.DNSPolicy, path.Child("dnsPolicy"), validDNSPolicies)...)
	errs = append(errs, validateDNSConfig(spec.DNSPolicy, spec.DNSConfig, path.Child("dnsConfig"))...)
	errs = append(errs, validateDNSLabelField(spec.Hostname, path.Child("hostname"))...)
	errs = append(errs, validateDNSLabelField(spec.Subdomain, path.Child("subdomain"))...)
	errs = append(errs, validateDNSSubdomainField(spec.NodeName, path.Child("nodeName"))...)
	errs = append(errs, metav1validation.ValidateLabels(spec.NodeSelector, path.Child("nodeSelector"))...)
	errs = append(errs, validateDNSSubdomainField(spec.ServiceAccountName, path.Child("serviceAccountName"))...)
	errs = append(errs, validateDNSSubdomainField(spec.DeprecatedServiceAccount, path.Child("serviceAccount"))...)
	errs = append(errs, validateDNSSubdomainField(spec.SchedulerName, path.Child("schedulerName"))...)
	errs = append(errs, validateDNSSubdomainField(spec.PriorityClassName, path.Child("priorityClassName"))...)
	if spec.PreemptionPolicy != nil {
		errs = append(errs, validateEnum(*spec.PreemptionPolicy, path.Child("preemptionPolicy"), validPreemption)...)
	}
	if spec.HostPID && spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		errs = append(errs, field.Invalid(path.Child("shareProcessNamespace"), true, "may not be true when hostPID is true"))
	}
	errs = append(errs, validatePodSecurityContext(spec.SecurityContext, path.Child("securityContext"))...)
	for i := range spec.Tolerations {
		errs = append(errs, validateToleration(&spec.Tolerations[i], path.Child("tolerations").Index(i))...)
	}
	errs = append(errs, validateVolumes(spec, path)...)
	// spec.affinity is accepted but not evaluated yet; it gets validated when it is.
	return errs
}

// validateContainer checks one init or app container. seen holds the container names met so far
// (names are unique across init and app containers), all holds every container name in the pod,
// hostPorts the host ports taken so far (protocol/port → where).
func validateContainer(c *v1.Container, spec *v1.PodSpec, path *field.Path, seen, all map[string]bool, hostPorts map[string]*field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case c.Name == "":
		errs = append(errs, field.Required(path.Child("name"), ""))
	case seen[c.Name]:
		errs = append(errs, field.Duplicate(path.Child("name"), c.Name))
	default:
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(path.Child("name"), c.Name, msg))
		}
	}
	seen[c.Name] = true

	switch {
	case c.Image == "":
		errs = append(errs, field.Required(path.Child("image"), ""))
	case strings.TrimSpace(c.Image) != c.Image:
		errs = append(errs, field.Invalid(path.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	errs = append(errs, validateEnum(c.ImagePullPolicy, path.Child("imagePullPolicy"), validPullPolicies)...)
	errs = append(errs, validateEnum(c.TerminationMessagePolicy, path.Child("terminationMessagePolicy"), validTerminationMsgs)...)
	errs = append(errs, validatePorts(c.Ports, spec.HostNetwork, path.Child("ports"), hostPorts)...)
	errs = append(errs, validateEnv(c.Env, all, path.Child("env"))...)
	errs = append(errs, validateResources(&c.Resources, path.Child("resources"))...)
	errs = append(errs, validateContainerSecurityContext(c.SecurityContext, path.Child("securityContext"))...)
	return errs
}

// validateLifecycle checks the postStart and preStop hooks with the API server's rules: one handler
// each; exec needs a command; httpGet a valid port, scheme and header names; sleep between 0 and the
// pod's grace period.
func validateLifecycle(l *v1.Lifecycle, grace *int64, path *field.Path) field.ErrorList {
	if l == nil {
		return nil
	}
	var errs field.ErrorList
	for _, h := range []struct {
		name    string
		handler *v1.LifecycleHandler
	}{{"postStart", l.PostStart}, {"preStop", l.PreStop}} {
		if h.handler != nil {
			errs = append(errs, validateLifecycleHandler(h.handler, grace, path.Child(h.name))...)
		}
	}
	return errs
}

func validateLifecycleHandler(h *v1.LifecycleHandler, grace *int64, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if e := h.Exec; e != nil {
		n++
		if len(e.Command) == 0 {
			errs = append(errs, field.Required(path.Child("exec", "command"), ""))
		}
	}
	if g := h.HTTPGet; g != nil {
		n++
		gp := path.Child("httpGet")
		switch p := g.Port; {
		case p.Type == intstr.Int:
			for _, msg := range validation.IsValidPortNum(p.IntValue()) {
				errs = append(errs, field.Invalid(gp.Child("port"), p.IntValue(), msg))
			}
		default:
			for _, msg := range validation.IsValidPortName(p.StrVal) {
				errs = append(errs, field.Invalid(gp.Child("port"), p.StrVal, msg))
			}
		}
		if g.Scheme != "" && g.Scheme != v1.URISchemeHTTP && g.Scheme != v1.URISchemeHTTPS {
			errs = append(errs, field.NotSupported(gp.Child("scheme"), g.Scheme, []v1.URIScheme{v1.URISchemeHTTP, v1.URISchemeHTTPS}))
		}
		for i, hh := range g.HTTPHeaders {
			for _, msg := range validation.IsHTTPHeaderName(hh.Name) {
				errs = append(errs, field.Invalid(gp.Child("httpHeaders").Index(i).Child("name"), hh.Name, msg))
			}
		}
	}
	if sl := h.Sleep; sl != nil {
		n++
		if g := grace; g != nil && (sl.Seconds < 0 || sl.Seconds > *g) {
			errs = append(errs, field.Invalid(path.Child("sleep", "seconds"), sl.Seconds, fmt.Sprintf("must be non-negative and less than terminationGracePeriodSeconds (%d)", *g)))
		}
	}
	if h.TCPSocket != nil {
		n++ // rejected as unsupported
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a handler type"))
	case n > 1:
		errs = append(errs, field.Forbidden(path, "may not specify more than 1 handler type"))
	}
	return errs
}

func validatePorts(ports []v1.ContainerPort, hostNetwork bool, path *field.Path, hostPorts map[string]*field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for i, p := range ports {
		idx := path.Index(i)
		if p.Name != "" {
			for _, msg := range validation.IsValidPortName(p.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), p.Name, msg))
			}
			if names[p.Name] {
				errs = append(errs, field.Duplicate(idx.Child("name"), p.Name))
			}
			names[p.Name] = true
		}
		if p.ContainerPort == 0 {
			errs = append(errs, field.Required(idx.Child("containerPort"), ""))
		} else {
			for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
				errs = append(errs, field.Invalid(idx.Child("containerPort"), p.ContainerPort, msg))
			}
		}
		if p.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(p.HostPort)) {
				errs = append(errs, field.Invalid(idx.Child("hostPort"), p.HostPort, msg))
			}
			if hostNetwork && p.HostPort != p.ContainerPort {
				errs = append(errs, field.Invalid(idx.Child("hostPort"), p.HostPort, "must match containerPort when hostNetwork is true"))
			}
			key := fmt.Sprintf("%s/%d", p.Protocol, p.HostPort)
			if prev, ok := hostPorts[key]; ok {
				dup := field.Duplicate(idx.Child("hostPort"), key)
				dup.Detail = "already used by " + prev.String()
				errs = append(errs, dup)
			} else {
				hostPorts[key] = idx
			}
		}
		errs = append(errs, validateEnum(p.Protocol, idx.Child("protocol"), validProtocols)...)
		if p.HostIP != "" {
			if _, err := netip.ParseAddr(p.HostIP); err != nil {
				errs = append(errs, field.Invalid(idx.Child("hostIP"), p.HostIP, "must be a valid IP address"))
			}
		}
	}
	return errs
}

func validateEnv(env []v1.EnvVar, containers map[string]bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range env {
		idx := path.Index(i)
		if e.Name == "" {
			errs = append(errs, field.Required(idx.Child("name"), ""))
		} else {
			for _, msg := range validation.IsRelaxedEnvVarName(e.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), e.Name, msg))
			}
		}
		if e.ValueFrom == nil {
			continue
		}
		from := idx.Child("valueFrom")
		if e.Value != "" {
			errs = append(errs, field.Invalid(from, "", "may not be specified when `value` is not empty"))
		}
		sources := 0
		if e.ValueFrom.FieldRef != nil {
			sources++
			errs = append(errs, validateEnvFieldRef(e.ValueFrom.FieldRef, from.Child("fieldRef"))...)
		}
		if e.ValueFrom.ResourceFieldRef != nil {
			sources++
			errs = append(errs, validateEnvResourceRef(e.ValueFrom.ResourceFieldRef, containers, from.Child("resourceFieldRef"))...)
		}
		if e.ValueFrom.ConfigMapKeyRef != nil {
			sources++
		}
		if e.ValueFrom.SecretKeyRef != nil {
			sources++
		}
		if e.ValueFrom.FileKeyRef != nil {
			sources++
		}
		switch {
		case sources == 0:
			errs = append(errs, field.Invalid(from, "", "must specify one of: `fieldRef`, `resourceFieldRef`"))
		case sources > 1:
			errs = append(errs, field.Invalid(from, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

func validateEnvFieldRef(ref *v1.ObjectFieldSelector, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case ref.APIVersion == "":
		errs = append(errs, field.Required(path.Child("apiVersion"), ""))
	case ref.APIVersion != "v1":
		errs = append(errs, field.NotSupported(path.Child("apiVersion"), ref.APIVersion, []string{"v1"}))
	}
	fp := path.Child("fieldPath")
	if ref.FieldPath == "" {
		return append(errs, field.Required(fp, ""))
	}
	if m := envFieldPathSubscript.FindStringSubmatch(ref.FieldPath); m != nil {
		if m[1] == "labels" {
			for _, msg := range validation.IsQualifiedName(m[2]) {
				errs = append(errs, field.Invalid(fp, ref.FieldPath, "invalid label key: "+msg))
			}
		} else {
			for _, msg := range validation.IsQualifiedName(strings.ToLower(m[2])) {
				errs = append(errs, field.Invalid(fp, ref.FieldPath, "invalid annotation key: "+msg))
			}
		}
		return errs
	}
	if !slices.Contains(validEnvFieldPaths, ref.FieldPath) {
		errs = append(errs, field.NotSupported(fp, ref.FieldPath, validEnvFieldPaths))
	}
	return errs
}

func validateEnvResourceRef(ref *v1.ResourceFieldSelector, containers map[string]bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ref.ContainerName != "" && !containers[ref.ContainerName] {
		errs = append(errs, field.NotFound(path.Child("containerName"), ref.ContainerName))
	}
	switch {
	case ref.Resource == "":
		return append(errs, field.Required(path.Child("resource"), ""))
	case !slices.Contains(validEnvResourceRefs, ref.Resource):
		return append(errs, field.NotSupported(path.Child("resource"), ref.Resource, validEnvResourceRefs))
	}
	if ref.Divisor.IsZero() {
		return errs // unset: 1
	}
	divisors := validMemoryDivisors
	if strings.HasSuffix(ref.Resource, ".cpu") {
		divisors = validCPUDivisors
	}
	for _, d := range divisors {
		if ref.Divisor.Cmp(resource.MustParse(d)) == 0 {
			return errs
		}
	}
	return append(errs, field.NotSupported(path.Child("divisor"), ref.Divisor.String(), divisors))
}

func validateResources(r *v1.ResourceRequirements, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedResourceNames(r.Limits) {
		q := r.Limits[name]
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(path.Child("limits").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
	}
	for _, name := range sortedResourceNames(r.Requests) {
		q := r.Requests[name]
		p := path.Child("requests").Key(string(name))
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p, q.String(), "must be greater than or equal to 0"))
		}
		if limit, ok := r.Limits[name]; ok && q.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(p, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
		}
	}
	return errs
}

func sortedResourceNames(l v1.ResourceList) []v1.ResourceName {
	return slices.Sorted(maps.Keys(l))
}

func validatePodSecurityContext(sc *v1.PodSecurityContext, path *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, validateIDs(sc.RunAsUser, sc.RunAsGroup, path)...)
	for i, g := range sc.SupplementalGroups {
		for _, msg := range validation.IsValidGroupID(g) {
			errs = append(errs, field.Invalid(path.Child("supplementalGroups").Index(i), g, msg))
		}
	}
	names := map[string]bool{}
	for i, s := range sc.Sysctls {
		p := path.Child("sysctls").Index(i).Child("name")
		switch {
		case s.Name == "":
			errs = append(errs, field.Required(p, ""))
		case len(s.Name) > maxSysctlNameLength:
			errs = append(errs, field.TooLong(p, s.Name, maxSysctlNameLength))
		case !sysctlNameRegexp.MatchString(s.Name):
			errs = append(errs, field.Invalid(p, s.Name, "must be a sysctl name: lower-case alphanumeric segments (with '-' or '_' inside) separated by '.' or '/', e.g. 'net.ipv4.ip_local_port_range'"))
		case names[s.Name]:
			errs = append(errs, field.Duplicate(p, s.Name))
		}
		names[s.Name] = true
	}
	return errs
}

func validateContainerSecurityContext(sc *v1.SecurityContext, path *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	errs := validateIDs(sc.RunAsUser, sc.RunAsGroup, path)
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			errs = append(errs, field.Invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				if c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN" {
					errs = append(errs, field.Invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
					break
				}
			}
		}
	}
	return errs
}

func validateIDs(user, group *int64, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if user != nil {
		for _, msg := range validation.IsValidUserID(*user) {
			errs = append(errs, field.Invalid(path.Child("runAsUser"), *user, msg))
		}
	}
	if group != nil {
		for _, msg := range validation.IsValidGroupID(*group) {
			errs = append(errs, field.Invalid(path.Child("runAsGroup"), *group, msg))
		}
	}
	return errs
}

func validateDNSConfig(policy v1.DNSPolicy, cfg *v1.PodDNSConfig, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if policy == v1.DNSNone {
		if cfg == nil {
			return append(errs, field.Required(path, "must provide `dnsConfig` when `dnsPolicy` is None"))
		}
		if len(cfg.Nameservers) == 0 {
			errs = append(errs, field.Required(path.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
		}
	}
	if cfg == nil {
		return errs
	}
	if len(cfg.Nameservers) > maxDNSNameservers {
		errs = append(errs, field.TooMany(path.Child("nameservers"), len(cfg.Nameservers), maxDNSNameservers))
	}
	for i, ns := range cfg.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			errs = append(errs, field.Invalid(path.Child("nameservers").Index(i), ns, "must be a valid IP address"))
		}
	}
	if len(cfg.Searches) > maxDNSSearchDomains {
		errs = append(errs, field.TooMany(path.Child("searches"), len(cfg.Searches), maxDNSSearchDomains))
	}
	total := 0
	for i, s := range cfg.Searches {
		total += len(s)
		name := strings.TrimSuffix(s, ".") // a fully qualified name may end with a dot
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			errs = append(errs, field.Invalid(path.Child("searches").Index(i), s, msg))
		}
	}
	if total > maxDNSSearchLength {
		errs = append(errs, field.Invalid(path.Child("searches"), cfg.Searches, fmt.Sprintf("must not have more than %d characters (including spaces) in the search list", maxDNSSearchLength)))
	}
	for i, o := range cfg.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(path.Child("options").Index(i).Child("name"), ""))
		}
	}
	return errs
}

func validateToleration(t *v1.Toleration, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Key != "" {
		errs = append(errs, metav1validation.ValidateLabelName(t.Key, path.Child("key"))...)
	}
	op := t.Operator
	if op == "" {
		op = v1.TolerationOpEqual
	}
	switch op {
	case v1.TolerationOpEqual:
		if t.Key == "" {
			errs = append(errs, field.Invalid(path.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			errs = append(errs, field.Invalid(path.Child("value"), t.Value, msg))
		}
	case v1.TolerationOpExists:
		if t.Value != "" {
			errs = append(errs, field.Invalid(path.Child("value"), t.Value, "value must be empty when `operator` is 'Exists'"))
		}
	default:
		errs = append(errs, field.NotSupported(path.Child("operator"), t.Operator, validTolerationOps))
	}
	if t.Effect != "" {
		errs = append(errs, validateEnum(t.Effect, path.Child("effect"), validTaintEffects)...)
	}
	if t.TolerationSeconds != nil && t.Effect != v1.TaintEffectNoExecute {
		errs = append(errs, field.Invalid(path.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
	}
	return errs
}

func validateDNSLabelField(value string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if value != "" {
		for _, msg := range validation.IsDNS1123Label(value) {
			errs = append(errs, field.Invalid(path, value, msg))
		}
	}
	return errs
}

func validateDNSSubdomainField(value string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if value != "" {
		for _, msg := range validation.IsDNS1123Subdomain(value) {
			errs = append(errs, field.Invalid(path, value, msg))
		}
	}
	return errs
}

// validateEnum requires value and checks it is one of valid.
func validateEnum[T ~string](value T, path *field.Path, valid []T) field.ErrorList {
	if value == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	if slices.Contains(valid, value) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, value, valid)}
}

// supportedPodFields is the allowlist of the Pod fields Berth implements. Anything else set in a
// manifest is rejected by unsupportedFields, never silently ignored. A supporting feature adds
// its lines here.
//
// Syntax: fields are JSON names joined by '.', "[]" stands for every item of a list and "[key]"
// for one key of a map. A listed field with no line below it accepts all of its content; a field
// with lines below it accepts only those.
var supportedPodFields = []string{
	"apiVersion",
	"kind",
	"status", // ignored: a manifest's status is never read
	"metadata.name",
	"metadata.namespace",
	"metadata.uid", // replaced by a UID derived from the file for static pods
	"metadata.labels",
	"metadata.annotations",
	// spec.containers[] and spec.initContainers[]: see supportedContainerFields.
	"spec.initContainers[].restartPolicy", // sidecars: only Always
	"spec.restartPolicy",
	"spec.terminationGracePeriodSeconds",
	"spec.dnsPolicy",
	"spec.dnsConfig",
	"spec.hostNetwork",
	"spec.hostPID",
	"spec.hostIPC",
	"spec.shareProcessNamespace",
	"spec.hostname",
	"spec.subdomain",
	"spec.nodeName",
	"spec.nodeSelector",       // accepted; a static pod always runs on its own node
	"spec.serviceAccountName", // accepted, informational
	"spec.serviceAccount",     // deprecated alias of serviceAccountName
	"spec.automountServiceAccountToken",
	"spec.securityContext.runAsUser",
	"spec.securityContext.runAsGroup",
	"spec.securityContext.runAsNonRoot",
	"spec.securityContext.supplementalGroups",
	"spec.securityContext.sysctls",
	"spec.schedulerName",
	"spec.enableServiceLinks",
	"spec.priority",          // accepted
	"spec.priorityClassName", // accepted
	"spec.preemptionPolicy",  // accepted
	"spec.tolerations",       // accepted
	"spec.affinity",          // accepted, evaluated later
	// Volumes (docs/volumes.md): the kinds that need no API object; configMap, secret and
	// service-account tokens are in apiPodOnlyPodFields.
	"spec.volumes[].name",
	"spec.volumes[].emptyDir",
	"spec.volumes[].hostPath",
	"spec.volumes[].downwardAPI",
	"spec.volumes[].projected.defaultMode",
	"spec.volumes[].projected.sources[].downwardAPI",
}

// apiPodOnlyPodFields are pod fields Berth supports for API pods only: the kubelet refuses static
// pods that refer to API objects.
var apiPodOnlyPodFields = []string{
	"spec.volumes[].configMap",
	"spec.volumes[].secret",
	"spec.volumes[].projected.sources[].configMap",
	"spec.volumes[].projected.sources[].secret",
	"spec.volumes[].projected.sources[].serviceAccountToken",
}

// supportedContainerFields is the allowlist for one container, the same for init and app
// containers (relative to spec.containers[] and spec.initContainers[]).
var supportedContainerFields = []string{
	"name",
	"image",
	"imagePullPolicy",
	"command",
	"args",
	"workingDir",
	"ports",
	"env[].name",
	"env[].value",
	"env[].valueFrom.fieldRef",
	"env[].valueFrom.resourceFieldRef",
	"resources.limits[cpu]",
	"resources.limits[memory]",
	"resources.requests[cpu]",
	"resources.requests[memory]",
	"securityContext.privileged",
	"securityContext.runAsUser",
	"securityContext.runAsGroup",
	"securityContext.runAsNonRoot",
	"securityContext.readOnlyRootFilesystem",
	"securityContext.capabilities.add",
	"securityContext.capabilities.drop",
	"securityContext.allowPrivilegeEscalation",
	"stdin",
	"stdinOnce",
	"tty",
	"terminationMessagePath",
	"terminationMessagePolicy",
	"livenessProbe",
	"readinessProbe",
	"startupProbe",
	"lifecycle.postStart.exec",
	"lifecycle.postStart.httpGet",
	"lifecycle.postStart.sleep",
	"lifecycle.preStop.exec",
	"lifecycle.preStop.httpGet",
	"lifecycle.preStop.sleep",
	"volumeMounts[].name",
	"volumeMounts[].mountPath",
	"volumeMounts[].readOnly",
	"volumeMounts[].subPath",
	"volumeMounts[].subPathExpr",
	"volumeMounts[].mountPropagation",
}

// apiPodOnlyContainerFields are container fields Berth supports for API pods only: a static pod may
// not refer to API objects (the kubelet's rule), so its manifest keeps them rejected.
var apiPodOnlyContainerFields = []string{
	"env[].valueFrom.configMapKeyRef",
	"env[].valueFrom.secretKeyRef",
	"envFrom",
}

// unsupportedDetails explains, for some unsupported fields (by JSON name), more than "not yet".
var unsupportedDetails = map[string]string{
	"generateName":        "a static pod needs a fixed metadata.name; generateName is not supported",
	"imagePullSecrets":    "Berth does not support imagePullSecrets: a static pod cannot refer to Secrets",
	"configMapKeyRef":     "Berth does not support configMapKeyRef: a static pod cannot refer to ConfigMaps",
	"secretKeyRef":        "Berth does not support secretKeyRef: a static pod cannot refer to Secrets",
	"ephemeralContainers": "static pods do not support ephemeral containers",
	"envFrom":             "Berth does not support envFrom: a static pod cannot refer to ConfigMaps or Secrets",
	"tcpSocket":           "tcpSocket is deprecated and not supported as a lifecycle handler: use exec, httpGet or sleep",
	// Volume kinds (spec.volumes[] and projected sources).
	"configMap":             "a static pod cannot refer to ConfigMaps: configMap volumes are for API pods",
	"secret":                "a static pod cannot refer to Secrets: secret volumes are for API pods",
	"serviceAccountToken":   "a static pod cannot have service account tokens: serviceAccountToken projections are for API pods",
	"persistentVolumeClaim": "Berth does not support persistentVolumeClaim volumes (persistent volumes) yet",
	"csi":                   "Berth does not support csi volumes yet (CSI may come later: see docs/volumes.md)",
	"ephemeral":             "Berth does not support ephemeral volumes (they need persistent volumes and CSI) yet",
	"clusterTrustBundle":    "Berth does not support clusterTrustBundle projections yet",
	"podCertificate":        "Berth does not support podCertificate projections yet",
	"image":                 "Berth does not support image volumes yet",
	"nfs":                   "Berth does not support nfs volumes yet",
	"iscsi":                 "Berth does not support iscsi volumes yet",
	"recursiveReadOnly":     "Berth does not support recursiveReadOnly volume mounts yet",
}

// fieldRule is one node of the allowlist as a tree.
type fieldRule struct {
	fields map[string]*fieldRule // accepted struct fields, or map keys when keys is set
	keys   bool                  // fields are map keys: paths print as [key]
	items  *fieldRule            // rule for each item, for a list
}

func (r *fieldRule) acceptsAll() bool { return r.fields == nil && r.items == nil }

// podFieldRules is the allowlist of static pods as a tree, built once; apiPodFieldRules the one of
// API pods.
var (
	podFieldRules    = buildFieldRules(false)
	apiPodFieldRules = buildFieldRules(true)
)

func buildFieldRules(apiPod bool) *fieldRule {
	root := &fieldRule{}
	for _, p := range supportedPodFields {
		root.add(p)
	}
	if apiPod {
		for _, p := range apiPodOnlyPodFields {
			root.add(p)
		}
	}
	for _, list := range []string{"spec.containers[]", "spec.initContainers[]"} {
		for _, p := range supportedContainerFields {
			root.add(list + "." + p)
		}
		if apiPod {
			for _, p := range apiPodOnlyContainerFields {
				root.add(list + "." + p)
			}
		}
	}
	return root
}

// add inserts one allowlist path, e.g. "spec.containers[].resources.limits[cpu]".
func (r *fieldRule) add(path string) {
	node := r
	for _, tok := range tokenizeFieldPath(path) {
		switch {
		case tok == "[]":
			if node.items == nil {
				node.items = &fieldRule{}
			}
			node = node.items
		default:
			name, isKey := strings.CutPrefix(tok, "[")
			if isKey {
				name = strings.TrimSuffix(name, "]")
				node.keys = true
			}
			if node.fields == nil {
				node.fields = map[string]*fieldRule{}
			}
			if node.fields[name] == nil {
				node.fields[name] = &fieldRule{}
			}
			node = node.fields[name]
		}
	}
}

// tokenizeFieldPath splits "a.b[].c[key]" into "a", "b", "[]", "c", "[key]".
func tokenizeFieldPath(path string) []string {
	var toks []string
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				panic("allowlist path with an unclosed '[': " + path)
			}
			toks = append(toks, path[:end+1])
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			toks = append(toks, path[:end])
			path = path[end:]
		}
	}
	return toks
}

// unsupportedFields reports every non-empty field of pod that Berth does not implement (the
// fields outside supportedPodFields and supportedContainerFields), as
// `spec.volumes: Unsupported value: Berth does not support volumes yet`.
func unsupportedFields(pod *v1.Pod) field.ErrorList {
	return podFieldRules.check(pod)
}

// unsupportedAPIPodFields is unsupportedFields for a pod from the API server, which may also use
// the fields of apiPodOnlyContainerFields.
func unsupportedAPIPodFields(pod *v1.Pod) field.ErrorList {
	return apiPodFieldRules.check(pod)
}

func (r *fieldRule) check(pod *v1.Pod) field.ErrorList {
	data, err := json.Marshal(pod)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	var errs field.ErrorList
	r.walk(obj, nil, &errs)
	return errs
}

// walk checks v against rule r; path is v's path (nil for the root).
func (r *fieldRule) walk(v any, path *field.Path, errs *field.ErrorList) {
	if r.acceptsAll() {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			var p *field.Path
			switch {
			case r.keys:
				p = path.Key(k)
			case path == nil:
				p = field.NewPath(k)
			default:
				p = path.Child(k)
			}
			sub := r.fields[k]
			if sub == nil {
				if !isEmptyJSON(v[k]) {
					*errs = append(*errs, unsupportedField(p, k, r))
				}
				continue
			}
			sub.walk(v[k], p, errs)
		}
	case []any:
		if r.items == nil {
			return
		}
		for i, item := range v {
			r.items.walk(item, path.Index(i), errs)
		}
	}
}

func unsupportedField(path *field.Path, name string, parent *fieldRule) *field.Error {
	detail := "Berth does not support " + name + " yet"
	if parent.keys {
		detail = fmt.Sprintf("Berth does not support %q here yet (supported: %s)", name, strings.Join(slices.Sorted(maps.Keys(parent.fields)), ", "))
	} else if d, ok := unsupportedDetails[name]; ok {
		detail = d
	}
	return &field.Error{Type: field.ErrorTypeNotSupported, Field: path.String(), BadValue: field.OmitValueType{}, Detail: detail}
}

// isEmptyJSON reports whether a decoded JSON value means "not set": null, "", false, or an
// object or list with nothing set in it. Numbers are always set (0 can be meaningful).
func isEmptyJSON(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case []any:
		return len(v) == 0
	case map[string]any:
		for _, x := range v {
			if !isEmptyJSON(x) {
				return false
			}
		}
		return true
	default:
		return false
	}
}
