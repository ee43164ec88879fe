package memory

// The engine: the hierarchy-wide state of the bound hierarchy (which
// processes are in which container, their readings, the tasks paused),
// and the arithmetic from processes' readings to containers' usage.

import (
	"os"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// engine is the memory subsystem's state for the hierarchy it is bound to,
// owned by the root container's state (every cstate points to it): which
// processes are in which container, what the sampler last read of them,
// and the sampler. Fields are guarded by mu unless they say otherwise.
type engine struct {
	s      *Subsys        // immutable
	root   *cstate        // immutable
	pauser Pauser         // immutable
	w      *worker.Worker // the sampler; immutable

	// mu guards the engine and every container's state of the hierarchy.
	// Hooks and file handlers take it after the registry lock; the
	// sampler takes it alone, never the registry lock.
	mu lockrank.Mutex[lockrank.Subsys]
	// shut: the root's Destroy ran; the sampler is stopped.
	shut bool

	threads map[*core.Task]*thread // every task in a non-root container
	procs   map[int]*process       // by TGID: processes with such a task
	inRoot  map[int]struct{}       // TIDs moved into the root container
	held    map[int]uint64         // TIDs we asked the Pauser to stop → start

	sys     sysStats // the machine's figures, for the root container
	thp     bool     // the kernel has transparent hugepages (rss_huge)
	swapCfg bool     // the kernel has swap (swap, swapcached)

	// files are the open /proc files of each sampled process. Owned by
	// the sampler goroutine (in manual mode, by whoever calls tick): no
	// lock.
	files map[*process]*procFiles
	// rollBudget is how much smaps_rollup walking the slow pass may still
	// do; it grows with wall time. Owned by the sampler.
	rollBudget time.Duration
	lastSlow   time.Time
}

// thread is a task in a non-root container. tid, tgid and start are copied
// from the core's Task in hooks, so the sampler never reads the Task (its
// fields are guarded by the registry lock).
type thread struct {
	tid, tgid int
	start     uint64
	c         *cstate
}

// proc is a process (a thread group: one mm) with at least one thread in a
// non-root container. Its memory is charged to its owner: the container of
// its leader, as v1 charges the mm's owner.
type process struct {
	tgid  int
	start uint64 // the leader's start time; 0 until the leader is seen

	threads    map[*thread]struct{}
	leader     *thread // nil if the leader is in the root or gone
	leaderGone bool    // the leader exited; the other threads own the mm
	// joinTicks is when the leader came into a non-root container (its
	// birth, for a fork there). An unknown thread older than that may be
	// in the root container; one born later joined its leader.
	joinTicks uint64
	byFork    bool // born in a non-root container: all its faults count

	// The sampler's readings.
	sampled   bool
	sm        statm     // the latest statm
	sampledAt time.Time // when sm was read
	hasRoll   bool
	roll      rollup
	rollSm    statm // statm read right after roll
	rollAt    time.Time
	rollCost  time.Duration
	faultsSet bool
	minflt    uint64
	majflt    uint64
	gone      bool // its /proc files no longer answer

	killedAt time.Time // when we sent it SIGKILL; zero if we did not
}

func newEngine(s *Subsys, root *cstate, pauser Pauser) *engine {
	e := &engine{
		s: s, root: root, pauser: pauser,
		threads: map[*core.Task]*thread{},
		procs:   map[int]*process{},
		inRoot:  map[int]struct{}{},
		held:    map[int]uint64{},
		w:       worker.New(),
		files:   map[*process]*procFiles{},
	}
	// Two stats and a small sysctl read: none of them blocks.
	_, err := os.Stat("/sys/kernel/mm/transparent_hugepage")
	e.thp = err == nil
	_, err = os.Stat(s.proc() + "/swaps")
	e.swapCfg = err == nil
	e.sys.swappiness = readSwappiness(s.proc())
	root.swappiness = e.sys.swappiness
	return e
}

// wakeLocked makes the sampler look again now. It never blocks.
func (e *engine) wakeLocked() { e.w.Wake() }

// shutdownLocked stops the sampler (without waiting: it takes mu) and lets
// every paused task run.
func (e *engine) shutdownLocked() {
	e.shut = true
	for tid := range e.held {
		e.pauser.Forget(tid, holdReason)
	}
	clear(e.held)
	e.w.Stop()
	if e.s.manual {
		e.closeFiles(nil)
	}
}

// owner is the container charged for p's memory, or nil if that is the
// root container (or not known).
func (p *process) owner() *cstate {
	if p.leader != nil {
		return p.leader.c
	}
	if !p.leaderGone {
		return nil // the leader is in the root container
	}
	// The leader exited and its threads go on: the kernel hands the mm to
	// another user of it. Take the lowest TID, so the choice is stable.
	var o *thread
	for th := range p.threads {
		if o == nil || th.tid < o.tid {
			o = th
		}
	}
	if o == nil {
		return nil
	}
	return o.c
}

// joinLocked records that task t is now in non-root container st: born
// there (fork) or moved there. at is when, in clock ticks since boot.
func (e *engine) joinLocked(t *core.Task, st *cstate, at uint64, fork bool) {
	th := e.threads[t]
	if th == nil {
		th = &thread{tid: t.TID, tgid: t.TGID, start: t.Start}
		e.threads[t] = th
	}
	th.c = st
	delete(e.inRoot, t.TID)
	now := e.s.now()
	for x := st; x != nil; x = x.parent {
		x.lastJoin = now
	}
	p := e.procs[t.TGID]
	if p == nil {
		p = &process{tgid: t.TGID, threads: map[*thread]struct{}{}, joinTicks: at}
		e.procs[t.TGID] = p
	}
	p.threads[th] = struct{}{}
	if t.TID == t.TGID {
		if p.leader == nil {
			// The leader comes from the root container (or is born):
			// threads older than this may have stayed there.
			p.joinTicks = at
			p.byFork = fork
		}
		p.leader, p.start, p.leaderGone = th, t.Start, false
	}
	e.syncHoldLocked(th)
}

// leaveLocked forgets task t: it exited, or moved into the root container.
func (e *engine) leaveLocked(t *core.Task, exited bool) {
	th := e.threads[t]
	if th == nil {
		if !exited {
			return
		}
		delete(e.inRoot, t.TID)
		return
	}
	delete(e.threads, t)
	if _, ok := e.held[th.tid]; ok {
		e.pauser.Forget(th.tid, holdReason)
		delete(e.held, th.tid)
	}
	p := e.procs[th.tgid]
	if p == nil {
		return
	}
	delete(p.threads, th)
	if p.leader == th {
		p.leader = nil
		p.leaderGone = exited
	}
	if len(p.threads) == 0 {
		delete(e.procs, th.tgid)
	}
}

// syncHoldLocked stops th if its container is under OOM, and lets it go if
// not. The Pauser only records the wish: this never blocks.
func (e *engine) syncHoldLocked(th *thread) {
	want := th.c != nil && th.c.underOOM() && th.tgid != os.Getpid()
	_, held := e.held[th.tid]
	switch {
	case want && !held:
		e.pauser.Stop(th.tid, th.start, holdReason)
		e.held[th.tid] = th.start
	case !want && held:
		e.pauser.Forget(th.tid, holdReason)
		delete(e.held, th.tid)
	}
}

// syncHoldsLocked runs syncHoldLocked for every thread: after a pause
// state changed.
func (e *engine) syncHoldsLocked() {
	for _, th := range e.threads {
		e.syncHoldLocked(th)
	}
}

// estimate is what p's memory is believed to be now: the proportional
// figures of its last smaps_rollup, corrected by how its resident memory
// (statm, read much more often) changed since. Without a rollup yet it is
// the plain resident memory, which counts shared pages in full: an upper
// bound, checked with a rollup before anything is killed for it.
func (p *process) estimate() stats {
	if !p.sampled || p.sm.resident == 0 {
		return stats{} // not read yet, or no mm any more (a zombie)
	}
	anonNow, fileNow := p.sm.resident-p.sm.shared, p.sm.shared
	if !p.hasRoll {
		return stats{anon: anonNow, file: fileNow}
	}
	r := p.roll
	st := stats{
		anon:   r.pssAnon + anonNow - (p.rollSm.resident - p.rollSm.shared),
		file:   r.pssFile + r.pssShmem + fileNow - p.rollSm.shared,
		shmem:  r.pssShmem,
		huge:   r.anonHuge,
		swap:   r.swapPss,
		locked: r.locked,
	}
	st.anon = max(st.anon, 0)
	st.file = max(st.file, st.shmem, 0)
	return st
}

// computeLocked recomputes every container's figures from the processes'
// latest readings.
func (e *engine) computeLocked() {
	var walk func(c *cstate)
	walk = func(c *cstate) {
		c.local = stats{}
		for ch := range c.children {
			walk(ch)
		}
	}
	walk(e.root)
	for _, p := range e.procs {
		if o := p.owner(); o != nil && !o.root {
			o.local.add(p.estimate())
		}
	}
	var sum func(c *cstate) stats
	sum = func(c *cstate) stats {
		t := c.local
		for ch := range c.children {
			t.add(sum(ch))
		}
		c.total = t
		if !c.root {
			c.usage = (t.anon + t.file) / pageSize * pageSize
			c.maxUsage = max(c.maxUsage, c.usage)
		}
		return t
	}
	sum(e.root)
	e.root.maxUsage = max(e.root.maxUsage, e.sysUsage())
	e.thresholdsLocked()
}

// sysUsage is the root container's usage_in_bytes: v1's root memcg counts
// every file and anon page on the machine (NR_FILE_PAGES + NR_ANON_MAPPED).
func (e *engine) sysUsage() int64 {
	return (e.sys.vm["nr_file_pages"] + e.sys.vm["nr_anon_pages"]) * pageSize
}

// closeFiles closes the files of every process not in keep (all if nil).
func (e *engine) closeFiles(keep map[*process]bool) {
	for p, pf := range e.files {
		if !keep[p] {
			pf.close()
			delete(e.files, p)
		}
	}
}
