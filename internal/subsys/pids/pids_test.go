package pids

// Unit tests: ParseMax, and the files and hooks on an in-process registry
// whose killer kills nothing real.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
)

func TestParseMax(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{in: "max", want: unlimited},
		{in: "max\n", want: unlimited},
		{in: "  20 \n", want: 20},
		{in: "0", want: 0},
		{in: "4194304", want: pidMaxLimit},
		{in: "0x10", want: 16},
		{in: "010", want: 8},
		{in: "+5", want: 5},
		{in: "4194305", err: syscall.EINVAL},
		{in: "-1", err: syscall.EINVAL},
		{in: "", err: syscall.EINVAL},
		{in: "MAX", err: syscall.EINVAL},
		{in: "max 1", err: syscall.EINVAL},
		{in: "1_000", err: syscall.EINVAL},
		{in: "10 20", err: syscall.EINVAL},
		// kstrtoll, not Go: no 0b, 0o or underscores.
		{in: "0b11", err: syscall.EINVAL},
		{in: "0o17", err: syscall.EINVAL},
		{in: "017", want: 15},
		{in: "0x", err: syscall.EINVAL},
		{in: "-0", want: 0},
		{in: "+-1", err: syscall.EINVAL},
		{in: "1\n\n", want: 1}, // strstrip takes every trailing space
		{in: "\t\v7\f\r", want: 7},
		{in: "\xa0max\xa0", want: unlimited},   // Latin-1 no-break space: a space to the kernel
		{in: "\u00a0max", err: syscall.EINVAL}, // UTF-8 U+00A0: two bytes, not spaces
		// kstrtoll's ERANGE is pids_max_write's answer on overflow.
		{in: "99999999999999999999", err: syscall.ERANGE},
		{in: "9223372036854775808", err: syscall.ERANGE},
		{in: "-99999999999999999999", err: syscall.ERANGE},
		{in: "0x8000000000000000", err: syscall.ERANGE},
		{in: "9223372036854775807", err: syscall.EINVAL}, // in range for kstrtoll, over PIDS_MAX
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMax(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseMax(%q): got error %v, want %v", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMax(%q): got %d, %v, want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

// fixture is a model with a pids hierarchy whose killer is run by hand
// and kills nothing real: the kills it would send are recorded.
type fixture struct {
	*testutil.Model
	s      *Subsys
	h      *core.Hierarchy
	killed []int
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{}
	f.s = &Subsys{manual: true, procRoot: t.TempDir(), Logf: t.Logf}
	f.s.sendKill = func(r refusal) error {
		f.killed = append(f.killed, r.t.TID)
		return nil
	}
	f.Model = testutil.NewModel(t, f.s)
	f.h = f.Mount("pids")
	return f
}

// drain runs the killer's queue, as its worker would when woken.
func (f *fixture) drain() {
	f.s.drain(f.s.state(f.h.Root()).h)
}

// want checks that c's control file name reads want.
func (f *fixture) want(c *core.Container, name, want string) {
	f.T.Helper()
	if got := f.Read(c, name); got != want {
		f.T.Errorf("%s/%s: got %q, want %q", c.Path(), name, got, want)
	}
}

func TestFiles(t *testing.T) {
	f := newFixture(t)
	root := f.h.Root()
	for _, bf := range f.h.Files(root) {
		if strings.HasPrefix(bf.Name, "pids.") {
			t.Errorf("root has %s; cgroup v1 has no pids files in the root", bf.Name)
		}
	}
	a := f.Mkdir(root, "a")
	f.want(a, "pids.max", "max\n")
	f.want(a, "pids.current", "0\n")
	f.want(a, "pids.events", "max 0\n")
	f.want(a, "pids.peak", "0\n")

	tests := []struct {
		write string
		err   error
		want  string
	}{
		{write: "20\n", want: "20\n"},
		{write: "max", want: "max\n"},
		{write: "0", want: "0\n"},
		{write: "-1", err: syscall.EINVAL, want: "0\n"},
		{write: "4194305", err: syscall.EINVAL, want: "0\n"},
		{write: "lots", err: syscall.EINVAL, want: "0\n"},
		{write: "4194304", want: "4194304\n"},
	}
	for _, tc := range tests {
		err := f.Write(a, "pids.max", tc.write)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("write %q: got error %v, want %v", tc.write, err, tc.err)
		}
		f.want(a, "pids.max", tc.want)
	}
	for _, name := range []string{"pids.current", "pids.events", "pids.peak"} {
		if err := f.Write(a, name, "1"); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("write %s: got %v, want EINVAL (read-only)", name, err)
		}
	}
}

func TestHierarchicalCount(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	b := f.Mkdir(a, "b")
	f.Task(100, 100, 10)
	f.Task(200, 200, 10)
	f.Attach(b, 100)
	f.Attach(a, 200)
	f.Fork(100, 101, 101, 11) // a process in b
	f.Fork(100, 102, 100, 11) // a thread of 100, in b
	f.want(b, "pids.current", "3\n")
	f.want(a, "pids.current", "4\n")

	f.Attach(a, 101) // b -> a
	f.want(b, "pids.current", "2\n")
	f.want(a, "pids.current", "4\n")

	f.Attach(f.h.Root(), 200) // a -> root
	f.want(a, "pids.current", "3\n")

	f.Exit(102)
	f.want(b, "pids.current", "1\n")
	f.want(a, "pids.current", "2\n")
	f.want(a, "pids.peak", "4\n")
	f.want(b, "pids.peak", "3\n")
	f.Exit(100)
	f.Exit(101)
	f.want(a, "pids.current", "0\n")
	if len(f.killed) != 0 {
		t.Errorf("killed %v with no limit set", f.killed)
	}
}

func TestForkOverLimit(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	b := f.Mkdir(a, "b")
	f.MustWrite(a, "pids.max", "3")
	f.Task(100, 100, 10)
	f.Attach(b, 100)
	f.Fork(100, 101, 101, 11)
	f.Fork(100, 102, 102, 11)
	f.Fork(100, 103, 103, 11) // a's 4th: refused
	f.Fork(100, 104, 104, 11) // refused
	f.drain()
	if want := []int{103, 104}; !slices.Equal(f.killed, want) {
		t.Errorf("killed %v, want %v", f.killed, want)
	}
	// The kernel never created the refused tasks: they are not counted,
	// and the refusals are counted where the forking task is (cgroup v1's
	// events_local), not where the limit is.
	f.want(a, "pids.current", "3\n")
	f.want(b, "pids.current", "3\n")
	f.want(a, "pids.peak", "3\n") // refused tasks never count
	f.want(b, "pids.events", "max 2\n")
	f.want(a, "pids.events", "max 0\n")

	// Their exits uncharge nothing.
	f.Exit(103)
	f.Exit(104)
	f.want(a, "pids.current", "3\n")

	// One exit makes room for exactly one fork.
	f.Exit(102)
	f.Fork(100, 105, 105, 12)
	f.Fork(100, 106, 106, 12)
	f.drain()
	if want := []int{103, 104, 106}; !slices.Equal(f.killed, want) {
		t.Errorf("killed %v, want %v", f.killed, want)
	}
	f.want(a, "pids.current", "3\n")

	// Lowering the limit kills nothing; raising it lets forks through.
	f.MustWrite(a, "pids.max", "1")
	f.drain()
	f.want(a, "pids.current", "3\n")
	f.MustWrite(a, "pids.max", "max")
	f.Fork(100, 107, 107, 13)
	f.drain()
	f.want(a, "pids.current", "4\n")
	if len(f.killed) != 3 {
		t.Errorf("killed %v, want 3 kills", f.killed)
	}
}

func TestStrictestAncestorWins(t *testing.T) {
	tests := []struct {
		name           string
		maxA, maxB     string
		forks          int
		wantKilled     int
		wantA, wantB   string
		wantEventsOfB  string
		wantEventsOfA  string
		startInParentA bool
	}{
		{name: "parent stricter", maxA: "2", maxB: "10", forks: 4, wantKilled: 3, wantA: "2\n", wantB: "2\n", wantEventsOfB: "max 3\n", wantEventsOfA: "max 0\n"},
		{name: "child stricter", maxA: "10", maxB: "2", forks: 4, wantKilled: 3, wantA: "2\n", wantB: "2\n", wantEventsOfB: "max 3\n", wantEventsOfA: "max 0\n"},
		{name: "no limit", maxA: "max", maxB: "max", forks: 4, wantKilled: 0, wantA: "5\n", wantB: "5\n", wantEventsOfB: "max 0\n", wantEventsOfA: "max 0\n"},
		{name: "zero", maxA: "max", maxB: "0", forks: 2, wantKilled: 2, wantA: "1\n", wantB: "1\n", wantEventsOfB: "max 2\n", wantEventsOfA: "max 0\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.Mkdir(f.h.Root(), "a")
			b := f.Mkdir(a, "b")
			f.MustWrite(a, "pids.max", tc.maxA)
			f.MustWrite(b, "pids.max", tc.maxB)
			f.Task(100, 100, 10)
			f.Attach(b, 100) // attach may exceed a limit of 0
			for i := range tc.forks {
				f.Fork(100, 101+i, 101+i, 11)
			}
			f.drain()
			if len(f.killed) != tc.wantKilled {
				t.Errorf("killed %v, want %d kills", f.killed, tc.wantKilled)
			}
			f.want(a, "pids.current", tc.wantA)
			f.want(b, "pids.current", tc.wantB)
			f.want(a, "pids.events", tc.wantEventsOfA)
			f.want(b, "pids.events", tc.wantEventsOfB)
		})
	}
}

func TestAttachMayExceed(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.MustWrite(a, "pids.max", "2")
	for pid := 100; pid < 105; pid++ {
		f.Task(pid, pid, 10)
		f.Attach(a, pid)
	}
	f.drain()
	f.want(a, "pids.current", "5\n")
	if len(f.killed) != 0 {
		t.Errorf("killed %v: moving in must not be refused", f.killed)
	}
	f.Fork(100, 200, 200, 11)
	f.drain()
	if !slices.Equal(f.killed, []int{200}) {
		t.Errorf("killed %v, want [200]", f.killed)
	}
}

func TestRefusedTaskMovedToRootIsSpared(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.MustWrite(a, "pids.max", "1")
	f.Task(100, 100, 10)
	f.Attach(a, 100)
	f.Fork(100, 101, 101, 11) // refused
	f.Attach(f.h.Root(), 101) // moved to the root before the killer ran
	f.drain()
	if len(f.killed) != 0 {
		t.Errorf("killed %v: never kill a task of the root container", f.killed)
	}
	f.want(a, "pids.current", "1\n")
	// A refused task moved to another non-root container is still killed
	// and still charged nowhere.
	b := f.Mkdir(f.h.Root(), "b")
	f.Fork(100, 102, 102, 12)
	f.Attach(b, 102)
	f.drain()
	if !slices.Equal(f.killed, []int{102}) {
		t.Errorf("killed %v, want [102]", f.killed)
	}
	f.want(b, "pids.current", "0\n")
	f.Exit(102)
	f.want(b, "pids.current", "0\n")
}

// writeStat makes a fake /proc/TGID/task/TID/stat with the given start.
func writeStat(t *testing.T, proc string, tgid, tid int, start uint64) {
	t.Helper()
	dir := filepath.Join(proc, fmt.Sprint(tgid), "task", fmt.Sprint(tid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Fields 3..22; a comm with a space and a parenthesis.
	line := fmt.Sprintf("%d (a b) c) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", tid, start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNewThreadOverLimit(t *testing.T) {
	tests := []struct {
		name string
		// setup runs with process 100 (threads 100, 101) in a, pids.max
		// 2, before thread 150 (start 500) is forked.
		setup      func(f *fixture, a *core.Container)
		extra      []int // other threads of the group in /proc, started at 100
		newer      []int // threads of the group in /proc, started in 150's tick
		wantKilled bool
		wantA      string
	}{
		{name: "whole group in the container", wantKilled: true, wantA: "2\n"},
		{name: "newer threads not yet seen", newer: []int{151, 152}, wantKilled: true, wantA: "2\n"},
		{name: "old thread left in the root", extra: []int{120}, wantKilled: false, wantA: "3\n"},
		{name: "thread left in the root, same tick", newer: []int{149}, wantKilled: false, wantA: "3\n"},
		{name: "thread moved to the root", setup: func(f *fixture, a *core.Container) {
			f.Attach(f.h.Root(), 101)
			f.Fork(100, 102, 100, 100) // a is at 2 again: 100, 102
		}, wantKilled: false, wantA: "3\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.Mkdir(f.h.Root(), "a")
			f.MustWrite(a, "pids.max", "2")
			f.Task(100, 100, 100)
			f.Task(101, 100, 100)
			if err := f.Reg.Attach(a, core.Caller{}, 100, true); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(f, a)
			}
			f.killed = nil
			for _, tid := range []int{100, 101, 102, 103} {
				if _, ok := f.Procs[tid]; ok {
					writeStat(t, f.s.procRoot, 100, tid, 100)
				}
			}
			for _, tid := range tc.extra {
				writeStat(t, f.s.procRoot, 100, tid, 100)
			}
			for _, tid := range tc.newer {
				writeStat(t, f.s.procRoot, 100, tid, 500)
			}
			writeStat(t, f.s.procRoot, 100, 150, 500)
			f.Fork(100, 150, 100, 500)
			f.drain()
			if got := len(f.killed) == 1 && f.killed[0] == 150; got != tc.wantKilled {
				t.Errorf("killed %v, want killed=%v", f.killed, tc.wantKilled)
			}
			f.want(a, "pids.current", tc.wantA)
			f.want(a, "pids.events", "max 1\n")
		})
	}
}

func TestOlderThan(t *testing.T) {
	const pidMax = 32768
	ref := &core.Task{TID: 1000, TGID: 900, Start: 500}
	tests := []struct {
		name  string
		start uint64
		tid   int
		want  bool
	}{
		{name: "ticks before", start: 400, tid: 2000, want: true},
		{name: "ticks after", start: 600, tid: 10, want: false},
		{name: "same tick, lower TID", start: 500, tid: 999, want: true},
		{name: "same tick, higher TID", start: 500, tid: 1001, want: false},
		{name: "a tick before, higher TID", start: 499, tid: 1200, want: false},
		{name: "itself", start: 500, tid: 1000, want: false},
		{name: "wrapped: high TID just before", start: 500, tid: 32700, want: true},
		{name: "same tick, far higher TID", start: 500, tid: 10000, want: false},
	}
	for _, tc := range tests {
		if got := olderThan(tc.start, tc.tid, ref, pidMax); got != tc.want {
			t.Errorf("%s: olderThan(%d, %d): got %v, want %v", tc.name, tc.start, tc.tid, got, tc.want)
		}
	}
	wrapped := &core.Task{TID: 5, TGID: 900, Start: 500}
	if !olderThan(500, 32760, wrapped, pidMax) {
		t.Errorf("TID 32760 in the same tick as TID 5 after a wrap: got newer, want older")
	}
}

// TestReadStart: the killer reads a thread's start time within its thread
// group, whatever its comm holds.
func TestReadStart(t *testing.T) {
	proc := t.TempDir()
	writeStat(t, proc, 100, 101, 12345)
	if got, err := readStart(proc, 100, 101); err != nil || got != 12345 {
		t.Errorf("readStart: got %d, %v, want 12345", got, err)
	}
	if _, err := readStart(proc, 200, 101); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("readStart of a thread of another group: got %v, want ENOENT", err)
	}
}
