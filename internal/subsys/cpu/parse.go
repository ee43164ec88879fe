package cpu

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
)

// The cpu files are cgroup v1 write_u64/write_s64 files: the kernel parses
// the written bytes with kstrtoull/kstrtoll, base 0, after nothing but
// allowing one trailing newline. Unlike the core's files there is no
// whitespace trimming: " 512" and "512 " are EINVAL (measured on this
// kernel, see parse_test.go). An overflow is ERANGE.

// kstrtoull parses as the kernel's kstrtoull(s, 0).
func kstrtoull(s string) (uint64, error) {
	s = strings.TrimPrefix(s, "+")
	return parseUint(s)
}

// kstrtoll parses as the kernel's kstrtoll(s, 0).
func kstrtoll(s string) (int64, error) {
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		u, err := parseUint(rest)
		if err != nil {
			return 0, err
		}
		if u > 1<<63 {
			return 0, fmt.Errorf("%q: %w", s, syscall.ERANGE)
		}
		return -int64(u), nil
	}
	u, err := kstrtoull(s)
	if err != nil {
		return 0, err
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("%q: %w", s, syscall.ERANGE)
	}
	return int64(u), nil
}

// parseUint is _kstrtoull: base prefix (0x hex, 0 octal), digits, at most
// one trailing newline, nothing else.
func parseUint(s string) (uint64, error) {
	orig := s
	base := 10
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		// The kernel takes "0x" as hex only when a hex digit follows;
		// otherwise the 0 is the number and the 'x' is junk.
		if len(s) > 2 && isDigit(s[2], 16) {
			base, s = 16, s[2:]
		} else {
			base = 8
		}
	case len(s) >= 1 && s[0] == '0':
		base = 8
	}
	var v uint64
	n := 0
	for n < len(s) && isDigit(s[n], base) {
		d := digit(s[n])
		if v > (math.MaxUint64-d)/uint64(base) {
			return 0, fmt.Errorf("%q: %w", orig, syscall.ERANGE)
		}
		v = v*uint64(base) + d
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%q is not a number: %w", orig, syscall.EINVAL)
	}
	rest := s[n:]
	if rest != "" && rest != "\n" {
		return 0, fmt.Errorf("%q is not a number: %w", orig, syscall.EINVAL)
	}
	return v, nil
}

func digit(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 99
}

func isDigit(c byte, base int) bool { return digit(c) < uint64(base) }

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

func formatQuota(quotaNS uint64) string {
	if quotaNS == runtimeInf {
		return "-1\n"
	}
	return strconv.FormatUint(quotaNS/nsecPerUsec, 10) + "\n"
}
