package core

import (
	"fmt"
	"math"
	"strings"
	"syscall"
)

// The kernel's number parsers, as control files meet them. A cgroup file's
// write handler gets the written bytes as a C string (cut at the first NUL)
// of at most MaxWrite bytes. A u64 or s64 file (File.WriteU64, WriteS64)
// is parsed by kstrtoull or kstrtoll with base 0 on that string as it is:
// no whitespace is trimmed, but one trailing newline is allowed. Handlers
// that take a string and strstrip() it first (tasks, cgroup.procs, most
// list and flag files of the kernel's own write handlers) use Strstrip and
// then one of these.

// Kstrtoull is the kernel's kstrtoull(s, 0): an optional '+', then "0x"
// followed by a hex digit for hex, a leading '0' for octal, else decimal;
// then at most one '\n' and nothing else. EINVAL for anything else (no
// digits, junk after them), ERANGE on overflow (which the kernel checks
// before the junk).
func Kstrtoull(s string) (uint64, error) {
	return kstrtoull(strings.TrimPrefix(s, "+"), s)
}

// Kstrtoll is the kernel's kstrtoll(s, 0): an optional '-' (or '+'), then as
// Kstrtoull; ERANGE outside int64.
func Kstrtoll(s string) (int64, error) {
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		u, err := kstrtoull(rest, s) // "-+1" is EINVAL: only kstrtoull skips '+'
		if err != nil {
			return 0, err
		}
		if u > 1<<63 {
			return 0, fmt.Errorf("%q is out of range: %w", s, syscall.ERANGE)
		}
		return -int64(u), nil
	}
	u, err := Kstrtoull(s)
	if err != nil {
		return 0, err
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("%q is out of range: %w", s, syscall.ERANGE)
	}
	return int64(u), nil
}

// Kstrtouint is kstrtouint(s, 0): Kstrtoull limited to 32 bits (ERANGE).
func Kstrtouint(s string) (uint32, error) {
	v, err := Kstrtoull(s)
	if err != nil {
		return 0, err
	}
	if v > math.MaxUint32 {
		return 0, fmt.Errorf("%q is out of range: %w", s, syscall.ERANGE)
	}
	return uint32(v), nil
}

// Kstrtoint is kstrtoint(s, 0): Kstrtoll limited to 32 bits (ERANGE).
func Kstrtoint(s string) (int32, error) {
	v, err := Kstrtoll(s)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, fmt.Errorf("%q is out of range: %w", s, syscall.ERANGE)
	}
	return int32(v), nil
}

// kstrtoull is _kstrtoull(s, 0); orig is what the writer wrote, for the
// message.
func kstrtoull(s, orig string) (uint64, error) {
	base := uint64(10)
	switch {
	case len(s) >= 3 && s[0] == '0' && (s[1]|0x20) == 'x' && digitValue(s[2]) < 16:
		base, s = 16, s[2:]
	case len(s) >= 1 && s[0] == '0':
		base = 8
	}
	var v uint64
	overflow := false
	n := 0
	for ; n < len(s); n++ {
		d := digitValue(s[n])
		if d >= base {
			break
		}
		if v > (math.MaxUint64-d)/base {
			overflow = true
		}
		v = v*base + d
	}
	switch rest := s[n:]; {
	case overflow:
		return 0, fmt.Errorf("%q is out of range: %w", orig, syscall.ERANGE)
	case n == 0 || (rest != "" && rest != "\n"):
		return 0, fmt.Errorf("%q is not a number: %w", orig, syscall.EINVAL)
	}
	return v, nil
}

// digitValue is the value of a digit in bases up to 16, or 16 or more.
func digitValue(c byte) uint64 {
	switch lc := c | 0x20; {
	case '0' <= c && c <= '9':
		return uint64(c - '0')
	case 'a' <= lc && lc <= 'f':
		return uint64(lc-'a') + 10
	}
	return 16
}

// IsSpace is the kernel's isspace(): its ctype table is Latin-1, so besides
// '\t', '\n', '\v', '\f', '\r' and ' ' the byte 0xA0 (a no-break space) is
// a space, but a UTF-8 U+00A0 (0xC2 0xA0) is not two of them.
func IsSpace(c byte) bool {
	return c == ' ' || ('\t' <= c && c <= '\r') || c == 0xa0
}

// Strstrip is the kernel's strstrip(): s without leading and trailing
// kernel spaces.
func Strstrip(s string) string {
	i, j := 0, len(s)
	for i < j && IsSpace(s[i]) {
		i++
	}
	for j > i && IsSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// CString is data as a kernel write handler sees it: cut at the first NUL.
func CString(data string) string {
	if i := strings.IndexByte(data, 0); i >= 0 {
		return data[:i]
	}
	return data
}

// Memparse is the kernel's memparse (lib/cmdline.c), which size files
// (memory's and hugetlb's limit_in_bytes, through page_counter_memparse)
// take: SimpleStrtoull, then one optional suffix K, M, G, T, P or E in
// either case, each a power of 1024. It gives the value and what follows
// it; the caller decides whether anything may follow.
func Memparse(s string) (uint64, string) {
	v, rest := SimpleStrtoull(s)
	if rest == "" {
		return v, rest
	}
	shift := 0
	switch rest[0] | 0x20 {
	case 'e':
		shift = 60
	case 'p':
		shift = 50
	case 't':
		shift = 40
	case 'g':
		shift = 30
	case 'm':
		shift = 20
	case 'k':
		shift = 10
	default:
		return v, rest
	}
	return v << shift, rest[1:]
}

// SimpleStrtoull is the kernel's simple_strtoull(s, &end, 0), the parser
// of memparse and of a few legacy handlers: no sign and no whitespace; "0x"
// followed by a hex digit is hex, another leading 0 octal, else decimal.
// Unlike the kstrto family it stops at the first character that is not a
// digit of the base (possibly the first: then the value is 0) and wraps on
// overflow. It gives the value and the rest of s.
func SimpleStrtoull(s string) (uint64, string) {
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1]|0x20) == 'x' && digitValue(s[2]) < 16:
		base, s = 16, s[2:]
	case len(s) > 0 && s[0] == '0':
		base = 8
	}
	var v uint64
	i := 0
	for ; i < len(s); i++ {
		d := digitValue(s[i])
		if d >= base {
			break
		}
		v = v*base + d
	}
	return v, s[i:]
}
