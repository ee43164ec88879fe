// The simulated machine the scheduler's tests run on.

package sched

import (
	"fmt"
	"testing"
)

// sim is a fake machine for the scheduler's arithmetic: a fake clock, CPUs
// that share their time among runnable tasks the way the kernel does with
// autogroup on (equally among sessions, then equally among a session's
// tasks), tasks that are busy or busy part of the time, and the Sched
// deciding which tasks are held, with a stop latency.
type sim struct {
	t       *testing.T
	s       *Sched
	ncpu    int
	now     int64
	step    int64 // simulation step, ns
	latency int64 // from a decision to the stop or resume taking effect
	tasks   []*simTask
	ticks   int
	holds   int // task stop transitions
	limited int // ticks after which some group had a partial hold
}

type simTask struct {
	*Task
	session int
	// on and off make a duty cycle (ns); off == 0 is a busy loop.
	on, off int64
	phase   int64
	cpu     int   // where it runs now
	run     int64 // total CPU time
	lastRun int64
	wait    int64
	held    bool  // as it is on the machine
	heldAt  int64 // when the decision changed
	want    bool  // the last decision
}

func newSim(t *testing.T, ncpu int) *sim { return newSimConfig(t, ncpu, DefaultConfig) }

func newSimConfig(t *testing.T, ncpu int, cfg Config) *sim {
	var all []int
	for i := 0; i < ncpu; i++ {
		all = append(all, i)
	}
	return &sim{t: t, s: NewSched(cfg, MaskOf(all...), 0), ncpu: ncpu, step: 100e3, latency: 200e3}
}

// task adds a busy task to g in session, allowed on cpus (nil: all).
func (m *sim) task(g *Group, session int, cpus ...int) *simTask {
	mask := m.s.Online()
	if len(cpus) > 0 {
		mask = MaskOf(cpus...)
	}
	st := &simTask{Task: &Task{TID: len(m.tasks) + 1, Mask: mask}, session: session, cpu: -1}
	m.tasks = append(m.tasks, st)
	m.s.AddTask(st.Task, g)
	return st
}

func (st *simTask) runnable(now int64) bool {
	if st.held {
		return false
	}
	if st.off == 0 {
		return true
	}
	return (now+st.phase)%(st.on+st.off) < st.on
}

// run simulates d ns.
func (m *sim) run(d int64) {
	end := m.now + d
	nextTick := m.now
	for m.now < end {
		if m.now >= nextTick {
			for _, st := range m.tasks {
				st.Run, st.Wait = st.run-st.lastRun, st.wait
				st.lastRun, st.wait = st.run, 0
			}
			n := m.s.Tick(m.now)
			m.ticks++
			partial := false
			m.s.walk(m.s.Root(), func(g *Group) { partial = partial || g.Limit() > 0 })
			if partial {
				m.limited++
			}
			for _, st := range m.tasks {
				if st.Held != st.want {
					st.want, st.heldAt = st.Held, m.now
					if st.Held {
						m.holds++
					}
				}
			}
			if n < 0 {
				n = m.s.cfg.MaxTick
			}
			nextTick = m.now + n
		}
		for _, st := range m.tasks {
			if st.held != st.want && m.now-st.heldAt >= m.latency {
				st.held = st.want
			}
		}
		m.schedule()
		m.now += m.step
	}
}

// schedule gives one step of every CPU to its runnable tasks.
func (m *sim) schedule() {
	perCPU := make([][]*simTask, m.ncpu)
	load := make([]int, m.ncpu)
	var movable []*simTask
	for _, st := range m.tasks {
		if !st.runnable(m.now) {
			continue
		}
		if st.Mask.Count() == 1 || st.cpu < 0 {
			movable = append(movable, st)
			continue
		}
		perCPU[st.cpu] = append(perCPU[st.cpu], st)
		load[st.cpu]++
	}
	// Place tasks that may move on their least loaded allowed CPU, as the
	// load balancer would over time.
	for _, st := range movable {
		best := -1
		for c := 0; c < m.ncpu; c++ {
			if st.Mask[c/64]&(1<<(c%64)) == 0 {
				continue
			}
			if best < 0 || load[c] < load[best] {
				best = c
			}
		}
		st.cpu = best
		perCPU[best] = append(perCPU[best], st)
		load[best]++
	}
	for c := 0; c < m.ncpu; c++ {
		// Rebalance: a CPU with two more tasks than another gives one.
		for o := 0; o < m.ncpu; o++ {
			for load[c] > load[o]+1 {
				moved := false
				for i, st := range perCPU[c] {
					if st.Mask[o/64]&(1<<(o%64)) != 0 {
						perCPU[c] = append(perCPU[c][:i], perCPU[c][i+1:]...)
						perCPU[o] = append(perCPU[o], st)
						st.cpu = o
						load[c]--
						load[o]++
						moved = true
						break
					}
				}
				if !moved {
					break
				}
			}
		}
	}
	for c := 0; c < m.ncpu; c++ {
		sessions := map[int]int{}
		for _, st := range perCPU[c] {
			sessions[st.session]++
		}
		for _, st := range perCPU[c] {
			share := m.step / int64(len(sessions)) / int64(sessions[st.session])
			st.run += share
			st.wait += m.step - share
		}
	}
}

// usage is the CPU time of the given tasks.
func usage(ts ...*simTask) int64 {
	var n int64
	for _, st := range ts {
		n += st.run
	}
	return n
}

func pct(a, b int64) float64 { return 100 * float64(a) / float64(a+b) }

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s: got %.2f%%, want %.1f%% ± %.1f", what, got, want, tol)
	}
}

func (m *sim) String() string {
	return fmt.Sprintf("%d ticks, %d holds, %d ticks with a partial hold in %.1fs", m.ticks, m.holds, m.limited, float64(m.now)/1e9)
}
