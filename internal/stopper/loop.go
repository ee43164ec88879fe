// This file is the ptrace thread's loop: it sleeps until a wish changes,
// a tracee exits (SIGCHLD) or a poll for stop reports is due, takes the
// tasks to bring in line, publishes what it did to readers and waiters,
// and lets every tracee go when the Stopper closes.

package stopper

import (
	"os/signal"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// work is one task to bring in line with its wish.
type work struct {
	t       *task
	want    bool // held
	start   uint64
	reident bool
}

// loop is the ptrace thread. Every ptrace request and every wait for a
// tracee happens here. s.w runs it in a goroutine of its own, which it
// locks to its OS thread before anything else; it selects on the worker's
// Woken and Stopping channels itself, with SIGCHLD and its poll timer.
func (s *Stopper) loop() {
	// Never unlocked: when loop returns (and the worker closes its done
	// channel on this goroutine) the thread exits, and with it any trace
	// relationship left over (the kernel detaches, the tasks run).
	runtime.LockOSThread()
	defer signal.Stop(s.sigchld)
	if !s.opts.NoRealtime {
		// Resuming many tasks wakes them all; a thread at normal priority
		// is preempted by each (docs/field-notes.md, "CPU scheduling from
		// userspace": the kernel freezer's thaw of 100 tasks takes 261 ms
		// from a writer at nice 0, 0.35 ms from one at SCHED_FIFO). Priority 2, one above the daemon's other threads
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
		case <-s.w.Woken():
			s.poll = pollFirst // a new wish or a new waiter: look soon
		case <-s.sigchld:
		case <-timer.C:
			s.poll = min(2*s.poll, 50*time.Millisecond)
		case <-s.w.Stopping():
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

// pollFirst is how soon the loop looks for the stops it asked for: a busy
// task stops within about 0.1 ms, a waiting one when it next gets a CPU.
const pollFirst = 500 * time.Microsecond
