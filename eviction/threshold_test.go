package eviction

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

func TestParseThresholds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      map[string]string
		want    []string // signal=value, in Signals order
		wantErr string
	}{
		{name: "nil is the kubelet's defaults", in: nil,
			want: []string{"memory.available=100Mi", "nodefs.available=10%", "nodefs.inodesFree=5%", "imagefs.available=15%"}},
		{name: "a given map replaces the defaults", in: map[string]string{"memory.available": "1Gi"}, want: []string{"memory.available=1Gi"}},
		{name: "every signal, ordered memory, pids, disk",
			in:   map[string]string{"imagefs.inodesFree": "1%", "pid.available": "5%", "nodefs.available": "2.5%", "memory.available": "500Mi"},
			want: []string{"memory.available=500Mi", "pid.available=5%", "nodefs.available=2.5%", "imagefs.inodesFree=1%"}},
		{name: "zero thresholds are dropped", in: map[string]string{"memory.available": "0", "nodefs.available": "0%", "pid.available": "1000"},
			want: []string{"pid.available=1k"}},
		{name: "unknown signal", in: map[string]string{"memory.free": "1Gi"}, wantErr: `unknown signal "memory.free"`},
		{name: "bad percentage", in: map[string]string{"nodefs.available": "110%"}, wantErr: `nodefs.available: "110%" is not a percentage`},
		{name: "bad quantity", in: map[string]string{"memory.available": "lots"}, wantErr: `memory.available: "lots" is neither a quantity nor a percentage`},
		{name: "negative", in: map[string]string{"memory.available": "-1Mi"}, wantErr: "neither a quantity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseThresholds(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, th := range got {
				s = append(s, string(th.Signal)+"="+th.String())
			}
			if strings.Join(s, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func TestThresholdMet(t *testing.T) {
	gi := func(s string) resource.Quantity { return resource.MustParse(s) }
	ts, err := ParseThresholds(map[string]string{"memory.available": "100Mi", "nodefs.available": "10%"})
	if err != nil {
		t.Fatal(err)
	}
	mem, fs := ts[0], ts[1]
	for _, tc := range []struct {
		th   Threshold
		obs  Observation
		want bool
	}{
		{mem, Observation{Available: gi("99Mi"), Capacity: gi("8Gi")}, true},
		{mem, Observation{Available: gi("100Mi"), Capacity: gi("8Gi")}, false}, // met only below
		{fs, Observation{Available: gi("9Gi"), Capacity: gi("100Gi")}, true},
		{fs, Observation{Available: gi("10Gi"), Capacity: gi("100Gi")}, false},
	} {
		if got := tc.th.Met(tc.obs); got != tc.want {
			t.Errorf("%s<%s with %s of %s: met %v, want %v", tc.th.Signal, tc.th, tc.obs.Available.String(), tc.obs.Capacity.String(), got, tc.want)
		}
	}
}
