package cgroups

import (
	"math"
	"testing"
)

// The kubelet's published formulas: shares = milliCPU*1024/1000 within [2, 262144]; quota =
// milliCPU*period/1000, at least 1000 µs; weight per runc >= 1.3.2 / crun >= 1.23.
func TestMilliCPUToShares(t *testing.T) {
	for _, tt := range []struct {
		milli int64
		want  uint64
	}{{0, 2}, {-1, 2}, {1, 2}, {2, 2}, {3, 3}, {10, 10}, {100, 102}, {150, 153}, {250, 256}, {1000, 1024}, {2000, 2048}, {256000, 262144}, {300000, 262144}} {
		if got := MilliCPUToShares(tt.milli); got != tt.want {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", tt.milli, got, tt.want)
		}
	}
}

func TestMilliCPUToQuota(t *testing.T) {
	for _, tt := range []struct{ milli, period, want int64 }{
		{0, 100000, 0}, {1, 100000, 1000}, {10, 100000, 1000}, {11, 100000, 1100},
		{250, 100000, 25000}, {1000, 100000, 100000}, {1500, 100000, 150000}, {500, 0, 0},
	} {
		if got := MilliCPUToQuota(tt.milli, tt.period); got != tt.want {
			t.Errorf("MilliCPUToQuota(%d, %d) = %d, want %d", tt.milli, tt.period, got, tt.want)
		}
	}
}

func TestSharesToWeight(t *testing.T) {
	// Values published with the formula (kubernetes.io blog "New Conversion from cgroup v1 CPU
	// Shares to v2 CPU Weight", and runc's and crun's tests).
	for _, tt := range []struct{ shares, want uint64 }{
		{0, 0}, {1, 1}, {2, 1}, {1024, 100}, {262144, 10000}, {300000, 10000},
		// shares -> weight pairs from the published table (inputs as shares)
		{100, 17}, {500, 58}, {2000, 170},
	} {
		if got := SharesToWeight(tt.shares); got != tt.want {
			t.Errorf("SharesToWeight(%d) = %d, want %d", tt.shares, got, tt.want)
		}
	}
	// Monotonic and within [1, 10000] over the whole range.
	prev := uint64(0)
	for s := uint64(2); s <= MaxShares; s += 97 {
		w := SharesToWeight(s)
		if w < prev || w < MinWeight || w > MaxWeight {
			t.Fatalf("SharesToWeight(%d) = %d after %d", s, w, prev)
		}
		prev = w
	}
	// The formula itself, at a point in the middle.
	l := math.Log2(4096)
	if want := uint64(math.Ceil(math.Pow(10, (l*l+125*l)/612-7.0/34))); SharesToWeight(4096) != want {
		t.Errorf("SharesToWeight(4096) = %d, want %d", SharesToWeight(4096), want)
	}
}
