package memory

import (
	"errors"
	"syscall"
	"testing"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{in: "-1", want: unlimited},
		{in: " -1\n", want: unlimited},
		{in: "\t1G \v\f\r", want: 1 << 30},    // strstrip's spaces
		{in: "1G\xa0", want: 1 << 30},         // Latin-1's no-break space is one
		{in: "1G\u00a0", err: syscall.EINVAL}, // UTF-8's is not: "1G\xc2" is left
		{in: "100M", want: 100 << 20},
		{in: "100m\n", want: 100 << 20},
		{in: "1G", want: 1 << 30},
		{in: "1g", want: 1 << 30},
		{in: "8K", want: 8192},
		{in: "8k", want: 8192},
		{in: "1T", want: 1 << 40},
		{in: "1p", want: 1 << 50},
		{in: "4096", want: 4096},
		{in: "4097", want: 4096}, // rounded down to a page
		{in: "8191", want: 4096}, // rounded down to a page
		{in: "1k", want: 0},      // less than a page
		{in: "0", want: 0},       // allowed: an empty container may have 0
		{in: "", want: 0},        // memparse of nothing is 0, as in the kernel
		{in: "0x100000", want: 1 << 20},
		{in: "0x1000k", want: 4 << 20}, // hex, then a suffix
		{in: "0x1e", want: 0},          // 30 bytes: 'e' is a hex digit here
		{in: "1e", want: 1 << 60},      // exbibytes
		{in: "010", want: 0},           // octal 8 bytes
		{in: "01000000", want: 256 << 10},
		{in: "9223372036854775807", want: unlimited},
		{in: "16E", want: 0},        // 2^64 wraps to 0, as memparse does
		{in: "8E", want: unlimited}, // 2^63: capped
		{in: "-2", err: syscall.EINVAL},
		{in: "-1k", err: syscall.EINVAL},
		{in: "max", err: syscall.EINVAL},
		{in: "1kB", err: syscall.EINVAL},
		{in: "1 M", err: syscall.EINVAL},
		{in: "1.5G", err: syscall.EINVAL},
		{in: "+1", err: syscall.EINVAL},
		{in: "08", err: syscall.EINVAL},
		{in: "0x", err: syscall.EINVAL},
		{in: "0xg", err: syscall.EINVAL},
		{in: "abc", err: syscall.EINVAL},
		{in: "1_000", err: syscall.EINVAL},
		{in: "10 20", err: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLimit(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseLimit(%q): got %d, %v, want error %v", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLimit(%q): got %d, %v, want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestUnlimitedIsKernelValue(t *testing.T) {
	if got, want := unlimited, int64(9223372036854771712); got != want {
		t.Fatalf("unlimited: got %d, want %d (PAGE_COUNTER_MAX * PAGE_SIZE)", got, want)
	}
}

func TestParseRollup(t *testing.T) {
	in := []byte(`561a884c9000-7fffb2662000 ---p 00000000 00:00 0                          [rollup]
Rss:                1748 kB
Pss:                 233 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            121 kB
Pss_Shmem:             4 kB
Shared_Clean:       1596 kB
Anonymous:           112 kB
AnonHugePages:      2048 kB
Swap:                  0 kB
SwapPss:               8 kB
Locked:               12 kB
`)
	got, err := parseRollup(in)
	if err != nil {
		t.Fatal(err)
	}
	want := rollup{rss: 1748 << 10, pss: 233 << 10, pssAnon: 112 << 10, pssFile: 121 << 10, pssShmem: 4 << 10,
		anonHuge: 2048 << 10, swapPss: 8 << 10, locked: 12 << 10, anonymous: 112 << 10, haveSplit: true}
	if got != want {
		t.Fatalf("parseRollup: got %+v, want %+v", got, want)
	}
	// Before Linux 5.8: no Pss_Anon; the split follows Rss's.
	old := []byte("Rss: 100 kB\nPss: 50 kB\nAnonymous: 40 kB\n")
	got, err = parseRollup(old)
	if err != nil {
		t.Fatal(err)
	}
	if got.pssAnon != 20<<10 || got.pssFile != 30<<10 {
		t.Fatalf("parseRollup without Pss_Anon: got anon %d file %d, want %d %d", got.pssAnon, got.pssFile, 20<<10, 30<<10)
	}
	if _, err := parseRollup([]byte("nothing\n")); err == nil {
		t.Fatal("parseRollup of garbage: got no error")
	}
}

func TestParseEventControl(t *testing.T) {
	tests := []struct {
		in       string
		efd, cfd int
		args     string
		ok       bool
	}{
		{in: "3 4", efd: 3, cfd: 4, ok: true},
		{in: "3 4\n", efd: 3, cfd: 4, ok: true},
		{in: "  3 4 10M\n", efd: 3, cfd: 4, args: "10M", ok: true},
		{in: "3 4 a b", efd: 3, cfd: 4, args: "a b", ok: true},
		{in: "3 4  x", efd: 3, cfd: 4, args: " x", ok: true},
		{in: "3", ok: false},
		{in: "3  4", efd: 3, cfd: 0, args: "4", ok: true},     // no digits: simple_strtoul's 0
		{in: "007 08 x", efd: 7, cfd: 8, args: "x", ok: true}, // base 10: leading zeros are not octal
		{in: "3\t4", ok: false},
		{in: "-3 4", ok: false},
		{in: "3 4x", ok: false},
		{in: "x 4", ok: false},
		{in: "", ok: false},
		{in: "99999999999 4", efd: 1215752191, cfd: 4, ok: true},   // an unsigned int, as the kernel's efd
		{in: "999999999999999999999 4", efd: -1, cfd: 4, ok: true}, // beyond 2^64: no descriptor (EBADF)
	}
	for _, tc := range tests {
		efd, cfd, args, err := parseEventControl(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseEventControl(%q): error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("parseEventControl(%q): %v, want EINVAL", tc.in, err)
			}
			continue
		}
		if efd != tc.efd || cfd != tc.cfd || args != tc.args {
			t.Errorf("parseEventControl(%q) = %d, %d, %q; want %d, %d, %q", tc.in, efd, cfd, args, tc.efd, tc.cfd, tc.args)
		}
	}
}

// A threshold of cgroup.event_control is page_counter_memparse of the args
// as they are: only the whole buffer was stripped.
func TestThresholdNotStripped(t *testing.T) {
	if v, err := pageCounterMemparse("1M"); err != nil || v != 1<<20 {
		t.Errorf(`pageCounterMemparse("1M") = %d, %v; want %d`, v, err, 1<<20)
	}
	for _, in := range []string{" 1M", "1M ", " -1"} {
		if _, err := pageCounterMemparse(in); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("pageCounterMemparse(%q): %v, want EINVAL", in, err)
		}
	}
}
