// Partial holds: how many of a group's CPU-bound tasks may run (runLimit),
// how a limit is shared among child groups (allot), and which of a group's
// own tasks run under it (place).

package sched

import (
	"math"
	"slices"
)

// allot shares a limit of limit running CPU-bound tasks among siblings:
// one at a time, each to the eligible sibling with the smallest virtual
// time counting the tasks it already got (Slack per task, weighted by its
// shares) and that has a CPU-bound task left; a sibling that had some
// counts Slack less, so that they are not swapped at every tick. Their own
// holds give way to it.
func (s *Sched) allot(sib []*Group, limit int) result {
	r := noResult()
	had := make([]bool, len(sib))
	for i, c := range sib {
		had[i] = c.slots > 0
		c.slots = 0
		if c.heldShares || c.limit > 0 {
			c.heldShares, c.limit = false, 0
			r.change()
		}
	}
	key := func(i int) float64 {
		c := sib[i]
		k := c.v + float64(c.slots)*s.slack*DefaultShares/float64(max(c.shares, 1))
		if had[i] {
			k -= s.slack
		}
		return k
	}
	for n := 0; n < limit; n++ {
		best := -1
		for i, c := range sib {
			if !c.eligible || c.slots >= min(len(c.allBound), c.mask.Count()) {
				continue
			}
			if best < 0 || key(i) < key(best) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		sib[best].slots++
	}
	// Like a swap of tasks within a group, passing tasks between siblings
	// changes no rate above them: no probe.
	//
	// Tick when a sibling running tasks will be Slack ahead of one that
	// waits for them (its virtual time grows by its tasks' CPU time).
	lo := math.Inf(1)
	for _, l := range sib {
		if l.slots == 0 && l.eligible && len(l.allBound) > 0 {
			lo = min(lo, l.v)
		}
	}
	if math.IsInf(lo, 1) {
		return r
	}
	for _, h := range sib {
		if h.slots > 0 {
			rate := float64(h.slots) * DefaultShares / float64(max(h.shares, 1))
			r.tickIn(max(1, int64((lo+s.slack-h.v)/rate)))
		}
	}
	return r
}

// place decides which of a group's own tasks are held: all of them if the
// group is held; with a limit (a partial hold), all its CPU-bound tasks but
// the limit's worth that used the least CPU time, a running task counting
// 2×Slack less so that tasks are not swapped at every tick (each swap is a
// stop and a resume: 2×Slack halved their rate, and the enforcer's CPU
// time from 2.2 to 1.6% of a core for 3 tasks vs 1 on 2 CPUs).
func (s *Sched) place(tasks []*Task, held bool, limit int) result {
	r := noResult()
	q := 2 * s.slack // see above
	// No credit saved up while asleep: a task that is not CPU-bound stays
	// within q of the running CPU-bound task that used the least, as
	// CFS places a waking task near its queue's min_vruntime. (Tasks held
	// here keep what they are owed.)
	lo := math.Inf(1)
	for _, t := range tasks {
		if t.bound && !t.Held {
			lo = min(lo, t.vrun)
		}
	}
	if !math.IsInf(lo, 1) {
		for _, t := range tasks {
			if !t.bound {
				t.vrun = max(t.vrun, lo-q)
			}
		}
	}
	if held || limit < 0 {
		for _, t := range tasks {
			t.Held = held
		}
		return r
	}
	type cand struct {
		t   *Task
		key float64
	}
	var cands []cand
	for _, t := range tasks {
		if !t.bound {
			// It sleeps most of the time: holding it would gain little
			// and delay its wake-ups. What it uses counts in the group's
			// virtual time.
			t.Held = false
			continue
		}
		key := t.vrun
		if !t.Held {
			key -= q
		}
		cands = append(cands, cand{t, key})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return a.t.TID - b.t.TID
	})
	// A swap within the group changes no group's rate: no probe (changed)
	// is needed after it.
	for i, c := range cands {
		c.t.Held = i >= limit
	}
	if len(cands) > limit {
		// Tick when a running task will be q ahead of the held task
		// that used the least (a running task uses at most its wall time).
		first := cands[limit].t.vrun
		for _, c := range cands[:limit] {
			r.tickIn(max(1, int64(first+q-c.t.vrun)))
		}
	}
	return r
}

// boundSet says which tasks saturated counts: the CPU-bound ones that run,
// or the CPU-bound ones whether held or not.
type boundSet int

const (
	boundRunning boundSet = iota
	boundAny
)

// runLimit is how many of c's CPU-bound tasks may run without taking a
// CPU from the CPU-bound tasks of the groups behind it: 0 if those can
// keep busy every CPU that c's tasks may use (and the CPUs those tasks may
// move to), so that holding c whole gives them CPU time rather than idling
// a CPU; -1 if no limit would give them more (nobody behind, they leave c
// as many CPUs as it has CPU-bound tasks, or c is not one to hold
// partially: it has child groups, or a CPU-bound task that may not run on
// every CPU of c's, for which the kernel might not place the tasks let run
// on the CPUs left free).
func runLimit(c *Group, behind []*Group, which boundSet) int {
	cpus := c.mask
	n, demand := 0, 0.0
	for _, o := range behind {
		list := o.runBound
		if which == boundAny {
			list = o.allBound
		}
		for _, b := range list {
			if b.mask.intersects(c.mask) {
				n++
				cpus = cpus.or(b.mask)
				demand += min(1, b.busy)
			}
		}
	}
	if n == 0 {
		return -1
	}
	free := cpus.Count() - n
	if free <= 0 {
		return 0
	}
	if float64(n)-demand >= partialIdle {
		// Those behind are CPU-bound only part of the time: limited to
		// free tasks, c would leave that much of a CPU idle. Round up.
		free++
	}
	if free >= min(len(c.allBound), c.mask.Count()) {
		return -1
	}
	for _, b := range c.allBound {
		if b.mask.and(c.mask) != c.mask {
			return -1
		}
	}
	return free
}

// partialIdle is how much of a CPU, on the runnable fractions of the
// CPU-bound tasks behind, a partial hold may leave idle. Past it the
// limit is rounded up: a CPU idle a third of the time or more costs more
// than the share it gives those behind.
const partialIdle = 0.3
