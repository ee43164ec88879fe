package core

import (
	"errors"
	"strconv"
	"syscall"
	"testing"
)

// The rows are what this kernel's kstrtoull(buf, 0) and kstrtoll(buf, 0)
// answer (lib/kstrtox.c): the written cgroup v1 files (write_u64,
// write_s64) see exactly these.
func TestKstrtoull(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  syscall.Errno
	}{
		{"0", 0, 0},
		{"1", 1, 0},
		{"1\n", 1, 0},
		{"+1", 1, 0},
		{"0x10", 16, 0},
		{"0X1f", 31, 0},
		{"010", 8, 0},
		{"00", 0, 0},
		{"18446744073709551615", 1<<64 - 1, 0},
		{"0xffffffffffffffff", 1<<64 - 1, 0},
		{"01777777777777777777777", 1<<64 - 1, 0},
		{"18446744073709551616", 0, syscall.ERANGE},
		{"99999999999999999999999x", 0, syscall.ERANGE}, // overflow is seen before the junk
		{"0x10000000000000000", 0, syscall.ERANGE},
		{"", 0, syscall.EINVAL},
		{"\n", 0, syscall.EINVAL},
		{"1\n\n", 0, syscall.EINVAL},
		{" 1", 0, syscall.EINVAL},
		{"1 ", 0, syscall.EINVAL},
		{"-1", 0, syscall.EINVAL},
		{"++1", 0, syscall.EINVAL},
		{"08", 0, syscall.EINVAL},
		{"0x", 0, syscall.EINVAL}, // "0" then junk: the prefix needs a hex digit after it
		{"0xg", 0, syscall.EINVAL},
		{"1_000", 0, syscall.EINVAL},
		{"0b11", 0, syscall.EINVAL},
		{"0o17", 0, syscall.EINVAL},
		{"1k", 0, syscall.EINVAL},
		{"1.0", 0, syscall.EINVAL},
	}
	for _, tc := range tests {
		got, err := Kstrtoull(tc.in)
		check(t, "Kstrtoull", tc.in, err, tc.err)
		if tc.err == 0 && got != tc.want {
			t.Errorf("Kstrtoull(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestKstrtoll(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  syscall.Errno
	}{
		{"-1", -1, 0},
		{"-1\n", -1, 0},
		{"+5", 5, 0},
		{"-0x10", -16, 0},
		{"-010", -8, 0},
		{"9223372036854775807", 1<<63 - 1, 0},
		{"-9223372036854775808", -1 << 63, 0},
		{"9223372036854775808", 0, syscall.ERANGE},
		{"-9223372036854775809", 0, syscall.ERANGE},
		{"-18446744073709551616", 0, syscall.ERANGE},
		{"-+1", 0, syscall.EINVAL},
		{"--1", 0, syscall.EINVAL},
		{"+-1", 0, syscall.EINVAL},
		{"-", 0, syscall.EINVAL},
		{" -1", 0, syscall.EINVAL},
	}
	for _, tc := range tests {
		got, err := Kstrtoll(tc.in)
		check(t, "Kstrtoll", tc.in, err, tc.err)
		if tc.err == 0 && got != tc.want {
			t.Errorf("Kstrtoll(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestKstrto32(t *testing.T) {
	if v, err := Kstrtouint("4294967295"); err != nil || v != 1<<32-1 {
		t.Errorf("Kstrtouint(max) = %d, %v", v, err)
	}
	if _, err := Kstrtouint("4294967296"); !errors.Is(err, syscall.ERANGE) {
		t.Errorf("Kstrtouint(max+1): %v, want ERANGE", err)
	}
	if v, err := Kstrtoint("-2147483648"); err != nil || v != -1<<31 {
		t.Errorf("Kstrtoint(min) = %d, %v", v, err)
	}
	for _, in := range []string{"2147483648", "-2147483649"} {
		if _, err := Kstrtoint(in); !errors.Is(err, syscall.ERANGE) {
			t.Errorf("Kstrtoint(%q): %v, want ERANGE", in, err)
		}
	}
}

func TestStrstrip(t *testing.T) {
	tests := map[string]string{
		"":              "",
		" \t\n\v\f\r":   "",
		"  a b \n":      "a b",
		"\xa0x\xa0":     "x",             // Latin-1 no-break space
		"x\xc2\xa0":     "x\xc2",         // UTF-8 U+00A0: its first byte stays
		"\x85x":         "\x85x",         // NEL is no kernel space
		"\u2003x\u2003": "\u2003x\u2003", // nor is an em space
	}
	for in, want := range tests {
		if got := Strstrip(in); got != want {
			t.Errorf("Strstrip(%q) = %q, want %q", in, got, want)
		}
	}
	if got := CString("1\x00junk"); got != "1" {
		t.Errorf("CString = %q", got)
	}
}

func check(t *testing.T, fn, in string, err error, want syscall.Errno) {
	t.Helper()
	switch {
	case want == 0 && err != nil:
		t.Errorf("%s(%s): %v, want no error", fn, strconv.Quote(in), err)
	case want != 0 && !errors.Is(err, want):
		t.Errorf("%s(%s): %v, want %v", fn, strconv.Quote(in), err, want)
	}
}

func TestMemparse(t *testing.T) {
	tests := []struct {
		in, rest string
		want     uint64
	}{
		{"", "", 0},
		{"x", "x", 0}, // no digits: 0, and all of it left
		{"4096", "", 4096},
		{"1k", "", 1 << 10},
		{"1K", "", 1 << 10},
		{"2m", "", 2 << 20},
		{"1G", "", 1 << 30},
		{"1t", "", 1 << 40},
		{"1P", "", 1 << 50},
		{"1e", "", 1 << 60},
		{"1kb", "b", 1 << 10},
		{"0x10k", "", 16 << 10},
		{"010", "", 8},
		{"08", "8", 0}, // octal stops at 8
		{"0x", "x", 0}, // "0x" needs a hex digit after it to be hex
		{"1 ", " ", 1},
		{"-1", "-1", 0},
		{"18446744073709551616", "", 0}, // wraps, as simple_strtoull
	}
	for _, tc := range tests {
		v, rest := Memparse(tc.in)
		if v != tc.want || rest != tc.rest {
			t.Errorf("Memparse(%q) = %d, %q; want %d, %q", tc.in, v, rest, tc.want, tc.rest)
		}
	}
}
