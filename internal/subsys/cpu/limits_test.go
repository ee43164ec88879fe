// Tests of the kernel's arithmetic on cpu settings and of the online-CPU
// list parser.

package cpu

import (
	"testing"

	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
)

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
