// The decision walk down the tree, and the share decisions among one set
// of siblings: the group-level CFS.

package sched

import (
	"math"
	"slices"
)

// decide makes the share decisions among g's children (and g's own
// tasks), then below them, and sets every group's held flag.
func (s *Sched) decide(g *Group, parentHeld bool, limit int, dt int64) result {
	r := noResult()
	wasHeld := g.held
	g.held = parentHeld || g.heldShares || g.throttled
	if g.held != wasHeld {
		r.change()
	}
	// limit (-1: none) is how many CPU-bound tasks g's subtree may run:
	// its own partial hold, or its part of its parent's.
	if g.limit > 0 && (limit < 0 || g.limit < limit) {
		limit = g.limit
	}
	if g.held {
		limit = -1
	}
	sib := g.children
	if g.own != nil && len(g.children) > 0 && len(g.tasks) > 0 {
		sib = append(slices.Clone(g.children), g.own)
	}
	allotted := false
	if len(sib) > 0 {
		// The children's CPU time counts even in the tick that holds g:
		// it was used before the hold. Under a limit, the children share
		// its tasks instead of holding each other.
		r.add(s.shares(sib, dt, !g.held && limit < 0))
		if limit >= 0 {
			r.add(s.allot(sib, limit))
			allotted = true
		}
	}
	// The group that stands for g's own tasks among their siblings.
	held, own := g.held, limit
	if g.own != nil && len(g.children) > 0 {
		held = held || g.own.heldShares
		switch {
		case allotted:
			own = g.own.slots
		case g.own.limit > 0:
			own = g.own.limit
		default:
			own = -1
		}
	}
	r.add(s.place(g.tasks, held, own))
	for _, c := range g.children {
		l := -1
		if allotted {
			l = c.slots
		}
		r.add(s.decide(c, g.held, l, dt))
	}
	return r
}

// shares is the group-level CFS among one set of siblings. With decide
// false (their parent is held) it only accounts for their CPU time and
// leaves their holds as they are.
func (s *Sched) shares(sib []*Group, dt int64, decide bool) result {
	r := noResult()
	vminPrev := math.Inf(1)
	for _, c := range sib {
		if c.eligible {
			vminPrev = min(vminPrev, c.v)
		}
	}
	var elig []*Group
	for _, c := range sib {
		was := c.eligible
		demand := c.busy >= s.cfg.DemandFrac
		c.eligible = !c.throttled && c.ntasks > 0 && (demand || c.heldShares)
		if c.eligible && !was && !math.IsInf(vminPrev, 1) {
			// No credit for the time it was idle.
			c.v = max(c.v, vminPrev)
		}
		c.v += float64(c.u) * DefaultShares / float64(max(c.shares, 1))
		if c.eligible {
			elig = append(elig, c)
		} else if c.heldShares || c.limit > 0 {
			c.heldShares, c.limit = false, 0
			r.change()
		}
	}
	if !decide {
		return r
	}
	if len(elig) < 2 {
		for _, c := range elig {
			if c.heldShares || c.limit > 0 {
				c.heldShares, c.limit = false, 0
				r.change()
			}
		}
		return r
	}
	vmin := math.Inf(1)
	for _, c := range elig {
		vmin = min(vmin, c.v)
	}
	// Decide against the holds as they were during the interval.
	wasHeld := make([]bool, len(elig))
	for i, c := range elig {
		wasHeld[i] = c.heldShares
	}
	rate := func(c *Group) float64 {
		return float64(c.u) * DefaultShares / float64(max(c.shares, 1)) / float64(dt)
	}
	for i, c := range elig {
		var behind []*Group
		for j, o := range elig {
			if j != i && !wasHeld[j] && o.v < c.v {
				behind = append(behind, o)
			}
		}
		lim := runLimit(c, behind, boundRunning)
		if wasHeld[i] {
			// Let go once nobody behind is running, or those behind can
			// no longer use the CPUs c would take. (On their average
			// runnable fraction, not on this one interval's: /proc
			// reports a wait only once it ended, so a sibling starved by
			// other load shows none for a while.) A partial hold may
			// follow at the next tick.
			if len(behind) == 0 || lim != 0 {
				c.heldShares = false
				r.change()
				continue
			}
			// Held until the last of those behind catches up, looking
			// again every few probes: a sibling that woke up for a short
			// burst (far behind with a large weight) stops wanting the CPU
			// long before it catches up.
			wait := int64(0)
			for _, o := range behind {
				if r := rate(o); r > 0 {
					wait = max(wait, int64((c.v-o.v)/r))
				} else {
					wait = max(wait, s.cfg.Probe)
				}
			}
			r.tickIn(min(max(wait, 1), max(4*s.cfg.Probe, 2*s.minGap)))
			continue
		}
		if c.limit > 0 {
			// A partial hold lasts while c leads siblings that cannot
			// fill the CPUs it would take; its limit follows the CPUs
			// they leave free, and it becomes a whole hold if they can
			// fill them all.
			switch {
			case len(behind) == 0 || lim < 0:
				c.limit = 0
				r.change()
				continue
			case lim == 0:
				c.limit, c.heldShares = 0, true
				r.change()
				continue
			case lim != c.limit:
				c.limit = lim
				r.change()
			}
			// Limited as far as helps those behind, c may still run
			// ahead (they cannot use their whole share): cap its lead as
			// below, so that it is not owed later.
			if s.uncontended(c, elig, i, lim) {
				c.v = min(c.v, vmin+max(float64(s.cfg.MaxLead), 2*s.slack))
			}
			// Look again when those behind would catch up at the
			// current rates (the rotation in place asks for its own
			// ticks), or after a few probes.
			look := max(4*s.cfg.Probe, 2*s.minGap)
			wait := int64(0)
			for _, o := range behind {
				if r := rate(o) - rate(c); r > 0 {
					wait = max(wait, int64((c.v-o.v)/r))
				} else {
					wait = look
				}
			}
			r.tickIn(min(max(wait, 1), look))
			continue
		}
		if lim < 0 {
			// Nobody would get more CPU if c stopped or ran fewer tasks:
			// cap its lead, unless siblings behind it are held and would
			// contend once let go (c then overtook them while they were
			// held: the lead is owed to them).
			if s.uncontended(c, elig, i, -1) {
				c.v = min(c.v, vmin+max(float64(s.cfg.MaxLead), 2*s.slack))
			}
			continue
		}
		// The sibling furthest behind decides: c waits for it.
		furthest := behind[0]
		for _, o := range behind {
			if o.v < furthest.v {
				furthest = o
			}
		}
		if c.v-furthest.v > s.slack {
			if lim == 0 {
				c.heldShares = true
			} else {
				c.limit = lim
			}
			r.change()
			continue
		}
		// Tick when c's lead reaches Slack at the current rates.
		if g := rate(c) - rate(furthest); g > 0 {
			r.tickIn(int64((s.slack-(c.v-furthest.v))/g) + 1)
		}
	}
	return r
}

// uncontended tells whether c's lead over the siblings behind it (elig
// but its own index i) is owed to none of them: even with those held
// counted, they could not use more CPU than c, limited to lim tasks (-1:
// not limited), leaves them.
func (s *Sched) uncontended(c *Group, elig []*Group, i, lim int) bool {
	var all []*Group
	for j, o := range elig {
		if j != i && o.v < c.v {
			all = append(all, o)
		}
	}
	l := runLimit(c, all, boundAny)
	return l < 0 || (lim > 0 && l >= lim)
}
