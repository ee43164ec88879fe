package cpuset

import (
	"errors"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/prio"
	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/subsys/cpulist"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// The enforcer: keeping each task on its cpuset's CPUs, at once and by
// checking.

// DefaultInterval is how often the enforcer checks every tracked task's
// affinity. A task that widens its own affinity runs outside its cpuset
// for at most about this long plus one pass (see pause for many tasks, and
// docs/deviations.md for the measured bound).
const DefaultInterval = 100 * time.Millisecond

// topologyEvery is how many checks pass between two reads of the online
// CPUs and memory nodes (hotplug is rare; a read is three sysfs files).
const topologyEvery = 10

// enforcer keeps the tasks of one cpuset hierarchy on their cpuset's CPUs.
// The hooks tell it, with the registry lock held, where each task belongs
// (place, release, setCPUs, forget); it applies the change at once with
// sched_setaffinity, and its worker (run) re-checks every tracked task
// each interval, because a task may call sched_setaffinity itself and
// userspace is told of no such call. It never takes the registry lock:
// lock order is registry, then mu. It is the hierarchy's: its root's
// state owns it, and every cpuset's state points to it.
type enforcer struct {
	k        Kernel
	interval time.Duration
	log      core.Logf
	w        *worker.Worker // woken when there are migrations to do

	mu      lockrank.Mutex[lockrank.Subsys]
	topo    Topology         // guarded by mu; refreshed by run
	tasks   map[int]*tracked // by TID, tasks outside the root; guarded by mu
	pending []migration      // memory_migrate work for run; guarded by mu
	stats   Stats            // guarded by mu
}

// tracked is one task outside the hierarchy's root.
type tracked struct {
	start uint64      // start time in ticks: tells a reused TID
	cpus  cpulist.Set // its cpuset's cpus
	// user is the mask the task asked for itself with sched_setaffinity,
	// if hasUser. Since Linux 6.2 the kernel keeps it (user_cpus_ptr) and
	// gives the task user∩cpus when its cpuset changes, or cpus if that is
	// empty; we do the same.
	user    cpulist.Set
	hasUser bool
	// want is the affinity the task has, as far as we know: what we last
	// set or last saw. A different value seen by the checker means someone
	// called sched_setaffinity on it.
	want   cpulist.Set
	warned bool // a failed sched_setaffinity has been logged
}

// effective is the affinity the kernel would give the task: what it asked
// for within its cpuset, or the whole cpuset.
func (tr *tracked) effective() cpulist.Set {
	if tr.hasUser {
		if x := tr.user.And(tr.cpus); !x.IsEmpty() {
			return x
		}
	}
	return tr.cpus
}

// migration is memory_migrate work: move process pid's pages.
type migration struct {
	pid      int
	from, to cpulist.Set
}

// Stats are the enforcer's counters, for tests and measurements.
type Stats struct {
	Checks      int           // checker passes
	Corrected   int           // affinities the checker put back
	LastScan    time.Duration // how long the last pass took
	Tracked     int           // tasks tracked now
	Migrations  int           // migrate_pages calls made
	SetFailures int           // sched_setaffinity calls that failed
}

func newEnforcer(k Kernel, topo Topology, interval time.Duration, log core.Logf) *enforcer {
	return &enforcer{
		k: k, interval: interval, log: log, topo: topo,
		w:     worker.New(),
		tasks: map[int]*tracked{},
	}
}

// topology is the machine as last read.
func (e *enforcer) topology() Topology {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.topo
}

// holds tells whether tr, tracked as started at its start, is the task the
// model now says started at start. Both come from the model, whose start
// times may be a fork event's (late, never early): proc.SameStart, with
// the first one recorded as the reference. A TID reused by a later task
// shows a later start and is not tr.
func (tr *tracked) holds(start uint64) bool { return proc.SameStart(tr.start, start) }

// place records that task tid (started at start) is now in a cpuset with
// cpus, and gives it the affinity it should have there. A task seen for
// the first time keeps, as its own choice, a current mask that does not
// cover ref (the CPUs it would have had anyway): a mask narrowed with
// taskset before it was moved, or inherited from a parent that narrowed
// itself.
func (e *enforcer) place(tid int, start uint64, cpus, ref cpulist.Set) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.placeLocked(tid, start, cpus, ref)
}

func (e *enforcer) placeLocked(tid int, start uint64, cpus, ref cpulist.Set) {
	tr := e.tasks[tid]
	if tr == nil || !tr.holds(start) {
		cur, err := e.k.Affinity(tid)
		if err != nil {
			// ESRCH: it has exited already; its exit event follows.
			if !errors.Is(err, syscall.ESRCH) {
				e.log.Printf("cpuset: task %d: %v", tid, err)
			}
			return
		}
		tr = &tracked{start: start, want: cur}
		if !ref.SubsetOf(cur) {
			tr.user, tr.hasUser = cur, true
		}
		e.tasks[tid] = tr
	}
	tr.cpus = cpus
	e.applyLocked(tid, tr)
}

// setCPUs tells the enforcer that task tid's cpuset now has cpus.
func (e *enforcer) setCPUs(tid int, start uint64, cpus cpulist.Set) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.placeLocked(tid, start, cpus, cpus)
}

// release is a task's move back to the root: as the kernel does, it gets
// every online CPU back (within what it asked for itself), and is no
// longer tracked. A task we never placed is not touched.
func (e *enforcer) release(tid int, start uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tr := e.tasks[tid]
	if tr == nil || !tr.holds(start) {
		return
	}
	delete(e.tasks, tid)
	tr.cpus = e.topo.CPUs
	e.applyLocked(tid, tr)
}

// forget drops an exited task.
func (e *enforcer) forget(tid int, start uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if tr := e.tasks[tid]; tr != nil && tr.holds(start) {
		delete(e.tasks, tid)
	}
}

// applyLocked gives the task its effective affinity if it does not have it.
func (e *enforcer) applyLocked(tid int, tr *tracked) {
	want := tr.effective()
	if want.IsEmpty() || want.Equal(tr.want) {
		return
	}
	if err := e.k.SetAffinity(tid, want); err != nil {
		e.stats.SetFailures++
		if errors.Is(err, syscall.ESRCH) {
			return // exited; its exit event follows
		}
		// EINVAL: the host kernel's own cpuset does not allow any of
		// these CPUs to this task. Remember what it has, so that the
		// checker does not take it for the task's own doing.
		if !tr.warned {
			tr.warned = true
			e.log.Printf("cpuset: task %d cannot be confined to CPUs %s: %v", tid, want, err)
		}
		if cur, err := e.k.Affinity(tid); err == nil {
			tr.want = cur
		}
		return
	}
	tr.want = want
}

// queueMigration asks run to move a process's pages (memory_migrate).
func (e *enforcer) queueMigration(pid int, from, to cpulist.Set) {
	if from.Equal(to) {
		return
	}
	e.mu.Lock()
	e.pending = append(e.pending, migration{pid: pid, from: from, to: to})
	e.mu.Unlock()
	e.w.Wake()
}

// start runs the checker on its worker.
func (e *enforcer) start() { e.w.Start(e.run) }

// close stops the checker. It does not wait: it may be called with the
// registry lock held, and run may be in the middle of migrate_pages.
func (e *enforcer) close() { e.w.Stop() }

// run checks every tracked task each pause, and runs queued migrations
// as soon as it is woken for them.
func (e *enforcer) run() {
	prio.Background() // bulk reads of affinities: not real-time
	timer := time.NewTimer(e.interval)
	defer timer.Stop()
	for n := 1; ; {
		select {
		case <-e.w.Stopping():
			return
		case <-e.w.Woken():
			e.migrate()
		case <-timer.C:
			if n%topologyEvery == 0 {
				if t, err := e.k.Topology(); err == nil {
					e.mu.Lock()
					e.topo = t
					e.mu.Unlock()
				}
			}
			n++
			scan := e.check()
			e.migrate()
			timer.Reset(pause(e.interval, scan))
		}
	}
}

// maxDuty bounds the checker's cost: it pauses at least maxDuty times as
// long as its last pass took, so it never uses more than about 1/maxDuty
// of one CPU, however many tasks it tracks.
const maxDuty = 10

// pause is the wait before the next pass: the interval, stretched when a
// pass is long (thousands of tracked tasks; a task costs 2-8 µs here).
func pause(interval, scan time.Duration) time.Duration {
	return max(interval, maxDuty*scan)
}

// check compares every tracked task's affinity with what it should be and
// puts back what was widened. mu is taken per task, so a hook waits for at
// most one task's two system calls.
func (e *enforcer) check() time.Duration {
	began := time.Now()
	e.mu.Lock()
	tids := make([]int, 0, len(e.tasks))
	for tid := range e.tasks {
		tids = append(tids, tid)
	}
	e.mu.Unlock()
	corrected := 0
	for _, tid := range tids {
		e.mu.Lock()
		if tr := e.tasks[tid]; tr != nil && e.checkLocked(tid, tr) {
			corrected++
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.stats.Checks++
	e.stats.Corrected += corrected
	e.stats.LastScan = time.Since(began)
	scan := e.stats.LastScan
	e.mu.Unlock()
	return scan
}

// checkLocked handles one task; it tells whether it put the affinity back.
func (e *enforcer) checkLocked(tid int, tr *tracked) bool {
	cur, err := e.k.Affinity(tid)
	if err != nil || cur.Equal(tr.want) {
		return false // ESRCH: exited, and its exit event will drop it
	}
	// Someone called sched_setaffinity on the task. The kernel would have
	// given it what it asked for within its cpuset and remembered the
	// request; a request with no CPU in the cpuset it would have refused
	// (EINVAL), leaving the mask as it was.
	want := cur.And(tr.cpus)
	if want.IsEmpty() {
		want = tr.effective()
	} else {
		tr.user, tr.hasUser = cur, true
	}
	if want.Equal(cur) {
		tr.want = cur // narrowed within its cpuset: its right
		return false
	}
	// The TID may have been reused since the task exited, before its exit
	// event was applied (pid_max is 32768 here): touch only our task.
	if st, err := e.k.StartTime(tid); err != nil || !proc.SameStart(tr.start, st) {
		delete(e.tasks, tid)
		return false
	}
	if err := e.k.SetAffinity(tid, want); err != nil {
		e.stats.SetFailures++
		tr.want = cur
		return false
	}
	tr.want = want
	return true
}

// migrate runs the queued migrate_pages calls, without mu: moving pages
// takes as long as copying them.
func (e *enforcer) migrate() {
	e.mu.Lock()
	work := e.pending
	e.pending = nil
	e.mu.Unlock()
	for _, m := range work {
		err := e.k.MigratePages(m.pid, m.from, m.to)
		e.mu.Lock()
		e.stats.Migrations++
		e.mu.Unlock()
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			e.log.Printf("cpuset: memory_migrate of %d: %v", m.pid, err)
		}
	}
}

// snapshot returns the counters.
func (e *enforcer) snapshot() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Tracked = len(e.tasks)
	return s
}
