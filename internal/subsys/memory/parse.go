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
	v, rest := core.Memparse(s)
	if rest != "" {
		return 0, fmt.Errorf("%q is not a size: %w", s, syscall.EINVAL)
	}
	pages := v / pageSize
	if pages > uint64(unlimited/pageSize) {
		return unlimited, nil
	}
	return int64(pages) * pageSize, nil
}

// formatBytes prints a byte count as the kernel's read_u64 files do.
func formatBytes(v int64) string {
	return fmt.Sprintf("%d\n", v)
}
