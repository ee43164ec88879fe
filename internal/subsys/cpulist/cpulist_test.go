package cpulist

import (
	"errors"
	"slices"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		nbits int
		want  []int
		errno syscall.Errno
	}{
		{name: "empty", in: "", nbits: 8, want: nil},
		{name: "single", in: "3", nbits: 8, want: []int{3}},
		{name: "range", in: "0-3", nbits: 8, want: []int{0, 1, 2, 3}},
		{name: "range and single", in: "0-3,7", nbits: 8, want: []int{0, 1, 2, 3, 7}},
		{name: "unordered and overlapping", in: "5,1-3,2", nbits: 8, want: []int{1, 2, 3, 5}},
		{name: "leading comma", in: ",1", nbits: 8, want: []int{1}},
		{name: "trailing comma", in: "1,", nbits: 8, want: []int{1}},
		{name: "only commas", in: ",,", nbits: 8, want: nil},
		{name: "spaces separate regions", in: "1 3\t5", nbits: 8, want: []int{1, 3, 5}},
		{name: "newline ends the list", in: "1\n5", nbits: 8, want: []int{1}},
		{name: "NUL ends the list", in: "1\x005", nbits: 8, want: []int{1}},
		{name: "N is the last bit", in: "N", nbits: 8, want: []int{7}},
		{name: "range to N", in: "5-N", nbits: 8, want: []int{5, 6, 7}},
		{name: "all", in: "all", nbits: 4, want: []int{0, 1, 2, 3}},
		{name: "ALL any case", in: "AlL", nbits: 2, want: []int{0, 1}},
		{name: "group pattern", in: "0-7:2/4", nbits: 8, want: []int{0, 1, 4, 5}},
		{name: "all with pattern", in: "all:1/2", nbits: 6, want: []int{0, 2, 4}},
		{name: "group pattern then region", in: "0-3:1/2,7", nbits: 8, want: []int{0, 2, 7}},
		{name: "group pattern glued to region", in: "0-3:1/2 7", nbits: 8, want: []int{0, 2, 7}},
		{name: "last CPU", in: "1", nbits: 2, want: []int{1}},
		{name: "large", in: "1000-1002", nbits: 2048, want: []int{1000, 1001, 1002}},

		{name: "beyond the mask", in: "2", nbits: 2, errno: syscall.ERANGE},
		{name: "range beyond the mask", in: "0-8", nbits: 8, errno: syscall.ERANGE},
		{name: "backwards range", in: "3-1", nbits: 8, errno: syscall.EINVAL},
		{name: "letters", in: "abc", nbits: 8, errno: syscall.EINVAL},
		{name: "trailing letter", in: "1x", nbits: 8, errno: syscall.EINVAL},
		{name: "negative", in: "-1", nbits: 8, errno: syscall.EINVAL},
		{name: "plus sign", in: "+1", nbits: 8, errno: syscall.EINVAL},
		{name: "open range", in: "1-", nbits: 8, errno: syscall.EINVAL},
		{name: "double dash", in: "1--3", nbits: 8, errno: syscall.EINVAL},
		{name: "spaced dash", in: "1 - 3", nbits: 8, errno: syscall.EINVAL},
		{name: "hex", in: "0x1", nbits: 8, errno: syscall.EINVAL},
		{name: "pattern without slash", in: "0-3:1", nbits: 8, errno: syscall.EINVAL},
		{name: "pattern zero group", in: "0-3:1/0", nbits: 8, errno: syscall.EINVAL},
		{name: "pattern used above group", in: "0-3:3/2", nbits: 8, errno: syscall.EINVAL},
		{name: "single with pattern", in: "3:1/2", nbits: 8, errno: syscall.EINVAL},
		{name: "beyond 32 bits", in: "4294967296", nbits: 8, errno: syscall.EOVERFLOW},
		{name: "beyond 64 bits", in: "99999999999999999999999", nbits: 8, errno: syscall.EOVERFLOW},
		{name: "32-bit max wraps the group", in: "4294967295", nbits: 8, errno: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, tc.nbits)
			if tc.errno != 0 {
				var errno syscall.Errno
				if !errors.As(err, &errno) || errno != tc.errno {
					t.Fatalf("Parse(%q, %d): got %v, %v, want errno %v", tc.in, tc.nbits, got, err, tc.errno)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %d): got error %v, want %v", tc.in, tc.nbits, err, tc.want)
			}
			if !slices.Equal(got.List(), tc.want) {
				t.Errorf("Parse(%q, %d): got %v, want %v", tc.in, tc.nbits, got.List(), tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		set  Set
		want string
	}{
		{Set{}, ""},
		{Of(0), "0"},
		{Of(0, 1), "0-1"},
		{Of(0, 1, 2, 3, 7), "0-3,7"},
		{Of(1, 3, 5), "1,3,5"},
		{Of(63, 64, 65, 127, 128), "63-65,127-128"},
		{Range(0, 255), "0-255"},
	}
	for _, tc := range tests {
		if got := tc.set.String(); got != tc.want {
			t.Errorf("%v.String(): got %q, want %q", tc.set.List(), got, tc.want)
		}
		back, err := Parse(tc.want, 1024)
		if err != nil || !back.Equal(tc.set) {
			t.Errorf("Parse(%q): got %v, %v, want %v", tc.want, back.List(), err, tc.set.List())
		}
	}
}

func TestSetOps(t *testing.T) {
	a, b := Of(0, 1, 2, 70), Of(2, 3, 70)
	if got, want := a.And(b), Of(2, 70); !got.Equal(want) {
		t.Errorf("And: got %v, want %v", got, want)
	}
	if got, want := a.Or(b), Of(0, 1, 2, 3, 70); !got.Equal(want) {
		t.Errorf("Or: got %v, want %v", got, want)
	}
	if got := Of(1, 2).SubsetOf(a); !got {
		t.Errorf("{1,2} SubsetOf %v: got false, want true", a)
	}
	if got := b.SubsetOf(a); got {
		t.Errorf("%v SubsetOf %v: got true, want false", b, a)
	}
	if got := (Set{}).SubsetOf(Set{}); !got {
		t.Errorf("{} SubsetOf {}: got false, want true")
	}
	if got := Of(70).And(Of(1)); !got.IsEmpty() || !got.Equal(Set{}) {
		t.Errorf("disjoint And: got %v, want the empty set (and Equal to the zero Set)", got)
	}
	if got := a.Intersects(Of(3, 4)); got {
		t.Errorf("%v Intersects {3,4}: got true, want false", a)
	}
	if got, want := a.Count(), 4; got != want {
		t.Errorf("Count: got %d, want %d", got, want)
	}
	if got, want := a.Max(), 70; got != want {
		t.Errorf("Max: got %d, want %d", got, want)
	}
	if got, want := (Set{}).Max(), -1; got != want {
		t.Errorf("empty Max: got %d, want %d", got, want)
	}
	if got := FromWords(a.Words(4)); !got.Equal(a) {
		t.Errorf("FromWords(Words): got %v, want %v", got, a)
	}
	if got, want := len(Of(1).Words(16)), 16; got != want {
		t.Errorf("len(Words(16)): got %d, want %d", got, want)
	}
}

func TestSysfs(t *testing.T) {
	n, err := PossibleCPUs()
	if err != nil {
		t.Skipf("no sysfs CPU list here: %v", err)
	}
	online, err := OnlineCPUs()
	if err != nil {
		t.Fatalf("OnlineCPUs: %v", err)
	}
	if online.IsEmpty() || online.Max() >= n {
		t.Errorf("online CPUs %v with %d possible: want a non-empty subset of 0..%d", online, n, n-1)
	}
}
