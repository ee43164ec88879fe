// A tick: the interval's samples summed over every subtree, then the
// bandwidth and share decisions, and when to look again.

package sched

import "math"

// Tick advances the model to now. Each task's Run and Wait must hold what
// it used since the previous tick. It decides which tasks are held
// (Task.Held) and returns how long to wait before the next tick, or -1 if
// nothing needs watching until the model changes.
func (s *Sched) Tick(now int64) int64 {
	dt := now - s.now
	if dt <= 0 {
		dt = 1
	}
	s.now = now
	decay := math.Exp(-float64(dt) / float64(max(s.cfg.Tau, 1)))
	s.aggregate(s.root, dt, decay)
	n := int64(s.root.ntasks)
	s.slack = float64(max(s.cfg.Slack, n*s.cfg.SlackPerTask))
	s.minGap = max(s.cfg.MinTick, n*s.cfg.TickPerTask)
	r := noResult()
	s.walk(s.root, func(g *Group) {
		if g != s.root && g.quota >= 0 {
			r.add(s.bandwidth(g, now, dt))
		}
	})
	r.add(s.decide(s.root, false, -1, dt))
	if n == 0 {
		return -1
	}
	maxGap := max(s.cfg.MaxTick, min(n*s.cfg.IdlePerTask, s.cfg.MaxIdleTick))
	next := r.next
	if r.changed {
		next = min(next, s.cfg.Probe)
	}
	return max(s.minGap, min(next, maxGap))
}

// result is what a step of a tick's decisions tells the tick: whether a
// hold changed (a group's rate changes, so the tick after it comes soon, to
// measure the new rates) and when the step wants the next tick.
type result struct {
	changed bool
	next    int64 // ns from now; math.MaxInt64 when it needs none
}

// noResult is a step that changed nothing and needs no tick.
func noResult() result { return result{next: math.MaxInt64} }

// change records that a hold changed.
func (r *result) change() { r.changed = true }

// tickIn asks for a tick in at most d ns.
func (r *result) tickIn(d int64) { r.next = min(r.next, d) }

// add merges what another step found.
func (r *result) add(o result) {
	r.changed = r.changed || o.changed
	r.next = min(r.next, o.next)
}

func (s *Sched) walk(g *Group, f func(*Group)) {
	f(g)
	for _, c := range g.children {
		s.walk(c, f)
	}
}

// aggregate sums the interval's samples over each subtree and updates
// each task's runnable fraction.
func (s *Sched) aggregate(g *Group, dt int64, decay float64) {
	g.reset()
	own := g
	if len(g.children) > 0 && len(g.tasks) > 0 && g != s.root {
		if g.own == nil {
			g.own = &Group{Name: g.Name + "/.", parent: g, pseudo: true, quota: -1, period: DefaultPeriod}
			g.own.v = g.minChildV()
		}
		own = g.own
		own.reset()
		// In the kernel each task weighs 1024 (nice 0) beside the groups.
		own.shares = uint64(DefaultShares * len(g.tasks))
	}
	for _, t := range g.tasks {
		if !t.Held {
			// A held task's demand is unknown: it keeps the last one seen.
			r := float64(t.Run + t.Wait)
			if t.Runnable {
				r = float64(dt)
			}
			t.rsum = t.rsum*decay + r
			t.dsum = t.dsum*decay + float64(dt)
			t.bound = t.Busy() >= s.cfg.BoundFrac
		}
		t.vrun += float64(t.Run)
		own.u += t.Run
		own.w += t.Wait
		own.busy += t.Busy()
		own.ntasks++
		m := t.Mask.and(s.online)
		if m.empty() {
			m = s.online
		}
		own.mask = own.mask.or(m)
		if t.bound && !t.Held {
			own.runBound = append(own.runBound, bound{m, t.Busy()})
		}
		if t.bound {
			own.allBound = append(own.allBound, bound{m, t.Busy()})
		}
	}
	if own != g {
		g.u, g.w, g.ntasks, g.mask, g.busy = own.u, own.w, own.ntasks, own.mask, own.busy
		g.runBound = append(g.runBound, own.runBound...)
		g.allBound = append(g.allBound, own.allBound...)
	}
	for _, c := range g.children {
		s.aggregate(c, dt, decay)
		g.u += c.u
		g.w += c.w
		g.ntasks += c.ntasks
		g.mask = g.mask.or(c.mask)
		g.busy += c.busy
		g.runBound = append(g.runBound, c.runBound...)
		g.allBound = append(g.allBound, c.allBound...)
	}
}

func (g *Group) reset() {
	g.u, g.w, g.mask, g.busy, g.ntasks = 0, 0, Mask{}, 0, 0
	g.runBound, g.allBound = g.runBound[:0], g.allBound[:0]
}

func (g *Group) minChildV() float64 {
	v := math.Inf(1)
	for _, c := range g.children {
		if c.eligible {
			v = min(v, c.v)
		}
	}
	if math.IsInf(v, 1) {
		return 0
	}
	return v
}
