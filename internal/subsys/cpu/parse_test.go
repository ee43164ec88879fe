package cpu

import (
	"errors"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
)

func TestKstrto(t *testing.T) {
	tests := []struct {
		in   string
		u    uint64
		uerr error
		s    int64
		serr error
	}{
		{"0", 0, nil, 0, nil},
		{"512", 512, nil, 512, nil},
		{"512\n", 512, nil, 512, nil},
		{"512\n\n", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{" 512", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"512 ", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"+512", 512, nil, 512, nil},
		{"-512", 0, syscall.EINVAL, -512, nil},
		{"-+5", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"0x400", 1024, nil, 1024, nil},
		{"0X1f", 31, nil, 31, nil},
		{"0x", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"010", 8, nil, 8, nil},
		{"08", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"1e3", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"\n", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"abc", 0, syscall.EINVAL, 0, syscall.EINVAL},
		{"18446744073709551615", 1<<64 - 1, nil, 0, syscall.ERANGE},
		{"18446744073709551616", 0, syscall.ERANGE, 0, syscall.ERANGE},
		{"9223372036854775807", 1<<63 - 1, nil, 1<<63 - 1, nil},
		{"-9223372036854775808", 0, syscall.EINVAL, -1 << 63, nil},
		{"-9223372036854775809", 0, syscall.EINVAL, 0, syscall.ERANGE},
	}
	for _, tc := range tests {
		u, err := kstrtoull(tc.in)
		if !errors.Is(err, tc.uerr) || (err == nil && u != tc.u) {
			t.Errorf("kstrtoull(%q): got %d, %v; want %d, %v", tc.in, u, err, tc.u, tc.uerr)
		}
		s, err := kstrtoll(tc.in)
		if !errors.Is(err, tc.serr) || (err == nil && s != tc.s) {
			t.Errorf("kstrtoll(%q): got %d, %v; want %d, %v", tc.in, s, err, tc.s, tc.serr)
		}
	}
}

func TestClampShares(t *testing.T) {
	tests := []struct{ in, want uint64 }{
		{0, 2}, {1, 2}, {2, 2}, {3, 3}, {1024, 1024}, {262144, 262144}, {262145, 262144},
		{1 << 54, 262144}, {1<<64 - 1, 262144},
	}
	for _, tc := range tests {
		if got := clampShares(tc.in); got != tc.want {
			t.Errorf("clampShares(%d): got %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestToRatio(t *testing.T) {
	tests := []struct {
		period, runtime, want uint64
	}{
		{100e6, 50e6, 1 << 19},
		{100e6, 100e6, 1 << 20},
		{0, 5, 0},
		{100e6, runtimeInf, 1 << 20},
	}
	for _, tc := range tests {
		if got := toRatio(tc.period, tc.runtime); got != tc.want {
			t.Errorf("toRatio(%d, %d): got %d, want %d", tc.period, tc.runtime, got, tc.want)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in        string
		run, wait int64
		ok        bool
	}{
		{"631689 0 1\n", 631689, 0, true},
		{"9967111 53970729 26\n", 9967111, 53970729, true},
		{"12\n", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		run, wait, ok := parseSchedstat([]byte(tc.in))
		if run != tc.run || wait != tc.wait || ok != tc.ok {
			t.Errorf("parseSchedstat(%q): got %d %d %v, want %d %d %v", tc.in, run, wait, ok, tc.run, tc.wait, tc.ok)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want sched.Mask
		ok   bool
	}{
		{"0", sched.MaskOf(0), true},
		{"0-1", sched.MaskOf(0, 1), true},
		{"0-2,5,7-8", sched.MaskOf(0, 1, 2, 5, 7, 8), true},
		{"", sched.Mask{}, false},
		{"3-1", sched.Mask{}, false},
	}
	for _, tc := range tests {
		got, ok := parseCPUList(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseCPUList(%q): got %v %v, want %v %v", tc.in, got[0], ok, tc.want[0], tc.ok)
		}
	}
}
