package policy

import (
	"errors"
	"slices"
	"syscall"
	"testing"
)

func TestParsePlacement(t *testing.T) {
	tests := []struct {
		in    string
		ctrls []string
		path  string
		err   bool
	}{
		{in: "cpu,cpuset:/guests", ctrls: []string{"cpu", "cpuset"}, path: "/guests"},
		{in: "*:/x", ctrls: []string{"*"}, path: "/x"},
		{in: "cpu:guests/", ctrls: []string{"cpu"}, path: "/guests"},
		{in: "name=track:/a/b", ctrls: []string{"name=track"}, path: "/a/b"},
		{in: "cpu:/a:b", ctrls: []string{"cpu"}, path: "/a:b"},
		{in: "cpu:/", ctrls: []string{"cpu"}, path: "/"},
		{in: "cpu,cpu:/x", ctrls: []string{"cpu"}, path: "/x"},
		{in: "cpu", err: true},
		{in: "cpu:", err: true},
		{in: ":/x", err: true},
		{in: "cpu,:/x", err: true},
		{in: "cpu,*:/x", err: true},
		{in: "cpu:/a/../b", err: true},
	}
	for _, tc := range tests {
		p, err := ParsePlacement(tc.in)
		if tc.err {
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%q: got %v, %v, want EINVAL", tc.in, p, err)
			}
			continue
		}
		if err != nil || !slices.Equal(p.Controllers, tc.ctrls) || p.Path != tc.path {
			t.Errorf("%q: got %v, %v, want %v:%s", tc.in, p, err, tc.ctrls, tc.path)
		}
	}
	sp, err := ParseSpec([]string{"cpu:/a", "memory,name=x:/b"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sp.Strings(), []string{"cpu:/a", "memory,name=x:/b"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
