package probes

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateContainer(t *testing.T) {
	path := field.NewPath("spec", "containers").Index(0)
	exec := v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}
	i64 := func(v int64) *int64 { return &v }
	always := v1.ContainerRestartPolicyAlways
	for _, tc := range []struct {
		name string
		c    v1.Container
		init bool
		want []string // every error, as "field: detail" substrings, in order
	}{
		{"no probes", v1.Container{}, false, nil},
		{"every kind and handler", v1.Container{
			LivenessProbe:  &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromString("http"), Scheme: v1.URISchemeHTTPS, HTTPHeaders: []v1.HTTPHeader{{Name: "X-A", Value: "b"}}}}, TerminationGracePeriodSeconds: i64(5)},
			ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 3},
			StartupProbe:   &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: 9090}}, FailureThreshold: 30, PeriodSeconds: 1},
		}, false, nil},
		{"no handler", v1.Container{LivenessProbe: &v1.Probe{}}, false, []string{"spec.containers[0].livenessProbe: Required value: must specify a handler type"}},
		{"two handlers", v1.Container{ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: exec.Exec, TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(1)}}}}, false, []string{"spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type"}},
		{"empty command", v1.Container{LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{}}}}, false, []string{"spec.containers[0].livenessProbe.exec.command: Required value"}},
		{"negative knobs", v1.Container{LivenessProbe: &v1.Probe{ProbeHandler: exec, InitialDelaySeconds: -1, TimeoutSeconds: -1, PeriodSeconds: -1, SuccessThreshold: -1, FailureThreshold: -1}}, false, []string{
			"livenessProbe.initialDelaySeconds: Invalid value: -1", "livenessProbe.timeoutSeconds: Invalid value: -1", "livenessProbe.periodSeconds: Invalid value: -1",
			"livenessProbe.successThreshold: Invalid value: -1", "livenessProbe.failureThreshold: Invalid value: -1",
		}},
		{"liveness and startup success threshold", v1.Container{LivenessProbe: &v1.Probe{ProbeHandler: exec, SuccessThreshold: 2}, StartupProbe: &v1.Probe{ProbeHandler: exec, SuccessThreshold: 2}}, false, []string{
			"livenessProbe.successThreshold: Invalid value: 2: must be 1", "startupProbe.successThreshold: Invalid value: 2: must be 1",
		}},
		{"grace", v1.Container{LivenessProbe: &v1.Probe{ProbeHandler: exec, TerminationGracePeriodSeconds: i64(0)}, ReadinessProbe: &v1.Probe{ProbeHandler: exec, TerminationGracePeriodSeconds: i64(10)}}, false, []string{
			"livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0", "readinessProbe.terminationGracePeriodSeconds: Invalid value: 10: must not be set for readinessProbes",
		}},
		{"http", v1.Container{LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(0), Scheme: "FTP", HTTPHeaders: []v1.HTTPHeader{{Name: "bad header"}}}}}}, false, []string{
			"livenessProbe.httpGet.port: Invalid value: 0", `livenessProbe.httpGet.scheme: Unsupported value: "FTP"`, `livenessProbe.httpGet.httpHeaders[0].name: Invalid value: "bad header"`,
		}},
		{"ports", v1.Container{LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromString("Not_A_Name")}}}, StartupProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: 70000}}}}, false, []string{
			`livenessProbe.tcpSocket.port: Invalid value: "Not_A_Name"`, "startupProbe.grpc.port: Invalid value: 70000",
		}},
		{"init container", v1.Container{ReadinessProbe: &v1.Probe{ProbeHandler: exec}, LivenessProbe: &v1.Probe{}}, true, []string{
			"livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always", "readinessProbe: Forbidden: may not be set for init containers",
		}},
		{"sidecar", v1.Container{RestartPolicy: &always, ReadinessProbe: &v1.Probe{ProbeHandler: exec}, StartupProbe: &v1.Probe{ProbeHandler: exec}}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateContainer(&tc.c, tc.init, path)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errs.ToAggregate())
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tc.want[i]) {
					t.Errorf("error %d: %q does not contain %q", i, e.Error(), tc.want[i])
				}
			}
		})
	}
}
