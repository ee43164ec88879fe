// This file brings one task in line with its wish, on the ptrace thread:
// it makes sure a TID still names the task meant (a thread pidfd, the start
// time of /proc/TID/stat), seizes and interrupts it, detaches it, and
// consumes the stop and exit reports of tracees.

package stopper

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
)

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
	// start may be a fork event's timestamp (the freezer's record of a
	// task), late and never early: proc.SameStart, not proc.ID.Is.
	st, err := proc.ReadStat("", t.tid)
	if err != nil || (start != 0 && !proc.SameStart(start, st.Start)) {
		if fd >= 0 {
			unix.Close(fd)
		}
		return unix.ESRCH
	}
	if st.PPID == s.self {
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

// inert tells whether a task that cannot be seized never runs user code
// anyway: a zombie (a thread-group leader that exited before its other
// threads) or a kernel thread. Such a task counts as stopped.
func inert(tid int) bool {
	st, err := proc.ReadStat("", tid)
	return err == nil && (st.Zombie() || st.Kernel())
}

// reap consumes every pending report of our tracees. It peeks with
// WNOWAIT first, so that a real child of this thread (none is expected)
// is left to whoever waits for it.
func (s *Stopper) reap() {
	for len(s.traced) > 0 {
		pid, err := peekReport()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
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
	ws, ok := takeReport(tid)
	if !ok {
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
