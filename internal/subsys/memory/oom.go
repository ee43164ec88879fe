package memory

// Deciding on containers over their limit, after a round: which rollups
// are too old to decide on, then, as v1 does, failcnt, a pause (OOM killer
// disabled) or a kill plan, and when the next fast round is due.

import (
	"slices"
	"time"
)

// staleJob is a process whose rollup is too old to decide on.
type staleJob struct {
	p     *process
	tgid  int
	c     *cstate // the over-limit container it is in
	bytes int64   // its estimate: the largest are rolled first
}

// overLocked lists the containers over their limit, deepest first.
func (e *engine) overLocked() []*cstate {
	var over []*cstate
	var visit func(c *cstate)
	visit = func(c *cstate) {
		for ch := range c.children {
			visit(ch)
		}
		if !c.root && c.limit != unlimited && c.usage > c.limit {
			over = append(over, c)
		}
	}
	visit(e.root)
	return over
}

// staleLocked lists the processes of over-limit containers whose rollup is
// missing or too old to decide on.
func (e *engine) staleLocked(now time.Time) []staleJob {
	over := e.overLocked()
	if len(over) == 0 {
		return nil
	}
	// skip: a victim is dying there, or it has waited long enough.
	skip := map[*cstate]bool{}
	for _, c := range over {
		skip[c] = e.victimPendingLocked(c, now) || (!c.deferSince.IsZero() && now.Sub(c.deferSince) >= maxDefer)
	}
	var out []staleJob
	for _, p := range e.procs {
		o := p.owner()
		if o == nil || p.gone || !p.sampled || p.sm.resident == 0 {
			continue
		}
		for _, c := range over {
			if !o.within(c) || skip[c] {
				continue
			}
			if !p.hasRoll || now.Sub(p.rollAt) > freshWindow || !p.rollAt.After(c.lastJoin) {
				est := p.estimate()
				out = append(out, staleJob{p: p, tgid: p.tgid, c: c, bytes: est.anon + est.file})
			}
			break
		}
	}
	slices.SortFunc(out, func(a, b staleJob) int { return int(b.bytes - a.bytes) })
	return out
}

// rollForDecision rolls up stale processes, largest first, within
// preciseBudget; containers left with stale processes are deferred to the
// next round.
func (e *engine) rollForDecision(stale []staleJob, deferred map[*cstate]bool) []reading {
	var rds []reading
	var spent time.Duration
	for _, sj := range stale {
		if spent >= preciseBudget {
			for x := sj.c; x != nil; x = x.parent {
				deferred[x] = true
			}
			continue
		}
		r := reading{p: sj.p}
		t0 := time.Now()
		e.roll(sj.p, sj.tgid, &r)
		spent += time.Since(t0)
		if !r.rolled {
			// Its rollup could not be read (gone, or no mm): statm
			// decides, the sampler finds out about the rest.
			continue
		}
		rds = append(rds, r)
	}
	return rds
}

// victimPendingLocked tells whether a process we killed in c's subtree is
// still dying: v1 waits for an OOM victim to exit before choosing another
// (oom_evaluate_task aborts on tsk_is_oom_victim).
func (e *engine) victimPendingLocked(c *cstate, now time.Time) bool {
	for _, p := range e.procs {
		if p.killedAt.IsZero() || now.Sub(p.killedAt) >= victimWait || p.gone || p.sm.resident == 0 {
			continue
		}
		if o := p.owner(); o != nil && o.within(c) {
			return true
		}
	}
	return false
}

// what v1 would do: count the failure, then pause the subtree (OOM killer
// disabled) or plan a kill, unless a victim is still dying there. A
// container back under its limit is resumed. It also tells when the next
// fast round is due (0: nothing to watch): sooner the nearer a populated
// container is to its limit.
func (e *engine) actLocked(now time.Time, deferred map[*cstate]bool) (plans []killPlan, watch time.Duration) {
	changed := false
	acting := map[*cstate]bool{} // containers with a kill planned below them
	var visit func(c *cstate)
	visit = func(c *cstate) {
		for ch := range c.children {
			visit(ch)
		}
		if c.root {
			return
		}
		over := c.limit != unlimited && c.usage > c.limit
		if !over || !deferred[c] {
			c.deferSince = time.Time{}
		}
		if !over {
			c.noVictimLogged = false
			if c.paused {
				c.paused, changed = false, true
				e.s.Logf.Printf("memory: %s is back under its limit (%d of %d bytes): its tasks run again", c.path(), c.usage, c.limit)
			}
			return
		}
		if c.paused && c.oomKillDisable {
			return // its tasks sleep: no new failures
		}
		c.failcnt++
		if deferred[c] && c.deferSince.IsZero() {
			c.deferSince = now
		}
		if deferred[c] || acting[c] || e.victimPendingLocked(c, now) {
			return
		}
		if c.oomKillDisable {
			c.paused, changed = true, true
			oomNotifyLocked(c)
			e.s.Logf.Printf("memory: %s is over its limit (%d > %d bytes) and its OOM killer is disabled: its tasks are paused", c.path(), c.usage, c.limit)
			return
		}
		pl := killPlan{c: c, usage: c.usage, limit: c.limit}
		for _, p := range e.procs {
			if o := p.owner(); o != nil && o.within(c) && !p.gone && p.sm.resident > 0 {
				pl.candidates = append(pl.candidates, candidate{p: p, tgid: p.tgid, start: p.start,
					resident: p.sm.resident, swap: p.roll.swapPss})
			}
		}
		plans = append(plans, pl)
		oomNotifyLocked(c)
		for x := c; x != nil; x = x.parent {
			acting[x] = true
		}
	}
	visit(e.root)
	if changed {
		e.syncHoldsLocked()
	}
	populated := map[*cstate]bool{}
	for _, p := range e.procs {
		for x := p.owner(); x != nil && !x.root && !populated[x]; x = x.parent {
			populated[x] = true
		}
	}
	consider := func(d time.Duration) {
		if watch == 0 || d < watch {
			watch = d
		}
	}
	for c := range populated {
		if c.paused {
			consider(pausedPeriod)
		}
		if c.limit != unlimited {
			head := time.Duration(float64(max(0, c.limit-c.usage)) / designRate * float64(time.Second))
			consider(min(max(head, fastPeriod), slowPeriod))
		}
		for _, ev := range c.events {
			if ev.kind == thresholdEvent {
				gap := ev.threshold - c.usage
				head := time.Duration(float64(max(gap, -gap)) / designRate * float64(time.Second))
				consider(min(max(head, fastPeriod), slowPeriod))
			}
		}
	}
	return plans, watch
}
