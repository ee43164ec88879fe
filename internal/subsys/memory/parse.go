package memory

// Sizes as the memory files take and print them: limit_in_bytes's
// page_counter_memparse and memparse.

import (
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// pageSize is the kernel's PAGE_SIZE here. Limits are kept in bytes, always
// a whole number of pages, as the kernel keeps them in pages.
const pageSize = 4096

// unlimited is PAGE_COUNTER_MAX pages in bytes: what an unlimited
// limit_in_bytes reads (LONG_MAX / PAGE_SIZE pages).
const unlimited int64 = (1<<63 - 1) / pageSize * pageSize

// ParseLimit parses a write to limit_in_bytes or soft_limit_in_bytes as the
// kernel's mem_cgroup_write does (mm/memcontrol-v1.c, then
// page_counter_memparse in mm/page_counter.c): the buffer is stripped
// (strstrip, whose spaces are Latin-1's); exactly "-1" is
// unlimited; otherwise memparse (simple_strtoull with base 0, then one
// optional suffix k, m, g, t, p or e in either case, each a power of 1024)
// must consume the whole buffer, else EINVAL. The byte count is rounded down
// to a page and capped at the unlimited value. Like the kernel, an empty
// buffer is 0, and values that overflow 64 bits wrap.
func ParseLimit(data string) (int64, error) {
	return pageCounterMemparse(core.Strstrip(data))
}

// pageCounterMemparse is page_counter_memparse(s, "-1"), on s as it is.
func pageCounterMemparse(s string) (int64, error) {
	if s == "-1" {
		return unlimited, nil
	}
	v, rest := memparse(s)
	if rest != "" {
		return 0, fmt.Errorf("%q is not a size: %w", s, syscall.EINVAL)
	}
	pages := v / pageSize
	if pages > uint64(unlimited/pageSize) {
		return unlimited, nil
	}
	return int64(pages) * pageSize, nil
}

// memparse is the kernel's memparse (lib/cmdline.c): the number and what
// follows it. It is not a kstrto parser: simple_strtoull stops at the first
// character that is not a digit, and the suffix is read from there.
func memparse(s string) (uint64, string) {
	v, rest := simpleStrtoull(s)
	if rest == "" {
		return v, rest
	}
	shift := 0
	switch rest[0] {
	case 'E', 'e':
		shift = 60
	case 'P', 'p':
		shift = 50
	case 'T', 't':
		shift = 40
	case 'G', 'g':
		shift = 30
	case 'M', 'm':
		shift = 20
	case 'K', 'k':
		shift = 10
	default:
		return v, rest
	}
	return v << shift, rest[1:]
}

// simpleStrtoull is simple_strtoull(s, &end, 0): no sign, no whitespace;
// "0x" followed by a hex digit is hex, another leading 0 octal, else
// decimal; it stops at the first character that is not a digit of the base
// (possibly the first one: then the value is 0) and wraps on overflow.
func simpleStrtoull(s string) (uint64, string) {
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]):
		base, s = 16, s[2:]
	case len(s) > 0 && s[0] == '0':
		base = 8
	}
	var v uint64
	i := 0
	for ; i < len(s); i++ {
		d, ok := digit(s[i])
		if !ok || d >= base {
			break
		}
		v = v*base + d
	}
	return v, s[i:]
}

func digit(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

func isHex(c byte) bool {
	_, ok := digit(c)
	return ok
}

// formatBytes prints a byte count as the kernel's read_u64 files do.
func formatBytes(v int64) string {
	return fmt.Sprintf("%d\n", v)
}
