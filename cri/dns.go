package cri

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits of a pod's resolv.conf, as glibc and Kubernetes apply them: what goes beyond them is
// dropped.
const (
	MaxDNSNameservers     = 3
	MaxDNSSearchDomains   = 32
	MaxDNSSearchListChars = 2048
)

// clusterDNSOptions are the resolver options of ClusterFirst pods: with ndots:5 a name such as
// "db.prod" is first tried against the search domains, so service names resolve.
var clusterDNSOptions = []string{"ndots:5"}

// ResolvConf is what matters of a resolv.conf: nameservers, search domains and options.
type ResolvConf struct {
	Servers, Searches, Options []string
}

// ParseResolvConf reads a resolv.conf as the resolver does: one "nameserver" per line; the last
// "search" or "domain" line gives the search list (trailing dots dropped); "options" lines add up,
// a later option replacing an earlier one of the same name. Lines starting with '#' or ';' are
// comments, and anything else is ignored.
func ParseResolvConf(data []byte) ResolvConf {
	var rc ResolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		fields := strings.Fields(line)
		switch fields[0] {
		case "nameserver":
			if len(fields) > 1 {
				rc.Servers = append(rc.Servers, fields[1])
			}
		case "search", "domain":
			rc.Searches = nil
			for _, s := range fields[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" {
					rc.Searches = append(rc.Searches, s)
				}
			}
			if fields[0] == "domain" && len(rc.Searches) > 1 {
				rc.Searches = rc.Searches[:1]
			}
		case "options":
			rc.Options = mergeDNSOptions(rc.Options, fields[1:])
		}
	}
	return rc
}

// DNSConfigForPod is the DNS configuration of a pod's sandbox, from its dnsPolicy:
//   - Default: the node's resolv.conf (host);
//   - ClusterFirst (the default): the cluster DNS servers, the search domains
//     <namespace>.svc.<domain>, svc.<domain>, <domain> followed by the node's, and ndots:5. A host
//     network pod gets Default instead;
//   - ClusterFirstWithHostNet: ClusterFirst, for host network pods too;
//   - None: nothing but the pod's spec.dnsConfig.
//
// Without cluster DNS servers, ClusterFirst and ClusterFirstWithHostNet fall back to Default (the
// caller may warn about it). The pod's spec.dnsConfig is then merged in: its nameservers after the
// policy's, its searches before, its options replacing those of the same name. At most 3
// nameservers and 32 search domains (2048 characters) are kept.
func DNSConfigForPod(pod *v1.Pod, host ResolvConf, clusterDNS []string, clusterDomain string) (*runtimeapi.DNSConfig, error) {
	if pod == nil {
		return nil, fmt.Errorf("dns config: no pod")
	}
	hostConfig := func() *runtimeapi.DNSConfig {
		return &runtimeapi.DNSConfig{
			Servers:  slices.Clone(host.Servers),
			Searches: slices.Clone(host.Searches),
			Options:  slices.Clone(host.Options),
		}
	}
	clusterConfig := func() *runtimeapi.DNSConfig {
		cfg := &runtimeapi.DNSConfig{
			Servers: slices.Clone(clusterDNS),
			Options: slices.Clone(clusterDNSOptions),
		}
		if clusterDomain != "" {
			cfg.Searches = []string{
				pod.Namespace + ".svc." + clusterDomain,
				"svc." + clusterDomain,
				clusterDomain,
			}
		}
		cfg.Searches = append(cfg.Searches, host.Searches...)
		return cfg
	}

	var cfg *runtimeapi.DNSConfig
	switch policy := pod.Spec.DNSPolicy; policy {
	case v1.DNSNone:
		cfg = &runtimeapi.DNSConfig{}
	case v1.DNSDefault:
		cfg = hostConfig()
	case v1.DNSClusterFirstWithHostNet:
		if len(clusterDNS) == 0 {
			cfg = hostConfig()
		} else {
			cfg = clusterConfig()
		}
	case v1.DNSClusterFirst, "":
		if pod.Spec.HostNetwork || len(clusterDNS) == 0 {
			cfg = hostConfig()
		} else {
			cfg = clusterConfig()
		}
	default:
		return nil, fmt.Errorf("pod %s/%s: spec.dnsPolicy %q: unknown policy", pod.Namespace, pod.Name, policy)
	}

	if pc := pod.Spec.DNSConfig; pc != nil {
		cfg.Servers = dedup(append(cfg.Servers, pc.Nameservers...))
		cfg.Searches = dedup(append(slices.Clone(pc.Searches), cfg.Searches...))
		options := make([]string, 0, len(pc.Options))
		for _, o := range pc.Options {
			if o.Value != nil {
				options = append(options, o.Name+":"+*o.Value)
			} else {
				options = append(options, o.Name)
			}
		}
		cfg.Options = mergeDNSOptions(cfg.Options, options)
	}

	if len(cfg.Servers) > MaxDNSNameservers {
		cfg.Servers = cfg.Servers[:MaxDNSNameservers]
	}
	cfg.Searches = limitSearches(cfg.Searches)
	return cfg, nil
}

// mergeDNSOptions adds options ("name" or "name:value") to a list, an option replacing the one of
// the same name in place.
func mergeDNSOptions(existing, add []string) []string {
	out := slices.Clone(existing)
	name := func(o string) string {
		n, _, _ := strings.Cut(o, ":")
		return n
	}
	for _, o := range add {
		if i := slices.IndexFunc(out, func(e string) bool { return name(e) == name(o) }); i >= 0 {
			out[i] = o
		} else {
			out = append(out, o)
		}
	}
	return out
}

// limitSearches keeps the first search domains that fit MaxDNSSearchDomains and
// MaxDNSSearchListChars (the length of the "search" line's list, spaces included).
func limitSearches(searches []string) []string {
	chars := 0
	for i, s := range searches {
		if i > 0 {
			chars++ // separator
		}
		chars += len(s)
		if i >= MaxDNSSearchDomains || chars > MaxDNSSearchListChars {
			return searches[:i]
		}
	}
	return searches
}

// dedup drops repeated and empty entries, keeping the first of each.
func dedup(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, s := range list {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}
