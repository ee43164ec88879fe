package pids

// The killer: how refused tasks die, and when a new thread's whole process
// may not (groupKillable).

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/proc"
	"golang.org/x/sys/unix"
)

// refusal is a task whose fork the kernel would have refused.
type refusal struct {
	t *core.Task
}

// runKiller is the loop of h's killer, one worker per bound hierarchy: it
// kills refused threads, outside the registry lock, as deciding whether a
// thread's whole process may die takes a look at /proc. (Refused processes
// are killed in the Fork hook itself.)
func (s *Subsys) runKiller(h *hier) {
	for h.w.Wait(-1) {
		s.drain(h)
	}
}

// drain enforces every refusal queued so far.
func (s *Subsys) drain(h *hier) {
	h.mu.Lock()
	q := h.queue
	h.queue = nil
	h.mu.Unlock()
	for _, r := range q {
		s.enforce(h, r)
	}
}

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for one thread.
const pidfdThread = unix.O_EXCL

// enforce kills refused task r.t, unless that would kill something it must
// not. It runs on the killer, without the registry lock.
func (s *Subsys) enforce(h *hier, r refusal) {
	t := r.t
	if t.TID != t.TGID {
		// SIGKILL cannot kill one thread: it kills the whole group.
		if ok, why := s.groupKillable(h, t); !ok {
			h.mu.Lock()
			if st, doomed := h.doomed[t]; doomed {
				// Not refused after all: it lives, so it is charged.
				delete(h.doomed, t)
				st.chargeLocked(1)
			}
			h.mu.Unlock()
			s.Logf.Printf("pids: thread %d of process %d is over its container's pids.max but is left running: %s", t.TID, t.TGID, why)
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.killLocked(h, r)
}

// killLocked kills refused task r.t if it is still refused and not in the
// root container. It holds h.mu while it signals (a pidfd signal never
// blocks), so that the task cannot be moved into the root container between
// the check and the kill: the Attach hook waits for h.mu. Call with h.mu held.
func (s *Subsys) killLocked(h *hier, r refusal) {
	t := r.t
	st, doomed := h.doomed[t]
	if !doomed {
		return // it exited meanwhile
	}
	if st.root {
		// Moved into the root container before we got to it: never
		// enforce anything there. It lives, uncharged (the root has no
		// pids.current).
		delete(h.doomed, t)
		return
	}
	if t.TGID == os.Getpid() {
		return // never the daemon (the core never lets it out of the roots)
	}
	if s.sendKill != nil {
		s.sendKill(r)
		return
	}
	// Open a pidfd, then check the start time: if it matches, the pidfd
	// names the refused task, whatever becomes of the PID afterwards
	// (pid_max may be small enough to wrap during a fork bomb).
	fd, tg, err := openPidfd(t)
	if err != nil {
		return // gone already: it died on its own
	}
	if fd >= 0 {
		defer unix.Close(fd)
	}
	start, err := readStart(s.procRoot, t.TGID, t.TID)
	if err != nil || !proc.SameStart(t.Start, start) {
		return // gone, and the PID is someone else's
	}
	if tg {
		err = unix.Tgkill(t.TGID, t.TID, unix.SIGKILL)
	} else {
		err = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
	if err != nil {
		if !errors.Is(err, unix.ESRCH) {
			s.Logf.Printf("pids: kill refused task %d: %v", t.TID, err)
		}
		return
	}
	// A killed task dies only once it runs again; on a loaded machine it
	// waits its turn for a CPU, for milliseconds. SCHED_FIFO lets it die
	// at once. It can no longer return to user space (SIGKILL is pending),
	// and its TID cannot have been handed to another task since the
	// signal a microsecond ago (TIDs are allocated cyclically).
	unix.SchedSetAttr(t.TID, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0)
}

// openPidfd opens a pidfd for t: a process pidfd for a group leader, a
// thread pidfd for another thread. On kernels before 6.9, which have no
// thread pidfds, it returns tg = true: use tgkill, whose (tgid, tid) pair
// narrows the reuse window to a TID reused within the same thread group.
func openPidfd(t *core.Task) (fd int, tg bool, err error) {
	if t.TID == t.TGID {
		fd, err = unix.PidfdOpen(t.TID, 0)
		return fd, false, err
	}
	fd, err = unix.PidfdOpen(t.TID, pidfdThread)
	if errors.Is(err, unix.EINVAL) {
		return -1, true, nil
	}
	return fd, false, err
}

// groupKillable tells whether killing t's whole thread group would hit only
// tasks of non-root containers of this hierarchy, as far as can be told:
//   - a thread moved into the root container (tasks, cgroup.procs) is known,
//     and forbids the kill;
//   - a thread in a non-root container is known, and allows it;
//   - a thread we know nothing of is either newer than t, its fork event not
//     yet read (a new thread joins its leader, which is where t is: it
//     allows the kill), or older than t, left in the root container when its
//     leader alone was moved (it forbids the kill). Start times tell them
//     apart, to a clock tick; within a tick, TIDs do, as the kernel hands
//     them out in increasing order (modulo pid_max).
func (s *Subsys) groupKillable(h *hier, t *core.Task) (bool, string) {
	tids, err := proc.Threads(s.procRoot, t.TGID)
	if err != nil {
		return true, "" // the group is gone; nothing will be killed
	}
	var unknown []int
	h.mu.Lock()
	for _, tid := range tids {
		if _, ok := h.inRoot[tid]; ok {
			h.mu.Unlock()
			return false, fmt.Sprintf("thread %d of the same process is in the root container", tid)
		}
		if _, ok := h.nonRoot[tid]; !ok {
			unknown = append(unknown, tid)
		}
	}
	h.mu.Unlock()
	for _, tid := range unknown {
		start, err := readStart(s.procRoot, t.TGID, tid)
		if err != nil {
			continue // exited
		}
		if olderThan(start, tid, t, s.pidMax(h)) {
			return false, fmt.Sprintf("thread %d of the same process, older than it, is in no container of ours: it may be in the root container", tid)
		}
	}
	return true, ""
}

// olderThan tells whether the thread (start, tid) was born before t. Start
// times are clock ticks; within a tick or so of each other, the TIDs tell:
// the kernel allocates them in increasing order, wrapping at pid_max, and
// no thread group makes pid_max/2 threads within one tick.
func olderThan(start uint64, tid int, t *core.Task, pidMax int) bool {
	switch {
	case start+1 < t.Start:
		return true
	case start > t.Start+1:
		return false
	}
	d := (t.TID - tid + pidMax) % pidMax
	return d > 0 && d < pidMax/2
}

// pidMax is /proc/sys/kernel/pid_max (read once per hierarchy), or
// PID_MAX_LIMIT.
func (s *Subsys) pidMax(h *hier) int {
	h.pidMaxOnce.Do(func() {
		h.pidMaxVal = pidMaxLimit
		root := s.procRoot
		if root == "" {
			root = proc.Root
		}
		b, err := os.ReadFile(root + "/sys/kernel/pid_max")
		if err != nil {
			return
		}
		if v, ok := proc.Atoi(strings.TrimSpace(string(b))); ok && v > 0 {
			h.pidMaxVal = v
		}
	})
	return h.pidMaxVal
}

// readStart reads a thread's start time from /proc/TGID/task/TID/stat: the
// path within its thread group, so that a TID reused by another process
// reads as gone.
func readStart(root string, tgid, tid int) (uint64, error) {
	var buf [proc.StatBufSize]byte
	b, err := proc.ReadSmall(proc.Path(root, tgid, fmt.Sprintf("task/%d/stat", tid)), buf[:])
	if err != nil {
		return 0, err
	}
	st, err := proc.ParseStat(b)
	if err != nil {
		return 0, err
	}
	return st.Start, nil
}
