// Tests of the scheduler's decisions on simulated machines.

package sched

import (
	"fmt"
	"testing"

	"github.com/containerfs/containerfs/internal/testutil"
)

func TestSharesOnOneCPU(t *testing.T) {
	tests := []struct {
		name             string
		sharesA, sharesB uint64
		tasksA, tasksB   int
		sessions         bool // every task in its own session
		want             float64
	}{
		{"9216:1024", 9216, 1024, 1, 1, false, 90},
		{"9216:1024 sessions", 9216, 1024, 1, 1, true, 90},
		{"1024:9216", 1024, 9216, 1, 1, false, 10},
		{"3 tasks vs 1", 1024, 1024, 3, 1, false, 50},
		{"3 tasks vs 1 sessions", 1024, 1024, 3, 1, true, 50},
		{"1 task vs 5", 1024, 1024, 1, 5, false, 50},
		{"2:1 with 4 vs 2 tasks", 2048, 1024, 4, 2, false, 66.67},
		{"equal", 1024, 1024, 1, 1, false, 50},
		{"min shares", 2, 262144, 1, 1, false, 100 * 2.0 / 262146},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, 1)
			a := m.s.NewGroup(m.s.Root(), "a")
			b := m.s.NewGroup(m.s.Root(), "b")
			a.SetShares(tc.sharesA)
			b.SetShares(tc.sharesB)
			var ta, tb []*simTask
			sess := 0
			for i := 0; i < tc.tasksA; i++ {
				if tc.sessions {
					sess++
				}
				ta = append(ta, m.task(a, sess, 0))
			}
			for i := 0; i < tc.tasksB; i++ {
				if tc.sessions {
					sess++
				}
				tb = append(tb, m.task(b, sess, 0))
			}
			m.run(10e9)
			near(t, "a's share", pct(usage(ta...), usage(tb...)), tc.want, 1)
			t.Log(m)
		})
	}
}

func TestNested(t *testing.T) {
	m := newSim(t, 1)
	guests := m.s.NewGroup(m.s.Root(), "guests")
	system := m.s.NewGroup(m.s.Root(), "system")
	guests.SetShares(9216)
	system.SetShares(1024)
	ga := m.s.NewGroup(guests, "guest-a")
	gb := m.s.NewGroup(guests, "guest-b")
	a := m.task(ga, 1, 0)
	b1, b2 := m.task(gb, 2, 0), m.task(gb, 3, 0)
	s := m.task(system, 4, 0)
	m.run(10e9)
	total := float64(usage(a, b1, b2, s))
	near(t, "guest-a", 100*float64(usage(a))/total, 45, 1.5)
	near(t, "guest-b", 100*float64(usage(b1, b2))/total, 45, 1.5)
	near(t, "system", 100*float64(usage(s))/total, 10, 1)
	t.Logf("%v: guest-a %.2f guest-b %.2f system %.2f", m, 100*float64(usage(a))/total, 100*float64(usage(b1, b2))/total, 100*float64(usage(s))/total)
}

func TestNestedCoarseTicks(t *testing.T) {
	// Ticks far apart (a loaded daemon, or many tasks) overshoot every
	// hold; the leads that result must be paid back, not forgiven.
	cfg := DefaultConfig
	cfg.MinTick, cfg.Probe = 40e6, 40e6
	m := newSimConfig(t, 1, cfg)
	guests := m.s.NewGroup(m.s.Root(), "guests")
	system := m.s.NewGroup(m.s.Root(), "system")
	guests.SetShares(9216)
	system.SetShares(1024)
	ga := m.s.NewGroup(guests, "guest-a")
	gb := m.s.NewGroup(guests, "guest-b")
	a := m.task(ga, 1, 0)
	b1, b2 := m.task(gb, 2, 0), m.task(gb, 3, 0)
	s := m.task(system, 4, 0)
	m.run(20e9)
	total := float64(usage(a, b1, b2, s))
	near(t, "guest-a", 100*float64(usage(a))/total, 45, 1.5)
	near(t, "guest-b", 100*float64(usage(b1, b2))/total, 45, 1.5)
	near(t, "system", 100*float64(usage(s))/total, 10, 1)
}

func TestOwnTasksBesideChildren(t *testing.T) {
	// A task directly in a group with children weighs 1024 beside them.
	m := newSim(t, 1)
	p := m.s.NewGroup(m.s.Root(), "p")
	c := m.s.NewGroup(p, "c")
	c.SetShares(3072)
	own := m.task(p, 1, 0)
	in := m.task(c, 1, 0)
	m.run(10e9)
	near(t, "own task", pct(usage(own), usage(in)), 25, 1.5)
}

func TestQuota(t *testing.T) {
	tests := []struct {
		name          string
		quota, period int64
		tasks, ncpu   int
		want          float64 // percent of one CPU
	}{
		{"20ms/100ms", 20e6, 100e6, 1, 1, 20},
		{"20ms/100ms two tasks", 20e6, 100e6, 2, 1, 20},
		{"1ms/1ms", 1e6, 1e6, 1, 2, 100},
		{"5ms/10ms", 5e6, 10e6, 1, 1, 50},
		{"150ms/100ms on 2 CPUs", 150e6, 100e6, 2, 2, 150},
		{"500ms/1s", 500e6, 1e9, 1, 1, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, tc.ncpu)
			g := m.s.NewGroup(m.s.Root(), "g")
			m.s.SetBandwidth(g, tc.quota, tc.period, 0)
			var ts []*simTask
			for i := 0; i < tc.tasks; i++ {
				ts = append(ts, m.task(g, 1))
			}
			const d = 10e9
			m.run(d)
			near(t, "usage", 100*float64(usage(ts...))/d, tc.want, 0.5)
			st := g.Stat(m.now)
			periods := uint64(d / tc.period)
			if tc.want < 100*float64(tc.ncpu) && tc.quota < tc.period*int64(tc.tasks) {
				if st.NrPeriods < periods-2 || st.NrPeriods > periods || st.NrThrottled < periods-3 {
					t.Errorf("cpu.stat: got %+v, want about %d periods, all throttled", st, periods)
				}
			}
			t.Log(m, st)
		})
	}
}

func TestQuotaHierarchy(t *testing.T) {
	m := newSim(t, 2)
	p := m.s.NewGroup(m.s.Root(), "p")
	m.s.SetBandwidth(p, 30e6, 100e6, 0)
	a := m.s.NewGroup(p, "a")
	b := m.s.NewGroup(p, "b")
	m.s.SetBandwidth(b, 10e6, 50e6, 0)
	ta := m.task(a, 1)
	tb := m.task(b, 2)
	m.run(10e9)
	// Each period of p: a and b run together until b's 10 ms are used,
	// then a alone until p's 30 ms are; b's next period (at 50 ms) finds
	// p throttled.
	near(t, "parent", 100*float64(usage(ta, tb))/10e9, 30, 0.5)
	near(t, "b", 100*float64(usage(tb))/10e9, 10, 1)
}

func TestSchedWorkConserving(t *testing.T) {
	t.Run("idle sibling", func(t *testing.T) {
		m := newSim(t, 1)
		a := m.s.NewGroup(m.s.Root(), "a")
		b := m.s.NewGroup(m.s.Root(), "b")
		a.SetShares(9216)
		m.s.NewGroup(m.s.Root(), "idle").SetShares(262144)
		tb := m.task(b, 1, 0)
		_ = a
		m.run(5e9)
		near(t, "b alone", 100*float64(usage(tb))/5e9, 100, 0.5)
		if m.holds != 0 {
			t.Errorf("holds: got %d, want 0", m.holds)
		}
	})
	t.Run("sibling busy part of the time", func(t *testing.T) {
		m := newSim(t, 1)
		a := m.s.NewGroup(m.s.Root(), "a")
		b := m.s.NewGroup(m.s.Root(), "b")
		a.SetShares(9216)
		ta := m.task(a, 1, 0)
		ta.on, ta.off = 10e6, 15e6 // wants 40%
		tb := m.task(b, 2, 0)
		m.run(10e9)
		// The kernel would give a its 40% (it is entitled to 90%); a
		// task runnable less than BoundFrac of the time does not make
		// its sibling held, so a gets what the kernel's per-session
		// fairness gives it while it runs (20%), and no CPU time is
		// lost. docs/deviations.md.
		near(t, "a", 100*float64(usage(ta))/10e9, 20, 3)
		near(t, "a and b", 100*float64(usage(ta, tb))/10e9, 100, 0.5)
	})
	t.Run("one task each on two CPUs", func(t *testing.T) {
		m := newSim(t, 2)
		a := m.s.NewGroup(m.s.Root(), "a")
		b := m.s.NewGroup(m.s.Root(), "b")
		a.SetShares(9216)
		ta := m.task(a, 1)
		tb := m.task(b, 2)
		m.run(5e9)
		near(t, "a", 100*float64(usage(ta))/5e9, 100, 1)
		near(t, "b", 100*float64(usage(tb))/5e9, 100, 1)
		if m.holds != 0 {
			t.Errorf("holds: got %d, want 0", m.holds)
		}
	})
	t.Run("pinned and free", func(t *testing.T) {
		m := newSim(t, 2)
		a := m.s.NewGroup(m.s.Root(), "a")
		b := m.s.NewGroup(m.s.Root(), "b")
		a.SetShares(9216)
		ta := m.task(a, 1, 0)
		tb := m.task(b, 2)
		m.run(5e9)
		near(t, "a", 100*float64(usage(ta))/5e9, 100, 1)
		near(t, "b", 100*float64(usage(tb))/5e9, 100, 1)
	})
}

func TestSharesOnTwoCPUs(t *testing.T) {
	m := newSim(t, 2)
	a := m.s.NewGroup(m.s.Root(), "a")
	b := m.s.NewGroup(m.s.Root(), "b")
	a.SetShares(9216)
	ta := []*simTask{m.task(a, 1), m.task(a, 1)}
	tb := []*simTask{m.task(b, 2), m.task(b, 2)}
	m.run(10e9)
	near(t, "a's share", pct(usage(ta...), usage(tb...)), 90, 1.5)
	t.Log(m)
}

func TestJoinGetsNoCredit(t *testing.T) {
	// b idles for 2 s, then competes: it must not starve a for 2 s.
	m := newSim(t, 1)
	a := m.s.NewGroup(m.s.Root(), "a")
	b := m.s.NewGroup(m.s.Root(), "b")
	ta := m.task(a, 1, 0)
	tb := m.task(b, 2, 0)
	tb.held = true // not runnable yet: model an idle task
	tb.off, tb.on, tb.phase = 1, 0, 0
	m.run(2e9)
	tb.held, tb.off, tb.on = false, 0, 0
	ra, rb := ta.run, tb.run
	m.run(1e9)
	near(t, "a after b joins", pct(ta.run-ra, tb.run-rb), 50, 5)
}

func TestTickBounds(t *testing.T) {
	s := NewSched(DefaultConfig, MaskOf(0), 0)
	if n := s.Tick(1e6); n != -1 {
		t.Errorf("next tick with no tasks: got %d, want -1", n)
	}
	g := s.NewGroup(s.Root(), "g")
	task := &Task{TID: 1, Mask: MaskOf(0)}
	s.AddTask(task, g)
	task.Run = 10e6
	if n := s.Tick(11e6); n < DefaultConfig.MinTick || n > DefaultConfig.MaxTick {
		t.Errorf("next tick: got %d, want within [%d, %d]", n, DefaultConfig.MinTick, DefaultConfig.MaxTick)
	}
}

func TestQuotaWriteUnthrottles(t *testing.T) {
	s := NewSched(DefaultConfig, MaskOf(0), 0)
	g := s.NewGroup(s.Root(), "g")
	s.SetBandwidth(g, 1e6, 100e6, 0)
	task := &Task{TID: 1, Mask: MaskOf(0)}
	s.AddTask(task, g)
	task.Run = 2e6
	s.Tick(2e6)
	if !task.Held || !g.Throttled() {
		t.Fatalf("after using 2ms of a 1ms quota: held %v throttled %v, want both", task.Held, g.Throttled())
	}
	s.SetBandwidth(g, 50e6, 100e6, 3e6)
	task.Run = 0
	s.Tick(4e6)
	if task.Held || g.Throttled() {
		t.Errorf("after a quota write: held %v throttled %v, want neither", task.Held, g.Throttled())
	}
	if st := g.Stat(4e6); st.ThrottledTime != 1e6 {
		t.Errorf("throttled_time: got %d, want %d", st.ThrottledTime, int64(1e6))
	}
}

// BenchmarkTick100 is one tick of the decision logic over 100 tasks in two
// groups.
func BenchmarkTick100(b *testing.B) {
	s := NewSched(DefaultConfig, MaskOf(0, 1), 0)
	g := s.NewGroup(s.Root(), "g")
	y := s.NewGroup(s.Root(), "y")
	g.SetShares(9216)
	var ts []*Task
	for i := 0; i < 100; i++ {
		t := &Task{TID: i + 1, Mask: MaskOf(0)}
		if i%10 == 0 {
			s.AddTask(t, y)
		} else {
			s.AddTask(t, g)
		}
		ts = append(ts, t)
	}
	now := int64(0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now += 10e6
		for _, t := range ts {
			t.Run, t.Wait = 100e3, 9.9e6
		}
		s.Tick(now)
	}
}

// spread is how far apart the tasks' CPU times are: (max-min)/mean, in %.
func spread(ts ...*simTask) float64 {
	lo, hi, sum := ts[0].run, ts[0].run, int64(0)
	for _, st := range ts {
		lo, hi, sum = min(lo, st.run), max(hi, st.run), sum+st.run
	}
	return 100 * float64(hi-lo) * float64(len(ts)) / float64(sum)
}

func TestPartialHolds(t *testing.T) {
	testutil.Short(t) // about 4 s of simulated machines
	tests := []struct {
		name             string
		ncpu             int
		sharesA, sharesB uint64
		tasksA, tasksB   int
		sessions         bool // every task in its own session
		pinA             []int
		dutyB            int64   // % of the time b's tasks are runnable; 0: always
		want             float64 // a's share of both groups' CPU time
		partial          bool    // whether partial holds are expected
		noHolds          bool
		used             float64 // % of the CPUs used; 0: 100
	}{
		// The kernel gives each group one CPU: 50/50 (75/25 without
		// groups, in one session).
		{name: "3 vs 1", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 3, tasksB: 1, want: 50, partial: true},
		{name: "3 vs 1 sessions", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 3, tasksB: 1, sessions: true, want: 50, partial: true},
		{name: "1 vs 3", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 1, tasksB: 3, want: 50, partial: true},
		// a is entitled to 4/3 of a CPU: it alternates between one
		// running task and three.
		{name: "3 vs 1 at 2:1", ncpu: 2, sharesA: 2048, sharesB: 1024, tasksA: 3, tasksB: 1, want: 66.67, partial: true},
		// b is entitled to 4/3 of a CPU but has one task: a gets the
		// other CPU.
		{name: "3 vs 1 at 1:2", ncpu: 2, sharesA: 1024, sharesB: 2048, tasksA: 3, tasksB: 1, want: 50, partial: true},
		{name: "2 vs 2", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 2, tasksB: 2, want: 50},
		{name: "1 vs 1", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 1, tasksB: 1, want: 50, noHolds: true},
		{name: "1 vs 1 at 9:1", ncpu: 2, sharesA: 9216, sharesB: 1024, tasksA: 1, tasksB: 1, want: 50, noHolds: true},
		{name: "3 vs 1 on 4 CPUs", ncpu: 4, sharesA: 1024, sharesB: 1024, tasksA: 3, tasksB: 1, want: 75, noHolds: true},
		// Entitled to 2 CPUs each, b can use 1: a runs 3 of its 5.
		{name: "5 vs 1 on 4 CPUs", ncpu: 4, sharesA: 1024, sharesB: 1024, tasksA: 5, tasksB: 1, want: 75, partial: true},
		{name: "6 vs 2 on 4 CPUs", ncpu: 4, sharesA: 1024, sharesB: 1024, tasksA: 6, tasksB: 2, want: 50, partial: true},
		{name: "2 vs 1", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 2, tasksB: 1, want: 50, partial: true},
		// One of a's tasks pinned: no partial hold (the kernel might put
		// the tasks let run on the same CPU): 75/25 as before.
		{name: "3 vs 1, one of a's pinned", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 3, tasksB: 1, pinA: []int{0}, want: 75},
		// b runnable 80% of the time: limited to one task, a leaves 0.2
		// of a CPU idle (the kernel would give it to a: 60/40); b gets
		// what it wants.
		{name: "3 vs 1 busy 80%", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 3, tasksB: 1, dutyB: 80, want: 100 / 1.8, partial: true, used: 90},
		// Runnable 60% of the time: a partial hold would leave 0.4 of a
		// CPU idle; none is made, and b gets what the kernel's per-task
		// fairness gives it.
		{name: "3 vs 1 busy 60%", ncpu: 2, sharesA: 1024, sharesB: 1024, tasksA: 3, tasksB: 1, dutyB: 60, want: 85, noHolds: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, tc.ncpu)
			a := m.s.NewGroup(m.s.Root(), "a")
			b := m.s.NewGroup(m.s.Root(), "b")
			a.SetShares(tc.sharesA)
			b.SetShares(tc.sharesB)
			var ta, tb []*simTask
			sess := 0
			for i := 0; i < tc.tasksA; i++ {
				if tc.sessions {
					sess++
				}
				if i == 0 && tc.pinA != nil {
					ta = append(ta, m.task(a, sess, tc.pinA...))
				} else {
					ta = append(ta, m.task(a, sess))
				}
			}
			for i := 0; i < tc.tasksB; i++ {
				if tc.sessions {
					sess++
				}
				st := m.task(b, sess)
				if tc.dutyB > 0 {
					st.on, st.off = tc.dutyB*0.5e6, (100-tc.dutyB)*0.5e6
				}
				tb = append(tb, st)
			}
			m.run(20e9)
			near(t, "a's share", pct(usage(ta...), usage(tb...)), tc.want, 1)
			total := usage(ta...) + usage(tb...)
			used := tc.used
			if used == 0 {
				used = 100
			}
			near(t, "CPUs used", 100*float64(total)/float64(m.now)/float64(min(tc.ncpu, tc.tasksA+tc.tasksB)), used, 1)
			if tc.partial {
				// (Without holds, how the simulated load balancer places
				// the tasks decides the spread.)
				if sp := spread(ta...); sp > 2 {
					t.Errorf("spread among a's tasks: got %.2f%%, want at most 2%%", sp)
				}
				if sp := spread(tb...); sp > 2 {
					t.Errorf("spread among b's tasks: got %.2f%%, want at most 2%%", sp)
				}
			}
			if got := m.limited > 0; got != tc.partial {
				t.Errorf("partial holds: got %v (%d ticks), want %v", got, m.limited, tc.partial)
			}
			if tc.noHolds && m.holds != 0 {
				t.Errorf("holds: got %d, want 0", m.holds)
			}
			t.Logf("%v: a %.2f%%, spread among a's tasks %.2f%%", m, pct(usage(ta...), usage(tb...)), spread(ta...))
		})
	}
}

func TestRunLimit(t *testing.T) {
	all2, all4 := MaskOf(0, 1), MaskOf(0, 1, 2, 3)
	tasks := func(m Mask, busy float64, n int) []bound {
		var bs []bound
		for i := 0; i < n; i++ {
			bs = append(bs, bound{m, busy})
		}
		return bs
	}
	group := func(mask Mask, bs ...[]bound) *Group {
		g := &Group{mask: mask}
		for _, b := range bs {
			g.allBound = append(g.allBound, b...)
		}
		g.runBound = g.allBound
		return g
	}
	tests := []struct {
		name   string
		c      *Group
		behind []*Group
		want   int
	}{
		{"nobody behind", group(all2, tasks(all2, 1, 3)), nil, -1},
		{"3 vs 1 on 2 CPUs", group(all2, tasks(all2, 1, 3)), []*Group{group(all2, tasks(all2, 1, 1))}, 1},
		{"3 vs 2 on 2 CPUs: held whole", group(all2, tasks(all2, 1, 3)), []*Group{group(all2, tasks(all2, 1, 2))}, 0},
		{"1 vs 1 on 2 CPUs", group(all2, tasks(all2, 1, 1)), []*Group{group(all2, tasks(all2, 1, 1))}, -1},
		{"2 vs 1 on 2 CPUs", group(all2, tasks(all2, 1, 2)), []*Group{group(all2, tasks(all2, 1, 1))}, 1},
		{"5 vs 1 on 4 CPUs", group(all4, tasks(all4, 1, 5)), []*Group{group(all4, tasks(all4, 1, 1))}, 3},
		{"3 vs 1 on 4 CPUs", group(all4, tasks(all4, 1, 3)), []*Group{group(all4, tasks(all4, 1, 1))}, -1},
		{"behind in two groups", group(all4, tasks(all4, 1, 5)), []*Group{group(all4, tasks(all4, 1, 1)), group(all4, tasks(all4, 1, 1))}, 2},
		{"behind runnable 80%", group(all2, tasks(all2, 1, 3)), []*Group{group(all2, tasks(all2, 0.8, 1))}, 1},
		{"behind runnable 60%: rounded up", group(all2, tasks(all2, 1, 3)), []*Group{group(all2, tasks(all2, 0.6, 1))}, -1},
		{"one of c's tasks pinned", group(all2, tasks(all2, 1, 2), tasks(MaskOf(0), 1, 1)), []*Group{group(all2, tasks(all2, 1, 1))}, -1},
		{"behind pinned", group(all2, tasks(all2, 1, 3)), []*Group{group(MaskOf(1), tasks(MaskOf(1), 1, 1))}, 1},
		{"behind elsewhere", group(MaskOf(0, 1), tasks(MaskOf(0, 1), 1, 3)), []*Group{group(MaskOf(2, 3), tasks(MaskOf(2, 3), 1, 1))}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := runLimit(tc.c, tc.behind, boundRunning); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPartialHoldsNested(t *testing.T) {
	// A group with child groups held partially shares its limit among
	// them by their shares; the kernel gives each top-level group one CPU.
	tests := []struct {
		name   string
		guests []int  // tasks of each child of guests
		own    int    // tasks directly in guests
		shareA uint64 // the first child's shares; 0: 1024
		system int
		want   []float64 // each child's share (then the own tasks', then system's), %
	}{
		{"guests{a: 3} vs system{1}", []int{3}, 0, 0, 1, []float64{50, 50}},
		{"guests{a: 2, b: 1} vs system{1}", []int{2, 1}, 0, 0, 1, []float64{25, 25, 50}},
		{"guests{a: 2, b: 2} vs system{1}", []int{2, 2}, 0, 0, 1, []float64{25, 25, 50}},
		{"guests{a: 1, b: 1} vs system{1}", []int{1, 1}, 0, 0, 1, []float64{25, 25, 50}},
		// Each own task weighs 1024 beside the children.
		{"guests{a: 2, own: 1} vs system{1}", []int{2}, 1, 0, 1, []float64{25, 25, 50}},
		{"guests{a at 3072: 2, b: 1} vs system{1}", []int{2, 1}, 0, 3072, 1, []float64{37.5, 12.5, 50}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, 2)
			guests := m.s.NewGroup(m.s.Root(), "guests")
			system := m.s.NewGroup(m.s.Root(), "system")
			var sets [][]*simTask
			for i, n := range tc.guests {
				c := m.s.NewGroup(guests, fmt.Sprintf("c%d", i))
				if i == 0 && tc.shareA > 0 {
					c.SetShares(tc.shareA)
				}
				var ts []*simTask
				for j := 0; j < n; j++ {
					ts = append(ts, m.task(c, 0))
				}
				sets = append(sets, ts)
			}
			if tc.own > 0 {
				var ts []*simTask
				for j := 0; j < tc.own; j++ {
					ts = append(ts, m.task(guests, 0))
				}
				sets = append(sets, ts)
			}
			var ys []*simTask
			for j := 0; j < tc.system; j++ {
				ys = append(ys, m.task(system, 0))
			}
			sets = append(sets, ys)
			m.run(20e9)
			var total int64
			for _, ts := range sets {
				total += usage(ts...)
			}
			near(t, "CPUs used", 100*float64(total)/float64(m.now)/2, 100, 1)
			for i, ts := range sets {
				near(t, fmt.Sprintf("set %d", i), 100*float64(usage(ts...))/float64(total), tc.want[i], 1.5)
				if sp := spread(ts...); sp > 3 {
					t.Errorf("spread among set %d's tasks: got %.2f%%, want at most 3%%", i, sp)
				}
			}
			t.Log(m)
		})
	}
}
