package cpuacct

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
)

const ms1 = uint64(time.Millisecond)

// TestAttachMidLife: what a task used before it joined is not charged;
// what it uses after is, to the container and its ancestors only.
func TestAttachMidLife(t *testing.T) {
	g := newRig(t)
	a, b, c := g.mkdir("a"), g.mkdir("a/b"), g.mkdir("a/c")
	g.spawn(10, 10, 5000*ms1)
	g.attach(b, 10)
	if got := g.usage(b); got != 0 {
		t.Errorf("usage right after the move: got %d, want 0", got)
	}
	g.w.set(10, 5300*ms1, 0, 0, 1)
	for _, tc := range []struct {
		c    *core.Container
		want uint64
	}{{b, 300 * ms1}, {a, 300 * ms1}, {c, 0}} {
		if got := g.usage(tc.c); got != tc.want {
			t.Errorf("%s usage: got %d, want %d", tc.c.Path(), got, tc.want)
		}
	}
	// The delta went to the CPU of the sample.
	if got, want := g.read(b, "usage_percpu"), "0 300000000 \n"; got != want {
		t.Errorf("usage_percpu: got %q, want %q", got, want)
	}
}

// TestMoves: each container keeps what the task used while it was there;
// moving to the root stops the charging.
func TestMoves(t *testing.T) {
	g := newRig(t)
	p, x, y := g.mkdir("p"), g.mkdir("p/x"), g.mkdir("p/y")
	g.spawn(10, 10, 100*ms1)
	g.attach(x, 10)
	g.w.set(10, 150*ms1, 0, 0, 0)
	g.attach(y, 10)
	g.w.set(10, 220*ms1, 0, 0, 0)
	g.attach(g.h.Root(), 10)
	g.w.set(10, 1000*ms1, 0, 0, 0)
	for _, tc := range []struct {
		c    *core.Container
		want uint64
	}{{x, 50 * ms1}, {y, 70 * ms1}, {p, 120 * ms1}} {
		if got := g.usage(tc.c); got != tc.want {
			t.Errorf("%s usage: got %d, want %d", tc.c.Path(), got, tc.want)
		}
	}
}

// TestExit covers the orders in which an exit can be learnt: the proc
// connector's exit (the Exit hook) and the taskstats record come on
// different sockets, and a short-lived child's record can even come
// before its fork event.
func TestExit(t *testing.T) {
	tests := []struct {
		name   string
		story  func(g *rig)
		want   uint64
		cpu1   uint64 // what usage_percpu shows for CPU 1
		zombie bool   // the task is still a zombie at the Exit hook
	}{{
		name: "exit then record",
		story: func(g *rig) {
			g.exit(20)
			g.record(1, 20, 20, 10, 90*ms1, 0, 0)
		},
		want: 90 * ms1, cpu1: 30 * ms1,
	}, {
		name: "record then exit",
		story: func(g *rig) {
			g.record(1, 20, 20, 10, 90*ms1, 0, 0)
			g.exit(20)
		},
		want: 90 * ms1, cpu1: 30 * ms1,
	}, {
		name: "no record: the last sample stands",
		story: func(g *rig) {
			g.exit(20)
			g.advance(exitWait + time.Second)
			g.acct().sampleAll(nil)
			g.record(1, 20, 20, 10, 90*ms1, 0, 0) // too late
		},
		want: 60 * ms1,
	}, {
		name: "zombie at the exit: its /proc is final",
		story: func(g *rig) {
			g.w.set(20, 95*ms1, 0, 0, 1)
			g.r.Exit(20, 0)
			g.record(1, 20, 20, 10, 90*ms1, 0, 0) // older than the zombie's figure
		},
		want: 95 * ms1, cpu1: 35 * ms1, zombie: true,
	}, {
		name: "a record of another thread group is not ours",
		story: func(g *rig) {
			g.exit(20)
			g.record(1, 20, 999, 10, 90*ms1, 0, 0)
		},
		want: 60 * ms1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t)
			c := g.mkdir("c")
			g.spawn(10, 10, 0)
			g.attach(c, 10)
			g.fork(10, 20)
			g.w.set(20, 60*ms1, 0, 0, 0)
			if got := g.usage(c); got != 60*ms1 {
				t.Fatalf("usage before the exit: got %d, want %d", got, 60*ms1)
			}
			tc.story(g)
			if got := g.usage(c); got != tc.want {
				t.Errorf("usage: got %d, want %d", got, tc.want)
			}
			if got, want := g.read(c, "usage_percpu"), fmtPercpu(tc.want-tc.cpu1, tc.cpu1); got != want {
				t.Errorf("usage_percpu: got %q, want %q", got, want)
			}
			if z := g.s.Stats(g.h.Root()).Zombie; (z == 1) != tc.zombie {
				t.Errorf("exits finished from a zombie's /proc: got %d, want %v", z, tc.zombie)
			}
			g.advance(exitWait + time.Second)
			g.acct().sampleAll(nil)
			g.acct().mu.Lock()
			left := len(g.acct().byTID) + len(g.acct().records)
			g.acct().mu.Unlock()
			if left != 1 { // the parent, 10
				t.Errorf("tasks and records left after the wait: got %d, want 1", left)
			}
		})
	}
}

func fmtPercpu(cpu0, cpu1 uint64) string {
	return uintStr(cpu0) + " " + uintStr(cpu1) + " \n"
}

func uintStr(v uint64) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
		if v == 0 {
			return string(b)
		}
	}
}

// TestRecordBeforeFork: a child that lived and died before its fork event
// was applied is charged its whole life when the fork arrives.
func TestRecordBeforeFork(t *testing.T) {
	g := newRig(t)
	c := g.mkdir("c")
	g.spawn(10, 10, 0)
	g.attach(c, 10)
	g.record(0, 30, 30, 10, 7*ms1, 6000, 1000)
	g.fork(10, 30)
	g.exit(30)
	if got := g.usage(c); got != 7*ms1 {
		t.Errorf("usage: got %d, want %d", got, 7*ms1)
	}
	if got := g.read(c, "usage_all"); got != "cpu user system\n0 6000000 1000000\n1 0 0\n" {
		t.Errorf("usage_all: got %q", got)
	}
	// Records of tasks that cannot be ours (not a thread or child of a
	// tracked thread group) are not kept.
	g.record(0, 40, 40, 1, 9*ms1, 0, 0)
	g.record(0, 41, 10, 1, 9*ms1, 0, 0)
	g.record(0, 42, 42, 10, 9*ms1, 0, 0)
	g.acct().mu.Lock()
	_, kept40 := g.acct().records[40]
	_, kept41 := g.acct().records[41]
	_, kept42 := g.acct().records[42]
	g.acct().mu.Unlock()
	if kept40 || !kept41 || !kept42 {
		t.Errorf("records kept for a stranger, a thread of ours, a child of ours: got %v %v %v, want false true true", kept40, kept41, kept42)
	}
}

// TestSplit: run time is split in the ratio of the task's user and system
// ticks, never beyond what ran in the same interval; time whose split is
// not known yet is charged to neither, and caught up once it is.
func TestSplit(t *testing.T) {
	g := newRig(t)
	c := g.mkdir("c")
	g.spawn(10, 10, 0)
	g.attach(c, 10)
	steps := []struct {
		run, ut, st      uint64
		usage, user, sys uint64
	}{
		{5 * ms1, 0, 0, 5 * ms1, 0, 0},                       // too short for a tick
		{100 * ms1, 3, 1, 100 * ms1, 75 * ms1, 25 * ms1},     // caught up: 3:1
		{200 * ms1, 10, 10, 200 * ms1, 100 * ms1, 100 * ms1}, // the ratio swings to 1:1
		{210 * ms1, 100, 0, 210 * ms1, 110 * ms1, 100 * ms1}, // all user, within the 10 ms run
	}
	for i, st := range steps {
		g.w.set(10, st.run, st.ut, st.st, 0)
		got := [3]uint64{g.usage(c), g.readU(c, "usage_user"), g.readU(c, "usage_sys")}
		if want := [3]uint64{st.usage, st.user, st.sys}; got != want {
			t.Errorf("step %d: usage, user, sys: got %v, want %v", i, got, want)
		}
	}
	if got, want := g.read(c, "stat"), "user 11\nsystem 10\n"; got != want {
		t.Errorf("stat: got %q, want %q", got, want)
	}
}

func (g *rig) readU(c *core.Container, name string) uint64 {
	g.t.Helper()
	var v uint64
	if _, err := fmtSscanf(g.read(c, name), "%d", &v); err != nil {
		g.t.Fatal(err)
	}
	return v
}

// TestResetCounters: 0 resets the container's own counters only; other values are
// EINVAL and change nothing; the root takes 0 and keeps its figures.
func TestResetCounters(t *testing.T) {
	g := newRig(t)
	a, b := g.mkdir("a"), g.mkdir("a/b")
	g.spawn(10, 10, 0)
	g.attach(b, 10)
	g.w.set(10, 40*ms1, 1, 1, 1)
	for bad, want := range map[string]syscall.Errno{
		"1": syscall.EINVAL, "-1": syscall.EINVAL, "x": syscall.EINVAL, "0 1": syscall.EINVAL, " 0": syscall.EINVAL,
		"18446744073709551616": syscall.ERANGE, // kstrtoull checks overflow first
	} {
		if err := g.write(b, "usage", bad); !errors.Is(err, want) {
			t.Errorf("write %q: got %v, want %v", bad, err, want)
		}
	}
	if got := g.usage(b); got != 40*ms1 {
		t.Errorf("usage after refused writes: got %d, want %d", got, 40*ms1)
	}
	g.w.set(10, 50*ms1, 1, 1, 1)
	// The reset charges what ran before it, then zeroes: the parent keeps
	// all 50 ms.
	if err := g.write(b, "usage", "0\n"); err != nil {
		t.Fatal(err)
	}
	if got := g.read(b, "usage_all"); got != "cpu user system\n0 0 0\n1 0 0\n" {
		t.Errorf("usage_all after reset: got %q", got)
	}
	if got := g.usage(a); got != 50*ms1 {
		t.Errorf("parent usage after the child's reset: got %d, want %d", got, 50*ms1)
	}
	g.w.set(10, 58*ms1, 1, 1, 1)
	if got := g.usage(b); got != 8*ms1 {
		t.Errorf("usage 8 ms after the reset: got %d, want %d", got, 8*ms1)
	}
	g.w.root = procStat{cpus: []counters{{usage: 3, user: 2, sys: 1}, {usage: 30, user: 20, sys: 10}}}
	if err := g.write(g.h.Root(), "usage", "0"); err != nil {
		t.Errorf("root write 0: got %v, want success", err)
	}
	if got := g.usage(g.h.Root()); got != 33 {
		t.Errorf("root usage: got %d, want 33 from /proc/stat", got)
	}
	if err := g.write(g.h.Root(), "usage", "5"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("root write 5: got %v, want EINVAL", err)
	}
}

// TestStaleSample: a sample older than what was charged changes nothing,
// and neither does one read before a move (the move charged a fresher one).
func TestStaleSample(t *testing.T) {
	g := newRig(t)
	x, y := g.mkdir("x"), g.mkdir("y")
	tk := &task{g: &group{cpus: make([]counters, 2)}, based: true, run: 100, cpu: 0}
	tk.advanceLocked(sample{run: 90, cpu: 1})
	if tk.run != 100 || tk.g.cpus[0].usage+tk.g.cpus[1].usage != 0 {
		t.Errorf("an older sample was charged: %+v", tk.g.cpus)
	}
	// A periodic round that read a sample before a move must not charge it
	// to the new container.
	g.spawn(10, 10, 0)
	g.attach(x, 10)
	g.acct().mu.Lock()
	ct := g.acct().tasks
	var tsk *task
	for _, v := range ct {
		tsk = v
	}
	gen := tsk.gen
	g.acct().mu.Unlock()
	g.w.set(10, 30*ms1, 0, 0, 0)
	g.attach(y, 10) // charges x with 30 ms
	g.acct().mu.Lock()
	if tsk.gen == gen {
		t.Errorf("a move did not bump the task's generation")
	}
	g.acct().mu.Unlock()
	if ux, uy := g.usage(x), g.usage(y); ux != 30*ms1 || uy != 0 {
		t.Errorf("x, y: got %d, %d, want %d, 0", ux, uy, 30*ms1)
	}
}

// TestThreads: a thread group moved with cgroup.procs is tracked thread
// by thread, and a thread created in the container is charged from birth.
func TestThreads(t *testing.T) {
	g := newRig(t)
	c := g.mkdir("c")
	g.spawn(10, 10, 100*ms1)
	g.spawn(11, 10, 200*ms1)
	if err := g.r.Attach(c, core.Caller{}, 10, true); err != nil {
		t.Fatal(err)
	}
	info := core.TaskInfo{TID: 12, TGID: 10, Start: 1000}
	g.w.mu.Lock()
	g.w.info[12] = info
	g.w.mu.Unlock()
	g.w.set(12, 0, 0, 0, 0)
	g.r.Fork(10, info)
	g.w.set(10, 110*ms1, 0, 0, 0)
	g.w.set(11, 220*ms1, 0, 0, 0)
	g.w.set(12, 5*ms1, 0, 0, 0)
	if got, want := g.usage(c), 35*ms1; got != want {
		t.Errorf("usage: got %d, want %d", got, want)
	}
}

func TestCputimeAdjust(t *testing.T) {
	tests := []struct {
		name                string
		rtime, utime, stime uint64
		prevU, prevS        uint64
		wantU, wantS        uint64
	}{
		{"ratio", 100, 30, 10, 0, 0, 75, 25},
		{"no system time", 100, 30, 0, 0, 0, 100, 0},
		{"no user time", 100, 0, 7, 0, 0, 0, 100},
		{"no ticks at all", 100, 0, 0, 0, 0, 100, 0},
		{"system may not go back", 100, 90, 10, 0, 40, 60, 40},
		{"user may not go back", 100, 10, 90, 70, 0, 70, 30},
		{"rtime not past the last figures", 100, 1, 1, 60, 50, 60, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pu, ps := tc.prevU, tc.prevS
			u, s := cputimeAdjust(tc.rtime, tc.utime, tc.stime, &pu, &ps)
			if u != tc.wantU || s != tc.wantS {
				t.Errorf("got %d, %d, want %d, %d", u, s, tc.wantU, tc.wantS)
			}
		})
	}
}
