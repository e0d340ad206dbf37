package probes

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateContainer checks c's probes with the API server's rules, for the agent's manifest
// validation (static pods meet no API server). init says c is in spec.initContainers: only a
// sidecar (restartPolicy Always) may have probes there. path is the container's path,
// "spec.containers[0]".
//
// Zero knobs are accepted (they take the defaults); a port name is only checked for its form, as
// the API server does: a name the container does not declare makes each attempt error, with an
// event that says so.
func ValidateContainer(c *v1.Container, init bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	sidecar := c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
	for _, k := range []Kind{Liveness, Readiness, Startup} {
		p := k.specOf(c)
		if p == nil {
			continue
		}
		pp := path.Child(string(k) + "Probe")
		if init && !sidecar {
			errs = append(errs, field.Forbidden(pp, "may not be set for init containers without restartPolicy=Always"))
			continue
		}
		errs = append(errs, validateProbe(p, k, pp)...)
	}
	return errs
}

func validateProbe(p *v1.Probe, k Kind, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateHandler(p, path)...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.InitialDelaySeconds), path.Child("initialDelaySeconds"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.TimeoutSeconds), path.Child("timeoutSeconds"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.PeriodSeconds), path.Child("periodSeconds"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.SuccessThreshold), path.Child("successThreshold"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.FailureThreshold), path.Child("failureThreshold"))...)
	if k != Readiness && p.SuccessThreshold > 1 {
		errs = append(errs, field.Invalid(path.Child("successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	if g := p.TerminationGracePeriodSeconds; g != nil {
		switch {
		case k == Readiness:
			errs = append(errs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *g, "must not be set for readinessProbes"))
		case *g <= 0:
			errs = append(errs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *g, "must be greater than 0"))
		}
	}
	return errs
}

func validateHandler(p *v1.Probe, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if e := p.Exec; e != nil {
		n++
		if len(e.Command) == 0 {
			errs = append(errs, field.Required(path.Child("exec", "command"), ""))
		}
	}
	if h := p.HTTPGet; h != nil {
		n++
		hp := path.Child("httpGet")
		errs = append(errs, validatePort(h.Port, hp.Child("port"))...)
		if h.Scheme != "" && h.Scheme != v1.URISchemeHTTP && h.Scheme != v1.URISchemeHTTPS {
			errs = append(errs, field.NotSupported(hp.Child("scheme"), h.Scheme, []string{string(v1.URISchemeHTTP), string(v1.URISchemeHTTPS)}))
		}
		for i, hh := range h.HTTPHeaders {
			for _, msg := range validation.IsHTTPHeaderName(hh.Name) {
				errs = append(errs, field.Invalid(hp.Child("httpHeaders").Index(i).Child("name"), hh.Name, msg))
			}
		}
	}
	if t := p.TCPSocket; t != nil {
		n++
		errs = append(errs, validatePort(t.Port, path.Child("tcpSocket", "port"))...)
	}
	if g := p.GRPC; g != nil {
		n++
		for _, msg := range validation.IsValidPortNum(int(g.Port)) {
			errs = append(errs, field.Invalid(path.Child("grpc", "port"), g.Port, msg))
		}
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a handler type (exec, httpGet, tcpSocket or grpc)"))
	case n > 1:
		errs = append(errs, field.Forbidden(path, fmt.Sprintf("may not specify more than 1 handler type (%d given)", n)))
	}
	return errs
}

func validatePort(port intstr.IntOrString, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.String {
		for _, msg := range validation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(path, port.StrVal, msg))
		}
		return errs
	}
	for _, msg := range validation.IsValidPortNum(port.IntValue()) {
		errs = append(errs, field.Invalid(path, port.IntValue(), msg))
	}
	return errs
}
