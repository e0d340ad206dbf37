package cri

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ResolvConf
	}{
		{"empty", "", ResolvConf{}},
		{"typical", "# generated\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch example.com corp.example.com.\noptions ndots:2 edns0\n",
			ResolvConf{Servers: []string{"1.1.1.1", "8.8.8.8"}, Searches: []string{"example.com", "corp.example.com"}, Options: []string{"ndots:2", "edns0"}}},
		{"comments and junk", "; comment\n  # indented comment\nnameserver\nbogus line\n\tnameserver   9.9.9.9  # trailing\n",
			ResolvConf{Servers: []string{"9.9.9.9"}}},
		{"last search wins", "search a.com b.com\nsearch c.com\n", ResolvConf{Searches: []string{"c.com"}}},
		{"domain", "search a.com b.com\ndomain d.com\n", ResolvConf{Searches: []string{"d.com"}}},
		{"search after domain", "domain d.com\nsearch a.com b.com\n", ResolvConf{Searches: []string{"a.com", "b.com"}}},
		{"root search", "search .\n", ResolvConf{}},
		{"options add up", "options ndots:1 timeout:2\noptions ndots:3 rotate\n", ResolvConf{Options: []string{"ndots:3", "timeout:2", "rotate"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseResolvConf([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseResolvConf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDNSConfigForPod(t *testing.T) {
	host := ResolvConf{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example.com"}, Options: []string{"timeout:2"}}
	hostCfg := &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example.com"}, Options: []string{"timeout:2"}}
	clusterCfg := &runtimeapi.DNSConfig{
		Servers:  []string{"10.96.0.10"},
		Searches: []string{"prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example.com"},
		Options:  []string{"ndots:5"},
	}
	clusterDNS := []string{"10.96.0.10"}
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("d%d.example.com", i)
	}
	long := make([]string, 10)
	for i := range long {
		long[i] = strings.Repeat(string(rune('a'+i)), 250) // 10 x 251 characters > 2048
	}

	tests := []struct {
		name          string
		policy        v1.DNSPolicy
		hostNetwork   bool
		podDNS        *v1.PodDNSConfig
		host          ResolvConf
		clusterDNS    []string
		clusterDomain string
		want          *runtimeapi.DNSConfig
		wantErr       bool
	}{
		{name: "Default", policy: v1.DNSDefault, clusterDNS: clusterDNS, clusterDomain: "cluster.local", want: hostCfg},
		{name: "ClusterFirst", policy: v1.DNSClusterFirst, clusterDNS: clusterDNS, clusterDomain: "cluster.local", want: clusterCfg},
		{name: "empty policy is ClusterFirst", clusterDNS: clusterDNS, clusterDomain: "cluster.local", want: clusterCfg},
		{name: "ClusterFirst without cluster DNS falls back to Default", policy: v1.DNSClusterFirst, clusterDomain: "cluster.local", want: hostCfg},
		{name: "ClusterFirst on host network is Default", policy: v1.DNSClusterFirst, hostNetwork: true, clusterDNS: clusterDNS, clusterDomain: "cluster.local", want: hostCfg},
		{name: "ClusterFirstWithHostNet on host network", policy: v1.DNSClusterFirstWithHostNet, hostNetwork: true, clusterDNS: clusterDNS, clusterDomain: "cluster.local", want: clusterCfg},
		{name: "ClusterFirstWithHostNet on pod network", policy: v1.DNSClusterFirstWithHostNet, clusterDNS: clusterDNS, clusterDomain: "cluster.local", want: clusterCfg},
		{name: "ClusterFirstWithHostNet without cluster DNS", policy: v1.DNSClusterFirstWithHostNet, hostNetwork: true, want: hostCfg},
		{name: "ClusterFirst without cluster domain", policy: v1.DNSClusterFirst, clusterDNS: clusterDNS,
			want: &runtimeapi.DNSConfig{Servers: clusterDNS, Searches: []string{"corp.example.com"}, Options: []string{"ndots:5"}}},
		{name: "None without dnsConfig", policy: v1.DNSNone, clusterDNS: clusterDNS, want: &runtimeapi.DNSConfig{}},
		{name: "None with dnsConfig", policy: v1.DNSNone, clusterDNS: clusterDNS, clusterDomain: "cluster.local",
			podDNS: &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"my.dns.search"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}}},
			want:   &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}, Searches: []string{"my.dns.search"}, Options: []string{"ndots:2", "edns0"}}},
		{name: "ClusterFirst merged with dnsConfig", policy: v1.DNSClusterFirst, clusterDNS: clusterDNS, clusterDomain: "cluster.local",
			podDNS: &v1.PodDNSConfig{
				Nameservers: []string{"1.1.1.1", "10.96.0.10"},
				Searches:    []string{"my.dns.search", "svc.cluster.local"},
				Options:     []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}, {Name: "single-request-reopen"}},
			},
			want: &runtimeapi.DNSConfig{
				Servers:  []string{"10.96.0.10", "1.1.1.1"},
				Searches: []string{"my.dns.search", "svc.cluster.local", "prod.svc.cluster.local", "cluster.local", "corp.example.com"},
				Options:  []string{"ndots:1", "single-request-reopen"},
			}},
		{name: "Default merged with dnsConfig", policy: v1.DNSDefault,
			podDNS: &v1.PodDNSConfig{Options: []v1.PodDNSConfigOption{{Name: "timeout", Value: ptr.To("5")}, {Name: "attempts", Value: ptr.To("3")}}},
			want:   &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example.com"}, Options: []string{"timeout:5", "attempts:3"}}},
		{name: "at most 3 nameservers", policy: v1.DNSDefault,
			host:   ResolvConf{Servers: []string{"1.1.1.1", "2.2.2.2"}},
			podDNS: &v1.PodDNSConfig{Nameservers: []string{"3.3.3.3", "4.4.4.4"}},
			want:   &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3"}}},
		{name: "at most 32 search domains", policy: v1.DNSClusterFirst, clusterDNS: clusterDNS, clusterDomain: "cluster.local",
			host: ResolvConf{Searches: many},
			want: &runtimeapi.DNSConfig{Servers: clusterDNS, Options: []string{"ndots:5"},
				Searches: append([]string{"prod.svc.cluster.local", "svc.cluster.local", "cluster.local"}, many[:29]...)}},
		{name: "search list within 2048 characters", policy: v1.DNSDefault, host: ResolvConf{Searches: long},
			want: &runtimeapi.DNSConfig{Searches: long[:8]}},
		{name: "unknown policy", policy: "Sometimes", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "prod"},
				Spec:       v1.PodSpec{DNSPolicy: tt.policy, HostNetwork: tt.hostNetwork, DNSConfig: tt.podDNS},
			}
			h := host
			if tt.host.Servers != nil || tt.host.Searches != nil || tt.host.Options != nil {
				h = tt.host
			}
			got, err := DNSConfigForPod(p, h, tt.clusterDNS, tt.clusterDomain)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !equalDNS(got, tt.want) {
				t.Errorf("DNSConfigForPod =\n  %v\nwant\n  %v", got, tt.want)
			}
		})
	}
}

func equalDNS(a, b *runtimeapi.DNSConfig) bool {
	eq := func(x, y []string) bool { return len(x) == len(y) && (len(x) == 0 || reflect.DeepEqual(x, y)) }
	return eq(a.Servers, b.Servers) && eq(a.Searches, b.Searches) && eq(a.Options, b.Options)
}

// The host's slices must not be shared with the result: callers keep one ResolvConf for every pod.
func TestDNSConfigForPodDoesNotAliasHost(t *testing.T) {
	host := ResolvConf{Servers: []string{"1.1.1.1"}, Searches: []string{"a.com", "b.com"}, Options: []string{"ndots:1"}}
	p := &v1.Pod{Spec: v1.PodSpec{DNSPolicy: v1.DNSDefault, DNSConfig: &v1.PodDNSConfig{
		Nameservers: []string{"2.2.2.2"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("4")}}}}}
	cfg, err := DNSConfigForPod(p, host, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Servers[0], cfg.Searches[0] = "x", "x"
	if host.Servers[0] != "1.1.1.1" || host.Searches[0] != "a.com" || host.Options[0] != "ndots:1" {
		t.Errorf("host resolv.conf changed: %+v", host)
	}
}
