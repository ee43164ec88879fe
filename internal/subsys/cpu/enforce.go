// The enforcer: one hierarchy's loop that samples its tasks, lets the
// scheduler decide, and stops or resumes tasks through the Stopper.

package cpu

import (
	"os"
	"sync/atomic"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
	"github.com/containerfs/containerfs/internal/worker"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// CONTAINERFS_CPU_DEBUG=1 logs the enforcer's counters every 100 ticks;
// =2 also logs every group's state at every tick.
var (
	debugStats = os.Getenv("CONTAINERFS_CPU_DEBUG") != ""
	debugCPU   = os.Getenv("CONTAINERFS_CPU_DEBUG") == "2"
)

// reason is what the cpu subsystem holds tasks for, in the Stopper.
const reason = "cpu"

// maskEvery is how often a task's CPU affinity is read again.
const maskEvery = time.Second

// enforcer applies one hierarchy's cpu settings. The hooks keep its model
// (Sched) up to date under mu, with the registry lock held; its worker
// (run) ticks: it reads every task's CPU time and run-queue wait from
// /proc/TID/schedstat without the lock, then, under mu, lets the Sched
// decide and asks the Stopper to stop or resume the tasks whose decision
// changed. It never takes the registry lock (lock order: registry, mu,
// Stopper).
type enforcer struct {
	sp    *stopper.Stopper
	Logf  core.Logf
	epoch time.Time

	mu      lockrank.Mutex[lockrank.Subsys]
	model   *sched.Sched   // guarded by mu
	idle    bool           // run waits with no tick due; guarded by mu
	tasks   map[int]*etask // by TID, tasks outside the root; guarded by mu
	closing []*etask       // removed tasks whose fd run must close; guarded by mu
	stats   EnforcerStats  // guarded by mu

	w *worker.Worker // run; woken when the model changed

	nCPU atomic.Int64
}

// EnforcerStats are the enforcer's counters, for tests and benchmarks.
type EnforcerStats struct {
	Ticks   int64
	Busy    time.Duration // wall time spent ticking
	Sampled int64         // task counters read
	Stops   int64         // tasks asked to stop
	Resumes int64         // tasks asked to resume
	Tracked int
}

// etask is one task outside the root.
type etask struct {
	tid   int
	start uint64
	st    *sched.Task

	// Guarded by mu.
	removed bool
	stopped bool // what we asked the Stopper

	born bool // forked in its container: its CPU time counts from 0; immutable

	// Owned by run.
	heldTicks   int     // ticks since it was stopped; 0 when it runs
	skip        bool    // stopped for a whole interval: nothing to read
	fd          int     // /proc/TID/schedstat; -1 before the first read
	statFd      int     // /proc/TID/stat, opened when first needed; -1 before
	runnable    bool    // nothing accounted in the interval, yet in state R
	busy        float64 // the Sched's runnable average, as of the snapshot
	run, wait   int64
	primed      bool
	dRun, dWait int64
	mask        sched.Mask
	maskAt      time.Time
}

func newEnforcer(cfg sched.Config, sp *stopper.Stopper, logf core.Logf) *enforcer {
	e := &enforcer{
		sp: sp, Logf: logf, epoch: time.Now(),
		tasks: map[int]*etask{},
		idle:  true,
		w:     worker.New(),
	}
	online := onlineCPUs()
	e.nCPU.Store(int64(online.Count()))
	e.model = sched.NewSched(cfg, online, e.now())
	return e
}

func (e *enforcer) now() int64 { return int64(time.Since(e.epoch)) }

func (e *enforcer) start() { e.w.Start(e.run) }

// ncpu is the number of online CPUs.
func (e *enforcer) ncpu() int { return max(1, int(e.nCPU.Load())) }

func (e *enforcer) kick() { e.w.Wake() }

func (e *enforcer) newGroup(parent *sched.Group, name string) *sched.Group {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.model.NewGroup(parent, name)
}

func (e *enforcer) removeGroup(g *sched.Group) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.model.RemoveGroup(g)
}

func (e *enforcer) setShares(g *sched.Group, v uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g.SetShares(v)
	e.kick()
}

func (e *enforcer) setBandwidth(g *sched.Group, quota, period int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.model.SetBandwidth(g, quota, period, e.now())
	// The write unthrottled it: let its tasks go now, not at the next tick.
	e.applyLocked()
	e.kick()
}

func (e *enforcer) stat(g *sched.Group) sched.Stat {
	e.mu.Lock()
	defer e.mu.Unlock()
	return g.Stat(e.now())
}

// Stats are the enforcer's counters so far.
func (e *enforcer) Stats() EnforcerStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Tracked = len(e.tasks)
	return s
}

// addTask puts task tid in g, stopping it at once if g is held. A task
// born in g (forked) has all its CPU time counted there; one moved in has
// what it uses from its first read on.
func (e *enforcer) addTask(tid int, start uint64, g *sched.Group, born bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	et := e.tasks[tid]
	if et != nil && et.start != start {
		e.removeLocked(et) // a reused TID: the old task exited
		et = nil
	}
	if et == nil {
		et = &etask{tid: tid, start: start, st: &sched.Task{TID: tid, Mask: e.model.Online()}, fd: -1, statFd: -1, born: born}
		e.tasks[tid] = et
	}
	e.model.AddTask(et.st, g)
	e.applyTaskLocked(et)
	if e.idle {
		// The worker sleeps with no tick due: it has a task to watch
		// now. Otherwise the next tick picks the task up: a storm of forks
		// must not make a tick each.
		e.idle = false
		e.kick()
	}
}

// removeTask stops tracking tid (it exited, or went back to the root) and
// lets it run.
func (e *enforcer) removeTask(tid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if et := e.tasks[tid]; et != nil {
		e.removeLocked(et)
	}
}

func (e *enforcer) removeLocked(et *etask) {
	e.model.RemoveTask(et.st)
	et.removed = true
	delete(e.tasks, et.tid)
	if et.stopped {
		e.stats.Resumes++
	}
	et.stopped = false
	e.sp.Forget(et.tid, reason)
	// run owns the fd and may be reading it right now: it closes it.
	e.closing = append(e.closing, et)
}

// applyLocked asks the Stopper to bring every task in line with the
// Sched's decision.
func (e *enforcer) applyLocked() {
	for _, et := range e.tasks {
		e.applyTaskLocked(et)
	}
}

func (e *enforcer) applyTaskLocked(et *etask) {
	switch {
	case et.st.Held && !et.stopped:
		e.sp.Stop(et.tid, et.start, reason)
		et.stopped = true
		e.stats.Stops++
	case !et.st.Held && et.stopped:
		e.sp.Resume(et.tid, reason)
		et.stopped = false
		e.stats.Resumes++
	}
}

// close stops the worker, then lets every task go. The worker never
// takes the registry lock, which the caller may hold: waiting for it is
// safe.
func (e *enforcer) close() {
	<-e.w.Stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, et := range e.tasks {
		e.removeLocked(et)
	}
}

// run is the enforcer's worker loop.
func (e *enforcer) run() {
	open := map[*etask]struct{}{} // tasks with a schedstat fd
	defer func() {
		for et := range open {
			et.closeFds()
		}
	}()
	lastOnline := time.Now()
	var snap []*etask
	buf := make([]byte, 128)
	wait := time.Duration(-1) // no tick due until a task is added
	for e.w.Wait(wait) {
		if time.Since(lastOnline) > 10*time.Second {
			lastOnline = time.Now()
			online := onlineCPUs()
			e.nCPU.Store(int64(online.Count()))
			e.mu.Lock()
			e.model.SetOnline(online)
			e.mu.Unlock()
		}
		// Snapshot the tasks, read them without the lock.
		e.mu.Lock()
		snap = snap[:0]
		for _, et := range e.tasks {
			// A task stopped for a whole interval has nothing new to
			// report; what it ran before the stop took effect is in its
			// cumulative counters, read once it runs again.
			et.skip = et.stopped && et.heldTicks >= 2
			et.busy = et.st.Busy()
			snap = append(snap, et)
		}
		e.mu.Unlock()
		wall := time.Now()
		sampled := 0
		for _, et := range snap {
			if et.skip {
				et.dRun, et.dWait, et.runnable = 0, 0, false
				continue
			}
			sampled++
			e.sample(et, wall, buf)
			if et.fd >= 0 {
				open[et] = struct{}{}
			}
		}
		e.mu.Lock()
		for _, et := range snap {
			if !et.removed {
				et.st.Run, et.st.Wait, et.st.Mask, et.st.Runnable = et.dRun, et.dWait, et.mask, et.runnable
			}
		}
		next := e.model.Tick(e.now())
		// Decided under mu with the Tick: a task added after this is
		// added with the lock, and sees idle as it must (it kicks).
		e.idle = next < 0
		e.stats.Ticks++
		if debugStats && e.stats.Ticks%100 == 0 {
			e.Logf.Printf("cpu stats %+v tracked %d next %v", e.stats, len(e.tasks), time.Duration(next))
		}
		e.applyLocked()
		for _, et := range e.tasks {
			if et.stopped {
				et.heldTicks++
			} else {
				et.heldTicks = 0
			}
		}
		if debugCPU {
			e.model.Walk(func(g *sched.Group) {
				e.Logf.Printf("cpu dbg %d %s next=%d", e.model.LastTick(), g.Debug(), next)
			})
		}
		closing := e.closing
		e.closing = nil
		e.stats.Sampled += int64(sampled)
		e.stats.Busy += time.Since(wall)
		e.mu.Unlock()
		for _, et := range closing {
			et.closeFds()
			delete(open, et)
		}
		wait = time.Duration(next)
	}
}

// sample reads a task's counters since the previous read.
func (e *enforcer) sample(et *etask, now time.Time, buf []byte) {
	et.dRun, et.dWait = 0, 0
	if et.fd < 0 {
		fd, err := unix.Open(proc.Path("", et.tid, "schedstat"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		// The TID may have been reused since the task was added: the fd
		// is only good if the task is still the one with this start (the
		// recorded start may be a fork event's, late).
		if seen, err := proc.ReadStat("", et.tid); err != nil || (et.start != 0 && !proc.SameStart(et.start, seen.Start)) {
			unix.Close(fd)
			return
		}
		et.fd = fd
		// Userspace learns of a fork after it happened, and reads the
		// task's counters later still: a task born here has everything
		// it ran counted, from zero.
		et.run, et.wait, et.primed = 0, 0, et.born
	}
	if et.maskAt.IsZero() || now.Sub(et.maskAt) > maskEvery {
		var set unix.CPUSet
		if getaffinity(et.tid, &set) == nil {
			et.mask = sched.Mask{}
			for i := range set {
				if i < len(et.mask) {
					et.mask[i] = uint64(set[i])
				}
			}
		}
		et.maskAt = now
	}
	n, err := pread(et.fd, buf)
	if err != nil || n <= 0 {
		return // it exited: the Exit hook will remove it
	}
	ss, err := proc.ParseSchedstat(buf[:n])
	if err != nil {
		return
	}
	run, wait := ss.Run, ss.Wait
	if et.primed {
		et.dRun, et.dWait = max(0, run-et.run), max(0, wait-et.wait)
		// /proc accounts a wait only once it ends: a task that neither
		// ran nor finished waiting may be asleep, or starved on a run
		// queue. Its state tells; it is read only when the task's average
		// is about to fall below "CPU-bound", where it matters (many busy
		// tasks on one CPU go several intervals without running).
		et.runnable = et.dRun == 0 && et.dWait == 0 && et.busy < 0.75 && e.stateR(et, buf)
	}
	et.run, et.wait, et.primed = run, wait, true
}

// stateR tells whether the task is running or runnable (state R in
// /proc/TID/stat).
func (e *enforcer) stateR(et *etask, buf []byte) bool {
	if et.statFd < 0 {
		fd, err := unix.Open(proc.Path("", et.tid, "stat"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		et.statFd = fd
	}
	// "PID (comm) S ...": the state is within the first 128 bytes (comm
	// is at most 16 bytes long).
	n, err := pread(et.statFd, buf)
	if err != nil || n <= 0 {
		return false
	}
	state, ok := proc.StateOf(buf[:n])
	return ok && state == 'R'
}

func (et *etask) closeFds() {
	if et.fd >= 0 {
		unix.Close(et.fd)
		et.fd = -1
	}
	if et.statFd >= 0 {
		unix.Close(et.statFd)
		et.statFd = -1
	}
}
