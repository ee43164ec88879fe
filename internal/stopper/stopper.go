// This file is the Stopper's API and its types: what callers ask (Stop,
// Resume, Forget, WaitStopped) and read (Status, Held, Stats), recorded
// under the Stopper's lock for the ptrace thread to act on.

package stopper

import (
	"log"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
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
	// instead of SCHED_FIFO 2.
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

	mu      lockrank.Mutex[lockrank.Stopper] // the ladder's lowest rung: core/doc.go
	tasks   map[int]*task                    // by TID; guarded by mu
	dirty   map[int]struct{}                 // TIDs whose wish changed; guarded by mu
	waiters map[*waiter]struct{}             // guarded by mu
	closed  bool                             // guarded by mu

	// w runs loop, the ptrace thread: Wake says a wish changed or a
	// waiter came (it never blocks), Stop ends the loop.
	w *worker.Worker

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
		w:       worker.New(),
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
	s.w.Start(s.loop)
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
		//
		// Both starts are callers' records, either of which may be a
		// fork event's: this only decides whether to check again against
		// /proc (identify, with proc.SameStart). Any difference beyond a
		// tick either way re-checks, so a stale record never holds the
		// task that reused its TID.
		if start != 0 && (t.start == 0 || !(proc.ID{TID: tid, Start: t.start}).Is(proc.ID{TID: tid, Start: start})) {
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
		s.w.Wake()
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
	s.w.Wake()
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
		<-s.w.Stop()
		return nil
	}
	s.closed = true
	for w := range s.waiters {
		close(w.ch)
	}
	clear(s.waiters)
	s.mu.Unlock()
	<-s.w.Stop()
	return nil
}

func (s *Stopper) markLocked(tid int) {
	s.dirty[tid] = struct{}{}
	s.w.Wake()
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
