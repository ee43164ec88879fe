package memory

// The sampler: its goroutine, and one round of reading the processes'
// statm, stat and smaps_rollup without the registry lock.

import (
	"os"
	"slices"
	"time"

	"github.com/containerfs/containerfs/internal/prio"
	"github.com/containerfs/containerfs/internal/proc"
)

// Sampling periods and budgets, from measurements on the development
// machine (a 2-CPU VM): a pread of /proc/PID/statm costs about 5 µs; smaps_rollup walks the page
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
	defer e.closeFiles(nil)
	fast, slow := fastPeriod, slowPeriod
	next := time.Now()
	for e.w.Wait(max(0, time.Until(next))) {
		start := time.Now()
		doSlow := start.Sub(e.lastSlow) >= slow
		watch, cost := e.tick(doSlow)
		if doSlow {
			slow = max(slowPeriod, slowShare*cost)
		} else {
			fast = max(fastPeriod, fastShare*cost)
		}
		next = e.lastSlow.Add(slow)
		if watch > 0 {
			next = minTime(next, start.Add(max(watch, fast)))
		}
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

	e.mu.Lock()
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
	e.mu.Unlock()

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

	e.mu.Lock()
	e.applyLocked(rds, sys)
	e.computeLocked()
	stale := e.staleLocked(now)
	e.mu.Unlock()

	deferred := map[*cstate]bool{}
	if len(stale) > 0 {
		rds = e.rollForDecision(stale, deferred)
		e.mu.Lock()
		e.applyLocked(rds, nil)
		e.computeLocked()
		e.mu.Unlock()
	}

	e.mu.Lock()
	plans, watch := e.actLocked(now, deferred)
	e.mu.Unlock()
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
		if st, err := pf.readStat(); err == nil {
			r.faults, r.minflt, r.majflt = true, st.MinFlt, st.MajFlt
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
		f, oerr := os.Open(proc.Path(e.s.proc(), tgid, "smaps_rollup"))
		if oerr != nil {
			return
		}
		// Opened first, checked second: if the process our stat file
		// names is still alive, its PID was not reused, and the new file
		// is its.
		if _, serr := pf.readStat(); serr != nil {
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
