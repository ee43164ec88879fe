package cpu

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
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
// (Sched) up to date under mu, with the registry lock held; its goroutine
// (run) ticks: it reads every task's CPU time and run-queue wait from
// /proc/TID/schedstat without the lock, then, under mu, lets the Sched
// decide and asks the Stopper to stop or resume the tasks whose decision
// changed. It never takes the registry lock (lock order: registry, mu,
// Stopper).
type enforcer struct {
	sp    *stopper.Stopper
	logf  func(string, ...any)
	epoch time.Time

	mu      sync.Mutex
	model   *sched.Sched   // guarded by mu
	idle    bool           // run waits with no tick due; guarded by mu
	tasks   map[int]*etask // by TID, tasks outside the root; guarded by mu
	closing []*etask       // removed tasks whose fd run must close; guarded by mu
	stats   EnforcerStats  // guarded by mu

	wake chan struct{} // the model changed; buffered, never blocks
	stop chan struct{}
	done chan struct{}
	once sync.Once

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

func newEnforcer(cfg sched.Config, sp *stopper.Stopper, logf func(string, ...any)) *enforcer {
	e := &enforcer{
		sp: sp, logf: logf, epoch: time.Now(),
		tasks: map[int]*etask{},
		idle:  true,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	online := onlineCPUs()
	e.nCPU.Store(int64(online.Count()))
	e.model = sched.NewSched(cfg, online, e.now())
	return e
}

func (e *enforcer) now() int64 { return int64(time.Since(e.epoch)) }

func (e *enforcer) start() { go e.run() }

// ncpu is the number of online CPUs.
func (e *enforcer) ncpu() int { return max(1, int(e.nCPU.Load())) }

func (e *enforcer) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

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
		// The goroutine sleeps with no tick due: it has a task to watch
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

// close lets every task go and stops the goroutine.
func (e *enforcer) close() {
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, et := range e.tasks {
			e.removeLocked(et)
		}
	})
}

// run is the enforcer's goroutine.
func (e *enforcer) run() {
	defer close(e.done)
	open := map[*etask]struct{}{} // tasks with a schedstat fd
	defer func() {
		for et := range open {
			et.closeFds()
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lastOnline := time.Now()
	var snap []*etask
	buf := make([]byte, 128)
	for {
		select {
		case <-e.stop:
			return
		case <-e.wake:
		case <-timer.C:
		}
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
			e.logf("cpu stats %+v tracked %d next %v", e.stats, len(e.tasks), time.Duration(next))
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
			now := e.now()
			e.model.Walk(func(g *sched.Group) {
				e.logf("cpu dbg %d %s next=%d", now, g.Debug(), next)
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
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next >= 0 {
			timer.Reset(time.Duration(next))
		}
	}
}

// sample reads a task's counters since the previous read.
func (e *enforcer) sample(et *etask, now time.Time, buf []byte) {
	et.dRun, et.dWait = 0, 0
	if et.fd < 0 {
		fd, err := unix.Open("/proc/"+strconv.Itoa(et.tid)+"/schedstat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		// The TID may have been reused since the task was added: the fd
		// is only good if the task is still the one with this start.
		if start, err := startTime(et.tid); err != nil || (et.start != 0 && !proc.SameStart(et.start, start)) {
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
	run, wait, ok := parseSchedstat(buf[:n])
	if !ok {
		return
	}
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
		fd, err := unix.Open("/proc/"+strconv.Itoa(et.tid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		et.statFd = fd
	}
	// "PID (comm) S ...": the state follows the last ')', which is within
	// the first 128 bytes (comm is at most 16 bytes long).
	n, err := pread(et.statFd, buf)
	if err != nil || n <= 0 {
		return false
	}
	b := buf[:n]
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'R'
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

// parseSchedstat parses "run_ns wait_ns timeslices\n" without allocating:
// it runs for every task at every tick.
func parseSchedstat(b []byte) (run, wait int64, ok bool) {
	var v [2]int64
	i := 0
	for k := range v {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v[k] = v[k]*10 + int64(b[i]-'0')
			i++
		}
		if i == start {
			return 0, 0, false
		}
	}
	return v[0], v[1], true
}

// startTime is field 22 of /proc/TID/stat.
func startTime(tid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, os.ErrInvalid
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, os.ErrInvalid
	}
	return strconv.ParseUint(f[22-3], 10, 64)
}

// onlineCPUs reads /sys/devices/system/cpu/online ("0-3,6").
func onlineCPUs() sched.Mask {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	m, ok := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil || !ok || m == (sched.Mask{}) {
		m = sched.Mask{}
		for i := 0; i < max(1, runtime.NumCPU()); i++ {
			m.Set(i)
		}
	}
	return m
}

func parseCPUList(s string) (sched.Mask, bool) {
	var m sched.Mask
	if s == "" {
		return m, false
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return m, false
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return m, false
			}
		}
		for c := a; c <= b; c++ {
			m.Set(c)
		}
	}
	return m, true
}

// pread and getaffinity are raw system calls: reading /proc and an affinity
// never blocks, and they run for every task at every tick. Through the
// runtime's entersyscall, a read that takes a while under load lets the
// scheduler hand the P to another thread, a context switch that costs more
// than the read on this machine's virtual CPUs.
func pread(fd int, buf []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func getaffinity(tid int, set *unix.CPUSet) error {
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(*set), uintptr(unsafe.Pointer(set)))
	if e != 0 {
		return e
	}
	return nil
}
