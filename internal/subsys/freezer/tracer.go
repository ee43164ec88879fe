package freezer

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"golang.org/x/sys/unix"
)

// How often the tracer looks again without being woken: while a stop it
// asked for has not been reported (a SIGCHLD should wake it first; this is
// the safety net), and otherwise while it holds tracees (to retry tasks it
// could not stop).
const (
	fastPoll = time.Millisecond
	slowPoll = 250 * time.Millisecond
	// closeGrace bounds how long a closing tracer waits for its tracees'
	// stops before it lets its thread exit, which detaches them anyway.
	closeGrace = 5 * time.Second
)

// tracer is the goroutine that stops and resumes tasks with ptrace, and the
// state it shares with the hooks.
type tracer struct {
	proc string
	logf func(format string, a ...any)
	self int // the daemon's own TGID: never stopped

	// mu is the subsystem's lock, taken after the registry lock by hooks
	// and handlers; the tracer goroutine takes it alone and never holds it
	// across a system call on a tracee.
	mu sync.Mutex
	// want holds the tasks to be frozen: every task of a non-root container
	// whose effective state is freezing. Guarded by mu.
	want map[*core.Task]struct{}
	// dirty holds the tasks whose want changed, or which exited, since the
	// goroutine last looked. Guarded by mu.
	dirty map[*core.Task]struct{}
	// stopped holds the tasks the goroutine has seen stopped, and counts
	// kernel threads (which do not freeze, as in the kernel). Written by the
	// goroutine, read by freezer.state. Guarded by mu.
	stopped map[*core.Task]struct{}
	closed  bool // guarded by mu

	wake chan struct{} // capacity 1: there is something in dirty
	done chan struct{} // closed when the goroutine has ended

	// Owned by the goroutine, which alone touches them.
	tracees   map[*core.Task]*tracee
	retry     map[*core.Task]bool // wanted tasks it could not stop; true once logged
	lastRetry time.Time
}

// kind is how a tracee is held.
type kind int

const (
	traced  kind = iota // PTRACE_SEIZE + PTRACE_INTERRUPT
	sigstop             // fallback: it already had a tracer, so SIGSTOP
	inert               // a kernel thread or a zombie: nothing to stop
)

// tracee is a task the tracer holds.
type tracee struct {
	t    *core.Task
	kind kind
	// stopped: a ptrace-stop was reported by waitpid (traced), or procfs
	// shows the task stopped (sigstop).
	stopped  bool
	verified bool // its start time was checked again at its first stop
	// sig is the signal it was about to take when it stopped (a
	// signal-delivery-stop), re-injected when it is let go.
	sig   unix.Signal
	since time.Time // when it was seized
}

func newTracer(proc string, logf func(string, ...any)) *tracer {
	return &tracer{
		proc: proc, logf: logf, self: os.Getpid(),
		want: map[*core.Task]struct{}{}, dirty: map[*core.Task]struct{}{}, stopped: map[*core.Task]struct{}{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		tracees: map[*core.Task]*tracee{}, retry: map[*core.Task]bool{},
	}
}

func (s *Subsys) logf(format string, a ...any) {
	if s.logFn != nil {
		s.logFn(format, a...)
		return
	}
	log.Printf(format, a...)
}

// setWantLocked records whether t must be frozen, and wakes the goroutine
// if that changed. It never blocks. Call with mu held.
func (tr *tracer) setWantLocked(t *core.Task, v bool) {
	if _, had := tr.want[t]; had == v {
		return
	}
	if v {
		tr.want[t] = struct{}{}
	} else {
		delete(tr.want, t)
	}
	tr.dirty[t] = struct{}{}
	tr.notify()
}

// exitLocked forgets t, which exited. If the goroutine traces it, it reaps
// it. Call with mu held.
func (tr *tracer) exitLocked(t *core.Task) {
	delete(tr.want, t)
	delete(tr.stopped, t)
	tr.dirty[t] = struct{}{}
	tr.notify()
}

func (tr *tracer) notify() {
	select {
	case tr.wake <- struct{}{}:
	default:
	}
}

// close tells the goroutine to let every task go and end.
func (tr *tracer) close() {
	tr.mu.Lock()
	tr.closed = true
	tr.want = map[*core.Task]struct{}{}
	tr.mu.Unlock()
	tr.notify()
}

// run is the tracer goroutine. It runs on one OS thread for its whole life,
// because the kernel takes ptrace requests for a tracee only from the thread
// that seized it.
func (tr *tracer) run() {
	// Never unlocked: when run returns, its thread exits with it, and the
	// kernel detaches any tracee still held, which then runs again.
	runtime.LockOSThread()
	defer close(tr.done)
	// A tracee's stops and exit are reported to the tracer with SIGCHLD.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGCHLD)
	defer signal.Stop(sigc)
	var closing time.Time
	timer := time.NewTimer(slowPoll)
	defer timer.Stop()
	for {
		closed := tr.round()
		if closed {
			if closing.IsZero() {
				closing = time.Now()
			}
			if len(tr.tracees) == 0 || time.Since(closing) > closeGrace {
				if len(tr.tracees) > 0 {
					tr.logf("freezer: %d tasks did not stop within %v of unmount; the kernel detaches them", len(tr.tracees), closeGrace)
				}
				return
			}
		}
		var tick <-chan time.Time
		if d, ok := tr.nextPoll(); ok {
			timer.Reset(d)
			tick = timer.C
		}
		select {
		case <-tr.wake:
		case <-sigc:
		case <-tick:
		}
		if tick != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextPoll is how long to sleep unless woken; false: until woken.
func (tr *tracer) nextPoll() (time.Duration, bool) {
	for _, tc := range tr.tracees {
		// A stop asked for comes within microseconds, unless the task
		// sleeps uninterruptibly (D): do not spin on those.
		if tc.kind != inert && !tc.stopped && time.Since(tc.since) < time.Second {
			return fastPoll, true
		}
	}
	if len(tr.tracees) > 0 || len(tr.retry) > 0 {
		return slowPoll, true
	}
	return 0, false
}

// round brings the tracees in line with want, reaps what was reported, and
// publishes which tasks are stopped. It tells whether the tracer is closed.
func (tr *tracer) round() (closed bool) {
	retryNow := len(tr.retry) > 0 && time.Since(tr.lastRetry) >= slowPoll
	if retryNow {
		tr.lastRetry = time.Now()
	}
	tr.mu.Lock()
	dirty := tr.dirty
	tr.dirty = map[*core.Task]struct{}{}
	closed = tr.closed
	wanted := func(t *core.Task) bool { _, ok := tr.want[t]; return ok }
	want := make(map[*core.Task]bool, len(dirty)+len(tr.tracees))
	for t := range dirty {
		want[t] = wanted(t)
	}
	for t := range tr.tracees {
		want[t] = wanted(t)
	}
	for t := range tr.retry {
		want[t] = wanted(t)
		if retryNow {
			dirty[t] = struct{}{}
		}
	}
	tr.mu.Unlock()

	var freed []*tracee
	if len(dirty) > 1 {
		// Seizing a batch of busy tasks: do not let them preempt us
		// between two seizes (see release).
		restore := boost()
		defer restore()
	}
	for t := range dirty {
		if tc := tr.reconcile(t, want[t]); tc != nil {
			freed = append(freed, tc)
		}
	}
	tr.release(freed)
	freed = freed[:0]
	for t, tc := range tr.tracees {
		if tr.reap(tc) && !want[t] {
			freed = append(freed, tc)
		}
	}
	tr.release(freed)
	tr.checkSigstops()

	tr.mu.Lock()
	clear(tr.stopped)
	for t, tc := range tr.tracees {
		if tc.stopped {
			tr.stopped[t] = struct{}{}
		}
	}
	tr.mu.Unlock()
	return closed
}

// reconcile starts freezing t if it is wanted and not held; if it is held
// and no longer wanted, it returns its tracee, to be released.
func (tr *tracer) reconcile(t *core.Task, want bool) *tracee {
	tc := tr.tracees[t]
	if !want {
		delete(tr.retry, t)
		return tc
	}
	if tc == nil {
		tr.freeze(t)
	}
	return nil
}

// PF_KTHREAD, from the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// freeze seizes and interrupts t; its stop is reported later through
// waitpid. If t already has a tracer, it falls back to SIGSTOP.
func (tr *tracer) freeze(t *core.Task) {
	if t.TGID == tr.self {
		return // never the daemon (the core keeps it in the roots anyway)
	}
	st, err := readStat(tr.proc, t.TGID, t.TID)
	if err != nil || !sameStart(st.start, t.Start) {
		delete(tr.retry, t)
		return // gone, or the TID is someone else's now: its exit is on its way
	}
	if tr.isInert(t, st) {
		return
	}
	err = unix.PtraceSeize(t.TID)
	switch {
	case err == nil:
		tr.tracees[t] = &tracee{t: t, kind: traced, since: time.Now()}
		delete(tr.retry, t)
		// ESRCH here means it is exiting: waitpid will tell.
		unix.PtraceInterrupt(t.TID)
	case errors.Is(err, unix.EPERM):
		// It has a tracer already (strace, gdb), or it has just exited.
		if st, err := readStat(tr.proc, t.TGID, t.TID); err != nil || tr.isInert(t, st) {
			return
		}
		tr.fallback(t)
	default:
		delete(tr.retry, t) // ESRCH: gone
	}
}

// isInert holds t as stopped if it is a kernel thread (cgroup v1 does not
// wait for kernel threads that do not freeze) or a zombie (a thread group
// leader that exited while its other threads run: it cannot be seized and
// will never run again).
func (tr *tracer) isInert(t *core.Task, st stat) bool {
	if st.flags&pfKthread == 0 && st.state != 'Z' && st.state != 'X' {
		return false
	}
	tr.tracees[t] = &tracee{t: t, kind: inert, stopped: true}
	delete(tr.retry, t)
	return true
}

// fallback stops t, which cannot be seized, with SIGSTOP: visible to its
// parent and its tracer, and undone by any SIGCONT, but better than
// nothing. SIGSTOP stops a whole process, so it is sent only if every
// thread of t's process is to be frozen; otherwise t stays running (the
// container reads FREEZING) and is tried again later.
func (tr *tracer) fallback(t *core.Task) {
	why := ""
	tids, err := threads(tr.proc, t.TGID)
	if err != nil {
		delete(tr.retry, t)
		return
	}
	tr.mu.Lock()
	wanted := map[int]bool{}
	for w := range tr.want {
		if w.TGID == t.TGID {
			wanted[w.TID] = true
		}
	}
	tr.mu.Unlock()
	for _, tid := range tids {
		if !wanted[tid] {
			why = fmt.Sprintf("thread %d of its process is not being frozen, and SIGSTOP would stop it too", tid)
			break
		}
	}
	if why == "" {
		if err := unix.Tgkill(t.TGID, t.TID, unix.SIGSTOP); err != nil {
			delete(tr.retry, t)
			return
		}
		tr.tracees[t] = &tracee{t: t, kind: sigstop, since: time.Now()}
		delete(tr.retry, t)
		tr.logf("freezer: task %d already has a tracer: stopped with SIGSTOP instead (visible to its parent, undone by SIGCONT)", t.TID)
		return
	}
	if !tr.retry[t] {
		tr.logf("freezer: task %d already has a tracer and cannot be stopped: %s", t.TID, why)
	}
	tr.retry[t] = true
}

// checkSigstops follows the SIGSTOP fallbacks in procfs: stopped means
// state T, or t when their own tracer holds them. One found running again
// after it was stopped (someone sent SIGCONT) is sent SIGSTOP again.
func (tr *tracer) checkSigstops() {
	for _, tc := range tr.tracees {
		if tc.kind != sigstop {
			continue
		}
		st, err := readStat(tr.proc, tc.t.TGID, tc.t.TID)
		if err != nil {
			continue // gone: its exit hook will drop it
		}
		was := tc.stopped
		tc.stopped = st.state == 'T' || st.state == 't'
		if was && !tc.stopped {
			unix.Tgkill(tc.t.TGID, tc.t.TID, unix.SIGSTOP)
			tc.since = time.Now()
		}
	}
}

// reap collects what waitpid reports for a traced tracee: a stop, or its
// exit. It tells whether the tracee is stopped now. A tracee is not our
// child, so waitpid needs __WALL; a tracee that exits must be reaped here,
// or its real parent never gets its exit status.
func (tr *tracer) reap(tc *tracee) bool {
	if tc.kind != traced {
		return tc.stopped
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(tc.t.TID, &ws, unix.WNOHANG|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: not our tracee any more
			delete(tr.tracees, tc.t)
			return false
		}
		if pid == 0 {
			return tc.stopped
		}
		switch {
		case ws.Exited() || ws.Signaled():
			delete(tr.tracees, tc.t)
			return false
		case ws.Stopped():
			tc.stopped = true
			// status>>16 is the ptrace event: PTRACE_EVENT_STOP for our
			// interrupt or a group-stop, 0 for a signal-delivery-stop:
			// the task was about to take that signal; hold it.
			if event := (uint32(ws) >> 16) & 0xff; event == 0 {
				tc.sig = ws.StopSignal()
			}
			if !tc.verified {
				tc.verified = true
				// The TID could only have been reused between our check
				// and the seize; once seized it cannot be.
				if st, err := readStat(tr.proc, tc.t.TGID, tc.t.TID); err == nil && !sameStart(st.start, tc.t.Start) {
					tr.logf("freezer: task %d is not the one we meant to stop: letting it go", tc.t.TID)
					tr.release([]*tracee{tc})
					return false
				}
			}
		}
	}
}

// release lets the tracees go: PTRACE_DETACH, re-injecting any signal held,
// or SIGCONT for a SIGSTOP fallback once no thread of its process is still
// held. A traced tracee that has not reported its stop yet is released when
// it does (detach needs a stopped tracee). Detaching many busy tasks at
// once wakes them all, and they preempt the tracer: it raises itself to
// SCHED_FIFO for the batch (FIELD-NOTES: the kernel freezer's own thaw of
// 100 busy tasks takes 261 ms at nice 0, 0.35 ms at SCHED_FIFO).
func (tr *tracer) release(tcs []*tracee) {
	if len(tcs) == 0 {
		return
	}
	if len(tcs) > 1 {
		restore := boost()
		defer restore()
	}
	for _, tc := range tcs {
		t := tc.t
		switch tc.kind {
		case inert:
			delete(tr.tracees, t)
		case sigstop:
			delete(tr.tracees, t)
			if !tr.holdsProcess(t.TGID) {
				unix.Tgkill(t.TGID, t.TID, unix.SIGCONT)
			}
		case traced:
			if !tc.stopped {
				continue // its stop is on its way; reap releases it then
			}
			err := ptraceDetach(t.TID, tc.sig)
			if err == nil {
				delete(tr.tracees, t)
				continue
			}
			// ESRCH: no longer in a ptrace-stop: SIGKILL woke it and it
			// is on its way out. Keep it until waitpid reports its exit.
			tc.stopped = false
		}
	}
}

// holdsProcess tells whether a SIGSTOP fallback still holds a thread of
// process tgid.
func (tr *tracer) holdsProcess(tgid int) bool {
	for t, tc := range tr.tracees {
		if tc.kind == sigstop && t.TGID == tgid {
			return true
		}
	}
	return false
}

// ptraceDetach is PTRACE_DETACH with a signal to deliver on the way out,
// which x/sys/unix's PtraceDetach cannot pass.
func ptraceDetach(tid int, sig unix.Signal) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(sig), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// boost raises the calling thread to SCHED_FIFO priority 1 and returns how
// to undo it. If it cannot, it does nothing.
func boost() (restore func()) {
	old, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return func() {}
	}
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
		return func() {}
	}
	return func() { unix.SchedSetAttr(0, old, 0) }
}

// stat is what the tracer reads from /proc/TGID/task/TID/stat.
type stat struct {
	state byte
	flags uint64
	start uint64
}

func readStat(proc string, tgid, tid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/task/%d/stat", proc, tgid, tid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// parseStat takes the state (field 3), flags (9) and start time (22) from a
// stat line. The comm field may hold spaces and parentheses: fields are
// counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("short stat")
	}
	flags, err := strconv.ParseUint(f[9-3], 10, 64)
	if err != nil {
		return stat{}, err
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return stat{}, err
	}
	return stat{state: f[0][0], flags: flags, start: start}, nil
}

// threads lists the TIDs of process tgid.
func threads(proc string, tgid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("%s/%d/task", proc, tgid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// sameStart compares start times in clock ticks, as the core does.
func sameStart(a, b uint64) bool { return a <= b+1 && b <= a+1 }
