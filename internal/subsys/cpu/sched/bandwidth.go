// Bandwidth control: quotas per period, throttling, and cpu.stat's
// counters.

package sched

// Stat is a group's cpu.stat.
type Stat struct {
	NrPeriods     uint64
	NrThrottled   uint64
	ThrottledTime int64 // ns
}

// Throttled tells whether the group used up its quota in this period.
func (g *Group) Throttled() bool { return g.throttled }

// Stat is the group's cpu.stat as of now: a throttling in progress counts
// up to now.
func (g *Group) Stat(now int64) Stat {
	st := g.stat
	if g.throttled && now > g.throttledAt {
		st.ThrottledTime += now - g.throttledAt
	}
	return st
}

// SetBandwidth sets quota (-1: unlimited) and period, in ns, at time now.
// As in the kernel, any write unthrottles the group and starts a new
// period.
func (s *Sched) SetBandwidth(g *Group, quota, period, now int64) {
	s.unthrottle(g, now)
	g.quota, g.period = quota, period
	g.periodStart, g.used = now, 0
}

func (s *Sched) unthrottle(g *Group, at int64) {
	if g.throttled {
		g.stat.ThrottledTime += max(0, at-g.throttledAt)
		g.throttled = false
	}
}

// bandwidth charges the interval's CPU time to g's quota, rolls periods
// over, and throttles or unthrottles g. Its result says whether g's
// throttling changed and when it wants the next tick.
func (s *Sched) bandwidth(g *Group, now, dt int64) result {
	was := g.throttled
	u := g.u
	t0 := now - dt
	for end := g.periodStart + g.period; end <= now; end = g.periodStart + g.period {
		if end > t0 {
			// The part of the interval's CPU time that fell in this period.
			part := int64(float64(u) * float64(end-t0) / float64(now-t0))
			g.used += part
			u -= part
			t0 = end
		}
		if g.used > 0 || g.throttled {
			g.stat.NrPeriods++
		}
		if g.throttled {
			g.stat.NrThrottled++
		}
		// A new period: the quota is refilled; what was used past it is
		// a debt on the new one.
		s.unthrottle(g, end)
		g.used = max(0, g.used-g.quota)
		g.periodStart = end
		if g.used >= g.quota {
			g.throttled, g.throttledAt = true, end
		}
		if g.used == 0 && u == 0 && now-g.periodStart >= g.period {
			// Idle: skip the periods in which nothing ran; the kernel's
			// period timer stops too and does not count them.
			g.periodStart += (now - g.periodStart) / g.period * g.period
		}
	}
	g.used += u
	if !g.throttled && g.used >= g.quota {
		g.throttled, g.throttledAt = true, now
	}
	r := noResult()
	if g.throttled != was {
		r.change()
	}
	end := g.periodStart + g.period
	switch {
	case g.throttled:
		r.tickIn(end - now)
	case g.u > 0:
		// Tick when the quota will run out at the current rate, in this
		// period or the next; a rate that never exhausts it needs none.
		rate := float64(g.u) / float64(dt)
		if left := float64(g.quota-g.used) / rate; left < float64(end-now) {
			r.tickIn(int64(left))
		} else if whole := float64(g.quota) / rate; whole < float64(g.period) {
			r.tickIn(end - now + int64(whole))
		}
	}
	return r
}
