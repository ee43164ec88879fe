package cpulist

import (
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// Set is a set of CPU or memory-node numbers. The zero value is the empty
// set. Sets are values: no method changes its receiver.
type Set struct {
	w []uint64 // bit i is w[i/64]>>(i%64)&1; no trailing zero words
}

// Of is the set of the given numbers; negative ones are ignored.
func Of(ids ...int) Set {
	var w []uint64
	for _, id := range ids {
		if id < 0 {
			continue
		}
		w = setBit(w, uint64(id))
	}
	return Set{w: trim(w)}
}

// Range is the set lo..hi, inclusive; empty if hi < lo.
func Range(lo, hi int) Set {
	var w []uint64
	for i := max(lo, 0); i <= hi; i++ {
		w = setBit(w, uint64(i))
	}
	return Set{w: trim(w)}
}

// FromWords is the set whose bitmap is w, as sched_getaffinity fills it
// (bit i of word i/64; little-endian words as the kernel's unsigned longs).
func FromWords(w []uint64) Set {
	return Set{w: trim(append([]uint64(nil), w...))}
}

// Words is the bitmap of s in at least n words, for a system call.
func (s Set) Words(n int) []uint64 {
	w := make([]uint64, max(n, len(s.w)))
	copy(w, s.w)
	return w
}

func setBit(w []uint64, i uint64) []uint64 {
	for uint64(len(w)) <= i/64 {
		w = append(w, 0)
	}
	w[i/64] |= 1 << (i % 64)
	return w
}

func trim(w []uint64) []uint64 {
	for len(w) > 0 && w[len(w)-1] == 0 {
		w = w[:len(w)-1]
	}
	if len(w) == 0 {
		return nil
	}
	return w
}

// Has tells whether i is in s.
func (s Set) Has(i int) bool {
	return i >= 0 && i/64 < len(s.w) && s.w[i/64]&(1<<(uint(i)%64)) != 0
}

// IsEmpty tells whether s has no members.
func (s Set) IsEmpty() bool { return len(s.w) == 0 }

// Count is the number of members.
func (s Set) Count() int {
	n := 0
	for _, x := range s.w {
		n += bits.OnesCount64(x)
	}
	return n
}

// Max is the largest member, or -1 for the empty set.
func (s Set) Max() int {
	if len(s.w) == 0 {
		return -1
	}
	i := len(s.w) - 1
	return i*64 + 63 - bits.LeadingZeros64(s.w[i])
}

// List is the members in increasing order.
func (s Set) List() []int {
	var l []int
	for i, x := range s.w {
		for x != 0 {
			b := bits.TrailingZeros64(x)
			l = append(l, i*64+b)
			x &^= 1 << b
		}
	}
	return l
}

// Equal tells whether s and o have the same members.
func (s Set) Equal(o Set) bool {
	if len(s.w) != len(o.w) {
		return false
	}
	for i := range s.w {
		if s.w[i] != o.w[i] {
			return false
		}
	}
	return true
}

// SubsetOf tells whether every member of s is in o.
func (s Set) SubsetOf(o Set) bool {
	for i, x := range s.w {
		var y uint64
		if i < len(o.w) {
			y = o.w[i]
		}
		if x&^y != 0 {
			return false
		}
	}
	return true
}

// Intersects tells whether s and o have a member in common.
func (s Set) Intersects(o Set) bool {
	for i := 0; i < len(s.w) && i < len(o.w); i++ {
		if s.w[i]&o.w[i] != 0 {
			return true
		}
	}
	return false
}

// And is the intersection of s and o.
func (s Set) And(o Set) Set {
	w := make([]uint64, min(len(s.w), len(o.w)))
	for i := range w {
		w[i] = s.w[i] & o.w[i]
	}
	return Set{w: trim(w)}
}

// Or is the union of s and o.
func (s Set) Or(o Set) Set {
	w := make([]uint64, max(len(s.w), len(o.w)))
	copy(w, s.w)
	for i, x := range o.w {
		w[i] |= x
	}
	return Set{w: trim(w)}
}

// String is the list form the kernel prints with %*pbl: ascending ranges
// "a-b" or single numbers "a", separated by commas, "" for the empty set.
func (s Set) String() string {
	var b []byte
	l := s.List()
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(l[i]), 10)
		if j > i {
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(l[j]), 10)
		}
		i = j + 1
	}
	return string(b)
}

// region is one A-B:used/group of a list, as lib/bitmap-str.c holds it.
// The fields are 32-bit, as the kernel's are, so that its wrap-arounds
// (end+1 of 4294967295 is 0) give the same errors.
type region struct {
	start, off, groupLen, end uint32
}

// Parse reads a list as bitmap_parselist(s, mask, nbits) does: regions
// separated by commas or white space; a region is "A", "A-B", "A-B:U/G"
// (U bits of every group of G) or "all" (optionally with ":U/G"); "N" is
// nbits-1. Parsing stops at the end of the string, a NUL or a newline.
// Errors wrap EINVAL (bad syntax), ERANGE (a number at or beyond nbits) or
// EOVERFLOW (a number beyond 32 bits), as the kernel's do. nbits must be
// at least 1.
func Parse(s string, nbits int) (Set, error) {
	if nbits < 1 {
		panic("cpulist.Parse: nbits < 1")
	}
	lastbit := uint32(nbits - 1)
	var w []uint64
	i := 0
	for {
		// bitmap_find_region: commas and white space may lead a region.
		for i < len(s) && isRegionSep(s[i]) {
			i++
		}
		if endOfStr(s, i) {
			return Set{w: trim(w)}, nil
		}
		r, next, err := parseRegion(s, i, lastbit)
		if err != nil {
			return Set{}, fmt.Errorf("list %q: %w", s, err)
		}
		if r.start > r.end || r.groupLen == 0 || r.off > r.groupLen {
			return Set{}, fmt.Errorf("list %q: bad region: %w", s, syscall.EINVAL)
		}
		if uint64(r.end) >= uint64(nbits) {
			return Set{}, fmt.Errorf("list %q: %d is beyond %d: %w", s, r.end, nbits-1, syscall.ERANGE)
		}
		for start := uint64(r.start); start <= uint64(r.end); start += uint64(r.groupLen) {
			n := min(uint64(r.end)-start+1, uint64(r.off))
			for b := start; b < start+n; b++ {
				w = setBit(w, b)
			}
		}
		if next < 0 {
			return Set{w: trim(w)}, nil
		}
		i = next
	}
}

// parseRegion is bitmap_parse_region: it returns the region and where the
// next one may start, or -1 when the string ended with this region.
func parseRegion(s string, i int, lastbit uint32) (r region, next int, err error) {
	if len(s)-i >= 3 && strings.EqualFold(s[i:i+3], "all") {
		r.start, r.end = 0, lastbit
		i += 3
	} else {
		if r.start, i, err = getNum(s, i, lastbit); err != nil {
			return r, 0, err
		}
		if endOfRegion(s, i) {
			r.end = r.start
			return noPattern(r, s, i)
		}
		if s[i] != '-' {
			return r, 0, fmt.Errorf("%q at offset %d: %w", s[i], i, syscall.EINVAL)
		}
		if r.end, i, err = getNum(s, i+1, lastbit); err != nil {
			return r, 0, err
		}
	}
	// check_pattern
	if endOfRegion(s, i) {
		return noPattern(r, s, i)
	}
	if s[i] != ':' {
		return r, 0, fmt.Errorf("%q at offset %d: %w", s[i], i, syscall.EINVAL)
	}
	if r.off, i, err = getNum(s, i+1, lastbit); err != nil {
		return r, 0, err
	}
	if i >= len(s) || s[i] != '/' {
		return r, 0, fmt.Errorf("no '/' at offset %d: %w", i, syscall.EINVAL)
	}
	if r.groupLen, i, err = getNum(s, i+1, lastbit); err != nil {
		return r, 0, err
	}
	// The kernel returns the position after the group length as it is:
	// whatever follows is parsed as the next region.
	return r, i, nil
}

func noPattern(r region, s string, i int) (region, int, error) {
	r.off = r.end + 1
	r.groupLen = r.end + 1
	if endOfStr(s, i) {
		return r, -1, nil
	}
	return r, i, nil
}

// getNum is bitmap_getnum: "N" or a decimal number of at most 32 bits.
func getNum(s string, i int, lastbit uint32) (uint32, int, error) {
	if i < len(s) && s[i] == 'N' {
		return lastbit, i + 1, nil
	}
	// _parse_integer(s, 10, &n): every digit is consumed even after an
	// overflow, which is only reported.
	var n uint64
	overflow := false
	j := i
	for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
		d := uint64(s[j] - '0')
		if n > (math.MaxUint64-d)/10 {
			overflow = true
		}
		n = n*10 + d
	}
	if j == i {
		return 0, i, fmt.Errorf("no number at offset %d: %w", i, syscall.EINVAL)
	}
	if overflow || n > math.MaxUint32 {
		return 0, j, fmt.Errorf("%s: %w", s[i:j], syscall.EOVERFLOW)
	}
	return uint32(n), j, nil
}

func endOfStr(s string, i int) bool { return i >= len(s) || s[i] == 0 || s[i] == '\n' }

func isRegionSep(c byte) bool { return core.IsSpace(c) || c == ',' }

func endOfRegion(s string, i int) bool { return endOfStr(s, i) || isRegionSep(s[i]) }

// SysCPU and SysNode are where sysfs lists CPUs and memory nodes.
const (
	SysCPU  = "/sys/devices/system/cpu"
	SysNode = "/sys/devices/system/node"
)

// sysfsBits is the width used to parse lists the kernel itself wrote.
const sysfsBits = 1 << 20

// ReadFile reads a list file such as /sys/devices/system/cpu/online.
func ReadFile(path string) (Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Set{}, err
	}
	s, err := Parse(core.Strstrip(string(b)), sysfsBits)
	if err != nil {
		return Set{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// PossibleCPUs is the kernel's nr_cpu_ids: one more than the highest
// possible CPU (/sys/devices/system/cpu/possible). Per-CPU tables and CPU
// masks are this wide.
func PossibleCPUs() (int, error) {
	s, err := ReadFile(SysCPU + "/possible")
	if err != nil {
		return 0, err
	}
	if s.IsEmpty() {
		return 0, fmt.Errorf("%s/possible is empty", SysCPU)
	}
	return s.Max() + 1, nil
}

// OnlineCPUs is /sys/devices/system/cpu/online.
func OnlineCPUs() (Set, error) { return ReadFile(SysCPU + "/online") }
