package memory

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/prio"
)

// Sampling periods and budgets. FIELD-NOTES and our own measurements here:
// a pread of /proc/PID/statm costs about 5 µs; smaps_rollup walks the page
// tables, about 1.4 ms for 100 MB and 6 ms for 1 GB.
const (
	// fastPeriod is how often the processes of a container near its limit
	// are looked at: a 1 GB/s allocator gains 10 MB in that time. It is
	// stretched to 20 times the cost of a round, so that the fast path
	// stays under 5% of one CPU however many processes there are.
	fastPeriod = 10 * time.Millisecond
	fastShare  = 20
	// designRate is the fastest allocation planned for, in bytes per
	// second (a single thread faulting in transparent huge pages on a
	// fast machine): a container with more headroom than
	// designRate*period is looked at after that period (up to
	// slowPeriod), as no such allocator can reach its limit sooner. An
	// allocator at rate R ≤ designRate is caught within one fastPeriod of
	// crossing; a faster one may get (R/designRate - 1) × headroom
	// further. A wake-up costs 60-250 µs of CPU on a loaded VM here, so
	// this spacing is most of the saving.
	designRate = 4 << 30
	// pausedPeriod is how often a paused container is looked at (its
	// usage may drop if another process frees memory or is killed).
	pausedPeriod = 100 * time.Millisecond
	// slowPeriod is how often every process in a non-root container, and
	// the machine, is looked at (for usage_in_bytes, stat and the root),
	// stretched to 50 times the cost of a round.
	slowPeriod = time.Second
	slowShare  = 50
	// rollShare: rollups for reporting use at most 1/rollShare of the wall
	// time; rollBudgetCap bounds what an idle stretch saves up.
	rollShare     = 50
	rollBudgetCap = 200 * time.Millisecond
	// A rollup younger than freshWindow (and younger than the last task
	// to join the container) is trusted when deciding to kill or pause.
	freshWindow = time.Second
	// preciseBudget bounds the rollups one round makes for a decision;
	// the rest wait for the next round, but for no longer than maxDefer
	// (forks that keep making rollups stale must not postpone a kill
	// for ever): then the estimates decide.
	preciseBudget = 20 * time.Millisecond
	maxDefer      = 200 * time.Millisecond
	// victimWait is how long a killed process may take to die before the
	// next one is chosen.
	victimWait = time.Second
)

// run is the sampler goroutine: one per bound hierarchy, started by the
// root's Create, stopped by its Destroy.
func (e *engine) run() {
	prio.Background() // bulk reads of statm and smaps_rollup: not real-time
	defer close(e.done)
	defer e.closeFiles(nil)
	fast, slow := fastPeriod, slowPeriod
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-e.wake:
		case <-timer.C:
		}
		start := time.Now()
		doSlow := start.Sub(e.lastSlow) >= slow
		watch, cost := e.tick(doSlow)
		if doSlow {
			slow = max(slowPeriod, slowShare*cost)
		} else {
			fast = max(fastPeriod, fastShare*cost)
		}
		next := e.lastSlow.Add(slow)
		if watch > 0 {
			next = minTime(next, start.Add(max(watch, fast)))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(0, time.Until(next)))
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// job is a process to read, with what the sampler needs of it copied under
// the lock.
type job struct {
	p        *process
	tgid     int
	start    uint64
	rolled   bool
	rollAt   time.Time
	rollCost time.Duration
}

// reading is what one round read of one process.
type reading struct {
	p       *process
	gone    bool
	sm      statm
	at      time.Time
	faults  bool
	minflt  uint64
	majflt  uint64
	rolled  bool
	roll    rollup
	rollSm  statm
	rollAt  time.Time
	rollCst time.Duration
}

// tick is one sampling round: read the processes (those of limited or
// paused containers; every one on a slow round), recompute the containers'
// usage, and act on those over their limit. It tells when the next fast
// round is due (0: nothing to watch), and how long the reading took (the
// periods are stretched by that, not by the rare rollups and kills).
func (e *engine) tick(slow bool) (time.Duration, time.Duration) {
	s := e.s
	now := s.now()

	s.mu.Lock()
	var jobs []job
	keep := map[*process]bool{}
	for _, p := range e.procs {
		if slow {
			keep[p] = true
		}
		o := p.owner()
		if o == nil || o.root || p.start == 0 || (p.gone && !slow) {
			continue // a gone process is tried again on slow rounds
		}
		limited := o.effLimit() != unlimited || o.underOOM() || o.watchesLocked()
		if slow || limited {
			jobs = append(jobs, job{p: p, tgid: p.tgid, start: p.start,
				rolled: p.hasRoll, rollAt: p.rollAt, rollCost: p.rollCost})
		}
	}
	s.mu.Unlock()

	t0 := time.Now()
	var rds []reading
	for _, j := range jobs {
		rds = append(rds, e.read(j, slow))
	}
	cost := time.Since(t0)
	var sys *sysStats
	if slow {
		e.rollBudget = min(rollBudgetCap, e.rollBudget+now.Sub(e.lastSlow)/rollShare)
		e.lastSlow = now
		e.rollForReport(jobs, rds, now)
		if st, err := readSys(s.proc()); err == nil {
			sys = &st
		}
		e.closeFiles(keep)
		cost = time.Since(t0)
	}

	s.mu.Lock()
	e.applyLocked(rds, sys)
	e.computeLocked()
	stale := e.staleLocked(now)
	s.mu.Unlock()

	deferred := map[*cstate]bool{}
	if len(stale) > 0 {
		rds = e.rollForDecision(stale, deferred)
		s.mu.Lock()
		e.applyLocked(rds, nil)
		e.computeLocked()
		s.mu.Unlock()
	}

	s.mu.Lock()
	plans, watch := e.actLocked(now, deferred)
	s.mu.Unlock()
	for _, pl := range plans {
		e.execute(pl)
	}
	if len(plans) > 0 {
		watch = fastPeriod
	}
	return watch, cost
}

// read reads one process's statm and, on a slow round, its fault counts.
func (e *engine) read(j job, slow bool) reading {
	r := reading{p: j.p, at: e.s.now()}
	pf := e.files[j.p]
	if pf == nil {
		var err error
		if pf, err = openProc(e.s.proc(), j.tgid, j.start); err != nil {
			r.gone = true
			return r
		}
		e.files[j.p] = pf
	}
	sm, err := pf.readStatm()
	if err != nil {
		r.gone = true
		pf.close()
		delete(e.files, j.p)
		return r
	}
	r.sm = sm
	if slow {
		if minflt, majflt, _, err := pf.readStat(); err == nil {
			r.faults, r.minflt, r.majflt = true, minflt, majflt
		}
	}
	return r
}

// roll reads one process's smaps_rollup into r. After an exec the open
// file still names the old mm, which is gone (ESRCH): it is reopened once.
func (e *engine) roll(p *process, tgid int, r *reading) {
	pf := e.files[p]
	if pf == nil {
		return
	}
	ro, sm, cost, err := pf.readRollup()
	if err != nil {
		f, oerr := os.Open(e.s.proc() + "/" + strconv.Itoa(tgid) + "/smaps_rollup")
		if oerr != nil {
			return
		}
		// Opened first, checked second: if the process our stat file
		// names is still alive, its PID was not reused, and the new file
		// is its.
		if _, _, _, serr := pf.readStat(); serr != nil {
			f.Close()
			return
		}
		pf.rollup.Close()
		pf.rollup = f
		if ro, sm, cost, err = pf.readRollup(); err != nil {
			return
		}
	}
	r.rolled, r.roll, r.rollSm, r.rollAt, r.rollCst = true, ro, sm, e.s.now(), cost
	r.sm, r.at = sm, r.rollAt
}

// rollForReport refreshes the rollups of the processes read this slow
// round, never-rolled ones first, then the oldest, within the budget: each
// process at most once per 50 times its own cost.
func (e *engine) rollForReport(jobs []job, rds []reading, now time.Time) {
	var idx []int
	for i, j := range jobs {
		if rds[i].gone {
			continue
		}
		if !j.rolled || now.Sub(j.rollAt) >= max(slowPeriod, rollShare*j.rollCost) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		ja, jb := jobs[a], jobs[b]
		if ja.rolled != jb.rolled {
			if !ja.rolled {
				return -1
			}
			return 1
		}
		return ja.rollAt.Compare(jb.rollAt)
	})
	for _, i := range idx {
		if e.rollBudget <= 0 {
			break
		}
		e.roll(jobs[i].p, jobs[i].tgid, &rds[i])
		e.rollBudget -= rds[i].rollCst
	}
}

// applyLocked stores what a round read. Fault counts go to the process's
// container as the difference since the last reading; a process born in a
// non-root container brings all of its own.
func (e *engine) applyLocked(rds []reading, sys *sysStats) {
	for _, r := range rds {
		p := r.p
		if e.procs[p.tgid] != p {
			continue // it left meanwhile
		}
		if r.gone {
			p.gone, p.sampled, p.sm = true, true, statm{}
			continue
		}
		p.gone, p.sampled, p.sm, p.sampledAt = false, true, r.sm, r.at
		if r.rolled {
			p.hasRoll, p.roll, p.rollSm, p.rollAt, p.rollCost = true, r.roll, r.rollSm, r.rollAt, r.rollCst
		}
		if r.faults {
			if o := p.owner(); o != nil {
				switch {
				case p.faultsSet:
					o.faults += r.minflt + r.majflt - min(p.minflt+p.majflt, r.minflt+r.majflt)
					o.majFaults += r.majflt - min(p.majflt, r.majflt)
				case p.byFork:
					o.faults += r.minflt + r.majflt
					o.majFaults += r.majflt
				}
			}
			p.faultsSet, p.minflt, p.majflt = true, r.minflt, r.majflt
		}
	}
	if sys != nil {
		e.sys = *sys
	}
}

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

// candidate is a process that an OOM kill in a container may choose.
type candidate struct {
	p        *process
	tgid     int
	start    uint64
	resident int64
	swap     int64
}

// killPlan is an OOM kill to carry out outside the lock.
type killPlan struct {
	c          *cstate
	usage      int64
	limit      int64
	candidates []candidate
}

// actLocked decides, for every container over its limit, deepest first,
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
				e.s.logf("memory: %s is back under its limit (%d of %d bytes): its tasks run again", c.path(), c.usage, c.limit)
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
			e.s.logf("memory: %s is over its limit (%d > %d bytes) and its OOM killer is disabled: its tasks are paused", c.path(), c.usage, c.limit)
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

// oomScoreAdjMin is OOM_SCORE_ADJ_MIN: such a process is never killed.
const oomScoreAdjMin = -1000

// execute carries out a kill plan as v1's OOM killer chooses
// (oom_badness): the largest process by resident memory plus swap, plus
// oom_score_adj thousandths of the limit, never one at -1000. Only
// processes all of whose threads are outside the root container may be
// killed (SIGKILL kills the whole thread group). If the container was
// paused, it runs again once the victim is killed.
func (e *engine) execute(pl killPlan) {
	s := e.s
	type scored struct {
		candidate
		points int64
		comm   string
	}
	var cands []scored
	limitPages := pl.limit / pageSize
	for _, c := range pl.candidates {
		adj, err := readOOMScoreAdj(s.proc(), c.tgid)
		if err != nil || adj == oomScoreAdjMin {
			continue
		}
		points := (c.resident+c.swap)/pageSize + adj*limitPages/1000
		comm, _ := os.ReadFile(s.proc() + "/" + strconv.Itoa(c.tgid) + "/comm")
		cands = append(cands, scored{candidate: c, points: points, comm: strings.TrimSpace(string(comm))})
	}
	slices.SortFunc(cands, func(a, b scored) int {
		if a.points != b.points {
			return int(b.points - a.points)
		}
		return b.tgid - a.tgid
	})
	handled := false
	var refusals []string
	for _, c := range cands {
		ok, why := e.killable(c.p, c.tgid)
		if !ok {
			refusals = append(refusals, fmt.Sprintf("%d: %s", c.tgid, why))
			continue
		}
		s.mu.Lock()
		done, err := e.killLocked(pl.c, c.p)
		s.mu.Unlock()
		if err != nil {
			refusals = append(refusals, fmt.Sprintf("%d: %v", c.tgid, err))
			continue
		}
		if done {
			s.logf("memory: %s is over its limit (%d > %d bytes): killed process %d (%s), %d bytes resident",
				pl.c.path(), pl.usage, pl.limit, c.tgid, c.comm, c.resident)
		}
		handled = true
		break
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pl.c.paused {
		// v1 wakes its OOM waiters when the killer is re-enabled; they
		// run again, killed or not.
		pl.c.paused = false
		e.syncHoldsLocked()
	}
	if handled {
		pl.c.noVictimLogged = false
	} else if !pl.c.noVictimLogged {
		// Said once until it is back under its limit or a kill is done:
		// this is looked at again every round.
		pl.c.noVictimLogged = true
		s.logf("memory: %s is over its limit (%d > %d bytes) and has no process that may be killed %v", pl.c.path(), pl.usage, pl.limit, refusals)
	}
}

// killable tells whether killing p's whole thread group hits only tasks
// outside the root container, as far as can be told: every thread is known
// to be in a non-root container, or is unknown but born after the leader
// came in (its fork event not read yet: a new thread joins its leader). A
// thread moved into the root container, or an unknown one older than that
// (it stayed in the root when the leader alone was moved), forbids it.
func (e *engine) killable(p *process, tgid int) (bool, string) {
	s := e.s
	ents, err := os.ReadDir(s.proc() + "/" + strconv.Itoa(tgid) + "/task")
	if err != nil {
		return false, "gone"
	}
	var unknown []int
	s.mu.Lock()
	known := map[int]bool{}
	for th := range p.threads {
		known[th.tid] = true
	}
	join := p.joinTicks
	for _, ent := range ents {
		tid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if _, ok := e.inRoot[tid]; ok {
			s.mu.Unlock()
			return false, fmt.Sprintf("its thread %d is in the root container", tid)
		}
		if !known[tid] {
			unknown = append(unknown, tid)
		}
	}
	s.mu.Unlock()
	for _, tid := range unknown {
		start, err := readTaskStart(s.proc(), tgid, tid)
		if err != nil {
			continue // exited
		}
		if start+1 < join {
			return false, fmt.Sprintf("its thread %d, older than its move, may be in the root container", tid)
		}
	}
	return true, ""
}

// killLocked kills p for c if that is still called for: p is still one of
// c's processes, c is still over its limit, and no victim is dying there.
// It holds mu while it signals (a pidfd signal never blocks), so p cannot
// be moved into the root container between the check and the kill.
func (e *engine) killLocked(c *cstate, p *process) (bool, error) {
	now := e.s.now()
	o := p.owner()
	if e.procs[p.tgid] != p || o == nil || !o.within(c) || c.removed || c.limit == unlimited || c.usage <= c.limit {
		return false, nil
	}
	if e.victimPendingLocked(c, now) {
		return false, nil
	}
	if p.tgid == os.Getpid() {
		return false, fmt.Errorf("the daemon: %w", syscall.EPERM)
	}
	if err := e.s.kill(p.tgid, p.start); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			p.gone = true
		}
		return false, err
	}
	p.killedAt = now
	// v1 counts the kill in the victim's memcg and every ancestor below
	// the root (memcg_memory_event_mm(MEMCG_OOM_KILL)).
	for x := o; x != nil && !x.root; x = x.parent {
		x.oomKill++
	}
	return true, nil
}
