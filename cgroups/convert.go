package cgroups

import "math"

// CPU constants of the kubelet's documented resource policy.
const (
	// MinShares and MaxShares bound cpu.shares (the kernel's limits on cgroup v1).
	MinShares = 2
	MaxShares = 262144
	// SharesPerCPU is cpu.shares for one full CPU.
	SharesPerCPU = 1024
	// QuotaPeriod is the CFS period (µs) used with a CPU limit, and MinQuota the smallest quota
	// the kernel accepts for it (1 ms).
	QuotaPeriod = 100000
	MinQuota    = 1000

	// MinWeight and MaxWeight bound cpu.weight on cgroup v2.
	MinWeight = 1
	MaxWeight = 10000

	milliCPUPerCPU = 1000
)

// MilliCPUToShares converts a CPU amount in millicores to cpu.shares: 1024 per CPU, at least
// MinShares (also for 0, no CPU request) and at most MaxShares.
func MilliCPUToShares(milli int64) uint64 {
	if milli <= 0 {
		return MinShares
	}
	shares := milli * SharesPerCPU / milliCPUPerCPU
	switch {
	case shares < MinShares:
		return MinShares
	case shares > MaxShares:
		return MaxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a CPU limit in millicores to a CFS quota (µs per period µs). A limit of
// 0 means no limit and gives quota 0 (unlimited); a set limit never gives less than MinQuota.
func MilliCPUToQuota(milli, period int64) int64 {
	if milli <= 0 || period <= 0 {
		return 0
	}
	quota := milli * period / milliCPUPerCPU
	if quota < MinQuota {
		return MinQuota
	}
	return quota
}

// SharesToWeight converts cgroup v1 cpu.shares to cgroup v2 cpu.weight with the formula the OCI
// runtimes use today (runc >= 1.3.2, crun >= 1.23; opencontainers/runc#4785):
//
//	weight = ceil(10^((L² + 125·L)/612 − 7/34)),  L = log2(shares)
//
// It maps 2 → 1, 1024 (one CPU, v1's default) → 100 (v2's default) and 262144 → 10000. The older
// linear formula, 1 + (shares−2)·9999/262142, gave one CPU a weight of 39, below every process
// outside Kubernetes. 0 (unset) stays 0.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares <= MinShares {
		return MinWeight
	}
	if shares >= MaxShares {
		return MaxWeight
	}
	l := math.Log2(float64(shares))
	exponent := (l*l+125*l)/612.0 - 7.0/34.0
	w := uint64(math.Ceil(math.Pow(10, exponent)))
	return min(max(w, MinWeight), MaxWeight)
}
