// The kernel's arithmetic on cpu settings: how shares are clamped, the
// bounds of bandwidth settings, and quota/period ratios.

package cpu

import "math"

// clampShares is cpu_shares_write_u64 and sched_group_set_shares: a value
// too large to scale becomes MAX_SHARES, then the weight is clamped to
// [MIN_SHARES, MAX_SHARES]. Out-of-range values are not refused.
func clampShares(v uint64) uint64 {
	if v > math.MaxUint64>>10 {
		return MaxShares
	}
	return min(max(v, MinShares), MaxShares)
}

// Bandwidth limits of tg_set_cfs_bandwidth, in ns.
const (
	runtimeInf      = math.MaxUint64
	minCfsPeriod    = 1e6               // min_cfs_quota_period: 1 ms
	maxCfsPeriod    = 1e9               // max_cfs_quota_period: 1 s
	maxCfsRuntime   = (1<<44 - 1) * 1e3 // MAX_BW µs, in ns
	bwShift         = 20
	nsecPerUsec     = 1000
	maxUsecToNsecOK = math.MaxUint64 / nsecPerUsec
)

// toRatio is the kernel's to_ratio: runtime/period in 2^-20 units, with
// its u64 arithmetic (it wraps for the largest quotas, as the kernel's
// does).
func toRatio(period, runtime uint64) uint64 {
	if runtime == runtimeInf {
		return 1 << bwShift
	}
	if period == 0 {
		return 0
	}
	return (runtime << bwShift) / period
}
