package stopper

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
)

// State is what the Stopper knows of a task.
type State int

const (
	// Running: no reason holds the task (or the Stopper does not know it).
	Running State = iota
	// Stopping: held; the stop has been asked for but not yet reported.
	Stopping
	// Stopped: held, and stopped in a ptrace trap.
	Stopped
	// Failed: held, but it cannot be stopped (another tracer holds it, or
	// it is a task the Stopper refuses); retried every RetryInterval.
	Failed
	// Gone: the task exited, or its TID now names another task.
	Gone
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Stopping:
		return "stopping"
	case Stopped:
		return "stopped"
	case Failed:
		return "failed"
	case Gone:
		return "gone"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Options configure a Stopper. The zero value is what the daemon uses.
type Options struct {
	// NoRealtime keeps the ptrace thread at the daemon's normal priority
	// instead of SCHED_FIFO 1.
	NoRealtime bool
	// RetryInterval is how often a task that could not be seized is tried
	// again; 0 is one second.
	RetryInterval time.Duration
	// Logf reports what could not be done; nil is log.Printf.
	Logf func(format string, a ...any)
}

// Stats are counters of what the Stopper did, for tests and benchmarks.
type Stats struct {
	Seized    int64 // PTRACE_SEIZE calls that succeeded
	Detached  int64 // PTRACE_DETACH calls that succeeded
	Stops     int64 // stops reported
	Exits     int64 // tracee exits reaped
	Injected  int64 // signals re-injected at a detach
	Failures  int64 // seizes refused
	Wakeups   int64 // loop iterations
	Unchanged int64 // wishes that needed no ptrace call
}

// Stopper owns every ptrace stop of the process. Use Default in the
// daemon; New is for tests.
type Stopper struct {
	opts Options
	self int // our TGID

	mu      sync.Mutex
	tasks   map[int]*task        // by TID; guarded by mu
	dirty   map[int]struct{}     // TIDs whose wish changed; guarded by mu
	waiters map[*waiter]struct{} // guarded by mu
	closed  bool                 // guarded by mu

	wake chan struct{} // the wish changed; buffered, never blocks
	quit chan struct{}
	done chan struct{}

	// The ptrace thread's own state: touched only by loop.
	traced  map[int]*task      // attached tasks
	poll    time.Duration      // next look for stop reports, while some are due
	recheck []*task            // stops just reported, to compare with the wish
	touched map[*task]struct{} // changed since the last publish
	failing map[*task]struct{} // could not be seized; retried
	sigchld chan os.Signal

	seized, detached, stops, exits, injected, failures, wakeups, unchanged atomic.Int64
}

// task is one task the Stopper has been asked about.
type task struct {
	tid int

	// Guarded by Stopper.mu.
	start     uint64   // 0: whatever task had the TID at the first Stop
	reident   bool     // start changed: identify the task again
	reasons   []string // why it is held; it runs when empty
	users     []string // reasons that have not forgotten it
	forgotten bool     // users is empty
	state     State    // as the loop last published it
	err       error    // why it is Failed
	idleSince time.Time

	// Owned by the loop goroutine.
	pidfd    int // a thread pidfd naming the task, -1 before identify
	attached bool
	stopped  bool
	sig      int // signal to re-inject at the detach
	gone     bool
	inert    bool // a zombie or kernel thread: cannot be seized, never runs
	retryAt  time.Time
}

type waiter struct {
	tids []int
	ch   chan struct{}
}

var (
	defaultOnce sync.Once
	defaultS    *Stopper
	started     atomic.Pointer[Stopper]
)

// Default is the process's Stopper, started on first use. A task has only
// one tracer, so everything in one process that stops tasks must share it.
func Default() *Stopper {
	defaultOnce.Do(func() {
		defaultS = New(Options{})
		started.Store(defaultS)
	})
	return defaultS
}

// Started is Default if it has been started, or nil: for readers of its
// statistics, which should not start one.
func Started() *Stopper { return started.Load() }

// New starts a Stopper with its ptrace thread.
func New(opts Options) *Stopper {
	if opts.RetryInterval == 0 {
		opts.RetryInterval = time.Second
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	s := &Stopper{
		opts:    opts,
		self:    os.Getpid(),
		tasks:   map[int]*task{},
		dirty:   map[int]struct{}{},
		waiters: map[*waiter]struct{}{},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		traced:  map[int]*task{},
		touched: map[*task]struct{}{},
		failing: map[*task]struct{}{},
		sigchld: make(chan os.Signal, 1),
	}
	// SIGCHLD reaches the process when a tracee exits: it wakes the loop.
	// Registered before the loop starts, so none is missed. Stops send
	// none (quietStops); the loop polls for them instead.
	quietOnce.Do(quietStops)
	signal.Notify(s.sigchld, syscall.SIGCHLD)
	go s.loop()
	return s
}

// Stop holds task tid for reason. start is the task's start time (field 22
// of /proc/TID/stat), or 0 for whatever task has the TID now. It returns at
// once; the stop takes effect shortly after (see WaitStopped).
func (s *Stopper) Stop(tid int, start uint64, reason string) {
	if tid <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	t := s.tasks[tid]
	if t == nil {
		t = &task{tid: tid, start: start, pidfd: -1}
		s.tasks[tid] = t
	} else {
		// A start time that differs from the one known (or a first one),
		// or a task already gone: identify the task again before the
		// next seize. While it is traced its TID cannot be reused, so the
		// loop keeps an attached task as it is.
		if start != 0 && (t.start == 0 || !sameStart(t.start, start)) {
			t.start = start
			t.reident = true
		}
		if t.state == Gone {
			t.state = Running
			t.reident = true
		}
		if t.reident {
			s.markLocked(tid)
		}
	}
	t.forgotten = false
	if !slices.Contains(t.users, reason) {
		t.users = append(t.users, reason)
	}
	if !slices.Contains(t.reasons, reason) {
		t.reasons = append(t.reasons, reason)
		s.markLocked(tid)
	}
}

// Resume drops reason's hold on tid; the task runs again when no reason
// holds it.
func (s *Stopper) Resume(tid int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[tid]
	if t == nil {
		return
	}
	if i := slices.Index(t.reasons, reason); i >= 0 {
		t.reasons = slices.Delete(t.reasons, i, i+1)
		if len(t.reasons) == 0 {
			t.idleSince = time.Now()
		}
		s.markLocked(tid)
	}
}

// Forget drops reason's hold on tid and reason's interest in it: call it
// when the task exits or leaves the caller's care. Once every reason that
// stopped the task has forgotten it (and it runs), the Stopper forgets it
// too; until then it keeps the task's pidfd, so that stopping it again is
// cheap.
func (s *Stopper) Forget(tid int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[tid]
	if t == nil {
		return
	}
	if i := slices.Index(t.reasons, reason); i >= 0 {
		t.reasons = slices.Delete(t.reasons, i, i+1)
		if len(t.reasons) == 0 {
			t.idleSince = time.Now()
		}
	}
	if i := slices.Index(t.users, reason); i >= 0 {
		t.users = slices.Delete(t.users, i, i+1)
	}
	t.forgotten = len(t.users) == 0
	s.markLocked(tid)
}

// Stopped tells whether tid is held and stopped now.
func (s *Stopper) Stopped(tid int) bool {
	st, _ := s.Status(tid)
	return st == Stopped
}

// Status is tid's state and, if it is Failed, why.
func (s *Stopper) Status(tid int) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[tid]
	if t == nil {
		return Running, nil
	}
	if len(t.reasons) == 0 && t.state != Gone {
		return Running, nil
	}
	if t.state == Stopping {
		// Its stop report may be waiting: no SIGCHLD announces it. Have
		// the loop look, so that asking again soon gets the news.
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return t.state, t.err
}

// Held lists the reasons holding tid.
func (s *Stopper) Held(tid int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[tid]; t != nil {
		return slices.Clone(t.reasons)
	}
	return nil
}

// WaitStopped returns a channel that is closed once every task of tids is
// stopped, gone, or no longer held by any reason. A task that cannot be
// stopped (Failed) keeps it open. It never blocks the caller: take the
// channel under your lock, wait on it outside.
func (s *Stopper) WaitStopped(tids []int) <-chan struct{} {
	w := &waiter{tids: slices.Clone(tids), ch: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.settledLocked(w) {
		close(w.ch)
		return w.ch
	}
	s.waiters[w] = struct{}{}
	// The loop looks for stop reports only when someone waits for them.
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return w.ch
}

// Stats are the Stopper's counters so far.
func (s *Stopper) Stats() Stats {
	return Stats{
		Seized: s.seized.Load(), Detached: s.detached.Load(), Stops: s.stops.Load(),
		Exits: s.exits.Load(), Injected: s.injected.Load(), Failures: s.failures.Load(),
		Wakeups: s.wakeups.Load(), Unchanged: s.unchanged.Load(),
	}
}

// Close resumes every task the Stopper holds and stops its thread. Calls
// made afterwards do nothing.
func (s *Stopper) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	for w := range s.waiters {
		close(w.ch)
	}
	clear(s.waiters)
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	return nil
}

func (s *Stopper) markLocked(tid int) {
	s.dirty[tid] = struct{}{}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Stopper) settledLocked(w *waiter) bool {
	for _, tid := range w.tids {
		t := s.tasks[tid]
		if t == nil || len(t.reasons) == 0 || t.state == Stopped || t.state == Gone {
			continue
		}
		return false
	}
	return true
}

// work is one task to bring in line with its wish.
type work struct {
	t       *task
	want    bool // held
	start   uint64
	reident bool
}

// loop is the ptrace thread. Every ptrace request and every wait for a
// tracee happens here.
func (s *Stopper) loop() {
	// Never unlocked: when loop returns the thread exits, and with it any
	// trace relationship left over (the kernel detaches, the tasks run).
	runtime.LockOSThread()
	defer close(s.done)
	defer signal.Stop(s.sigchld)
	if !s.opts.NoRealtime {
		// Resuming many tasks wakes them all; a thread at normal priority
		// is preempted by each (FIELD-NOTES: thaw of 100 tasks 261 ms at
		// nice 0). Priority 2, one above the daemon's other threads
		// (internal/prio), so that a FUSE handler that asked for a batch
		// does not hold it up. RESET_ON_FORK: threads the runtime starts
		// from this one do not inherit the policy.
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 2, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			s.opts.Logf("stopper: SCHED_FIFO: %v (resuming many tasks may be slow)", err)
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lastGC := time.Now()
	for {
		s.wakeups.Add(1)
		for {
			for _, w := range s.takeWork() {
				s.apply(w)
			}
			s.reap()
			if len(s.recheck) == 0 {
				break
			}
		}
		next := s.publish()
		if time.Since(lastGC) > 10*time.Second {
			s.gc()
			lastGC = time.Now()
		}
		timer.Reset(next)
		select {
		case <-s.wake:
			s.poll = pollFirst // a new wish or a new waiter: look soon
		case <-s.sigchld:
		case <-timer.C:
			s.poll = min(2*s.poll, 50*time.Millisecond)
		case <-s.quit:
			s.shutdown()
			return
		}
	}
}

// takeWork collects the tasks whose wish changed and those whose stop was
// just reported.
func (s *Stopper) takeWork() []work {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := make([]work, 0, len(s.dirty)+len(s.recheck))
	add := func(t *task) {
		ws = append(ws, work{t: t, want: len(t.reasons) > 0, start: t.start, reident: t.reident})
		t.reident = false
	}
	for tid := range s.dirty {
		if t := s.tasks[tid]; t != nil {
			add(t)
		}
	}
	clear(s.dirty)
	for _, t := range s.recheck {
		if s.tasks[t.tid] == t {
			add(t)
		}
	}
	s.recheck = s.recheck[:0]
	return ws
}

var errRefused = errors.New("refused")

// apply seizes or detaches one task as its wish says.
func (s *Stopper) apply(w work) {
	t := w.t
	s.touched[t] = struct{}{}
	if w.reident && !t.attached {
		s.closePidfd(t)
		t.gone = false
	}
	switch {
	case t.gone:
	case w.want && !t.attached:
		if time.Now().Before(t.retryAt) {
			return
		}
		if err := s.identify(t, w.start); err != nil {
			if errors.Is(err, errRefused) {
				s.fail(t, err)
			} else {
				t.gone = true
				s.closePidfd(t)
			}
			return
		}
		if err := ptrace(unix.PTRACE_SEIZE, t.tid, 0); err != nil {
			if err == unix.ESRCH {
				t.gone = true
				s.closePidfd(t)
				return
			}
			if inert(t.tid) {
				// Held as stopped; looked at again now and then, until
				// it is gone.
				t.inert = true
				t.retryAt = time.Now().Add(s.opts.RetryInterval)
				return
			}
			s.fail(t, fmt.Errorf("PTRACE_SEIZE: %w (traced by another process?)", err))
			return
		}
		t.inert = false
		s.seized.Add(1)
		s.poll = pollFirst
		t.retryAt = time.Time{}
		t.attached, t.stopped, t.sig = true, false, 0
		s.traced[t.tid] = t
		// ESRCH here means it died after the seize: its exit report comes.
		ptrace(unix.PTRACE_INTERRUPT, t.tid, 0)
	case !w.want && t.attached && t.stopped:
		s.detach(t)
	default:
		// Held and attached (stopping or stopped), or running and free,
		// or running and attached but its stop not yet reported (detached
		// when it is).
		s.unchanged.Add(1)
	}
}

func (s *Stopper) detach(t *task) {
	if err := ptrace(unix.PTRACE_DETACH, t.tid, uintptr(t.sig)); err != nil {
		// Not in a ptrace stop any more: only SIGKILL does that, and its
		// exit report is on its way.
		t.stopped = false
		return
	}
	s.detached.Add(1)
	if t.sig != 0 {
		s.injected.Add(1)
	}
	t.attached, t.stopped, t.sig = false, false, 0
	delete(s.traced, t.tid)
}

func (s *Stopper) fail(t *task, err error) {
	s.failures.Add(1)
	t.retryAt = time.Now().Add(s.opts.RetryInterval)
	s.mu.Lock()
	if t.err == nil || t.err.Error() != err.Error() {
		s.opts.Logf("stopper: cannot stop task %d: %v", t.tid, err)
	}
	t.err = err
	s.mu.Unlock()
}

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for one thread.
const pidfdThread = unix.O_EXCL

// identify makes sure tid still names the task the caller meant. The first
// time it opens a thread pidfd and checks the start time; afterwards the
// pidfd tells whether that task still lives, so a reused TID is never
// mistaken for it (between the check and the seize a TID would have to be
// freed and reused: not within microseconds).
func (s *Stopper) identify(t *task, start uint64) error {
	if t.pidfd >= 0 {
		if err := unix.PidfdSendSignal(t.pidfd, 0, nil, 0); err != nil {
			return err
		}
		return nil
	}
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(t.tid)); err == nil {
		return fmt.Errorf("task %d is a thread of the daemon: %w", t.tid, errRefused)
	}
	fd, err := unix.PidfdOpen(t.tid, pidfdThread)
	if err != nil && err != unix.ESRCH {
		fd = -1 // no thread pidfds: check the start time at every seize
	} else if err != nil {
		return err
	}
	got, ppid, err := statOf(t.tid)
	if err != nil || (start != 0 && !proc.SameStart(start, got)) {
		if fd >= 0 {
			unix.Close(fd)
		}
		return unix.ESRCH
	}
	if ppid == s.self {
		if fd >= 0 {
			unix.Close(fd)
		}
		return fmt.Errorf("task %d is a child of the daemon: %w", t.tid, errRefused)
	}
	t.pidfd = fd
	return nil
}

func (s *Stopper) closePidfd(t *task) {
	if t.pidfd >= 0 {
		unix.Close(t.pidfd)
		t.pidfd = -1
	}
}

// statOf reads a task's start time and parent process from /proc/TID/stat.
func statOf(tid int) (start uint64, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat of %d", tid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("short stat of %d", tid)
	}
	ppid, _ = strconv.Atoi(f[4-3])
	start, err = strconv.ParseUint(f[22-3], 10, 64)
	return start, ppid, err
}

// inert tells whether a task that cannot be seized never runs user code
// anyway: a zombie (a thread-group leader that exited before its other
// threads) or a kernel thread. Such a task counts as stopped.
func inert(tid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 7 {
		return false
	}
	const pfKthread = 0x00200000
	flags, _ := strconv.ParseUint(f[9-3], 10, 64)
	return f[0] == "Z" || f[0] == "X" || flags&pfKthread != 0
}

// sameStart compares start times in clock ticks with a tick of tolerance,
// as the core does.
func sameStart(a, b uint64) bool { return a <= b+1 && b <= a+1 }

const wnothread = 0x20000000 // __WNOTHREAD: only this thread's tracees

// reap consumes every pending report of our tracees. It peeks with
// WNOWAIT first, so that a real child of this thread (none is expected)
// is left to whoever waits for it.
func (s *Stopper) reap() {
	for len(s.traced) > 0 {
		var info unix.Siginfo
		_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_ALL, 0, uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT|unix.WALL|wnothread, 0, 0)
		var err error
		if e != 0 {
			err = e
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		pid := siginfoPID(&info)
		if pid == 0 {
			return
		}
		t := s.traced[pid]
		if t == nil {
			// Not a tracee: ask each tracee by TID instead this time.
			for tid, t := range s.traced {
				s.waitOne(tid, t)
			}
			return
		}
		if !s.waitOne(pid, t) {
			return
		}
	}
}

// waitOne consumes one report of tracee tid, if there is one.
func (s *Stopper) waitOne(tid int, t *task) bool {
	var ws unix.WaitStatus
	r, _, e := unix.RawSyscall6(unix.SYS_WAIT4, uintptr(tid), uintptr(unsafe.Pointer(&ws)), unix.WNOHANG|unix.WALL|wnothread, 0, 0, 0)
	if e != 0 || int(r) != tid {
		return false
	}
	switch {
	case ws.Exited() || ws.Signaled():
		s.exits.Add(1)
		t.gone, t.attached, t.stopped, t.sig = true, false, false, 0
		delete(s.traced, tid)
		s.closePidfd(t)
	case ws.Stopped():
		s.stops.Add(1)
		t.stopped = true
		if event := int(ws>>16) & 0xff; event == 0 {
			// Signal-delivery-stop: the task dequeued a signal before the
			// trap; it is delivered when we let go.
			t.sig = int(ws.StopSignal())
		}
		// PTRACE_EVENT_STOP is our trap, or a group-stop (SIGSTOP and
		// friends) that the detach turns back into a plain group-stop.
	}
	s.recheck = append(s.recheck, t)
	s.touched[t] = struct{}{}
	return true
}

// siginfoPID is si_pid of a SIGCHLD siginfo (the union starts at byte 16).
func siginfoPID(info *unix.Siginfo) int {
	return int(*(*int32)(unsafe.Pointer(uintptr(unsafe.Pointer(info)) + 16)))
}

// publish makes the loop's view of the tasks it touched visible to
// readers, wakes waiters, drops tasks nobody holds or remembers any more,
// and says when the loop must look again without being woken.
func (s *Stopper) publish() time.Duration {
	next := time.Hour
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.touched {
		held := len(t.reasons) > 0
		switch {
		case t.gone:
			t.state = Gone
		case t.attached && t.stopped && held:
			t.state = Stopped
		case t.attached:
			// Held and stopping, or to be let go once its stop is reported.
			t.state = Stopping
		case held && t.inert:
			t.state = Stopped
			s.failing[t] = struct{}{} // looked at again at retryAt
		case held && t.err != nil:
			t.state = Failed
		default:
			t.state = Running
		}
		switch {
		case t.state == Failed:
			s.failing[t] = struct{}{}
		case held && t.inert:
			t.err = nil
		default:
			t.err = nil
			delete(s.failing, t)
		}
		if !held && !t.attached && (t.forgotten || t.gone) && s.tasks[t.tid] == t {
			s.closePidfd(t)
			delete(s.tasks, t.tid)
		}
	}
	clear(s.touched)
	for t := range s.failing {
		if s.tasks[t.tid] != t || len(t.reasons) == 0 {
			delete(s.failing, t)
			continue
		}
		if d := t.retryAt.Sub(now); d > 0 {
			next = min(next, d)
		} else {
			s.dirty[t.tid] = struct{}{}
			next = time.Millisecond
		}
	}
	// A stop report that is due is announced by no SIGCHLD: look again
	// soon, then less and less often, if someone needs it: a waiter, or
	// a task to let go once it has stopped. Otherwise it waits for the
	// next wake-up (a held task is stopped whether or not we know it).
	for _, t := range s.traced {
		if !t.stopped && (len(s.waiters) > 0 || len(t.reasons) == 0) {
			next = min(next, max(s.poll, pollFirst))
			break
		}
	}
	for w := range s.waiters {
		if s.settledLocked(w) {
			close(w.ch)
			delete(s.waiters, w)
		}
	}
	return next
}

// gc drops tasks nobody has held for a minute and that nobody forgot: their
// pidfds would otherwise pile up if a caller never calls Forget.
func (s *Stopper) gc() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tid, t := range s.tasks {
		if len(t.reasons) == 0 && !t.attached && time.Since(t.idleSince) > time.Minute {
			s.closePidfd(t)
			delete(s.tasks, tid)
		}
	}
}

// shutdown lets every tracee go: stopped ones at once, the others once
// their stop is reported (for at most a second; the thread's exit detaches
// any left).
func (s *Stopper) shutdown() {
	deadline := time.Now().Add(time.Second)
	for len(s.traced) > 0 && time.Now().Before(deadline) {
		for _, t := range s.traced {
			if t.stopped {
				s.detach(t)
			}
		}
		if len(s.traced) == 0 {
			break
		}
		s.recheck = s.recheck[:0]
		s.reap()
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	for tid, t := range s.tasks {
		s.closePidfd(t)
		delete(s.tasks, tid)
	}
	s.mu.Unlock()
}

// ptrace, waitid and wait4 (with WNOHANG) never block: they are raw
// system calls, so that the runtime does not hand this thread's P to
// another thread around each of them.
func ptrace(req, tid int, data uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), 0, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// pollFirst is how soon the loop looks for the stops it asked for: a busy
// task stops within about 0.1 ms, a waiting one when it next gets a CPU.
const pollFirst = 500 * time.Microsecond

var quietOnce sync.Once

// quietStops sets SA_NOCLDSTOP on the process's SIGCHLD action, keeping
// the Go runtime's handler: the kernel then sends no SIGCHLD when a child
// or a tracee stops (it still does when one exits). Every ptrace stop would
// otherwise cost a signal delivery and two or three thread wake-ups in the
// runtime, the bulk of the daemon's CPU time when it throttles many tasks.
// The daemon never waits for its children's stops. Go reinstalls a
// handler only on signal.Ignore or a first Notify of a signal it did not
// handle; it handles SIGCHLD from the start.
func quietStops() {
	type sigaction struct {
		handler, flags, restorer uintptr
		mask                     uint64
	}
	const saNoCldStop = 1
	var sa sigaction
	const size = 8 // sizeof(sigset_t) for rt_sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(syscall.SIGCHLD), 0, uintptr(unsafe.Pointer(&sa)), size, 0, 0); e != 0 {
		return
	}
	if sa.handler == 0 || sa.handler == 1 { // SIG_DFL, SIG_IGN: leave them
		return
	}
	sa.flags |= saNoCldStop
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(syscall.SIGCHLD), uintptr(unsafe.Pointer(&sa)), 0, size, 0, 0)
}
