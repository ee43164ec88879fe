package pids

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/containerfs/containerfs/internal/core"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
)

// refusal is a task whose fork the kernel would have refused.
type refusal struct {
	t *core.Task
}

// killer is the goroutine that kills refused threads, outside the registry
// lock, one per bound hierarchy: deciding whether a thread's whole process
// may die takes a look at /proc. (Refused processes are killed in the Fork
// hook itself.)
type killer struct {
	queue []refusal     // guarded by Subsys.mu
	wake  chan struct{} // capacity 1: "the queue is not empty"
	stop  chan struct{} // closed by the root's Destroy
}

func newKiller() *killer {
	return &killer{wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// queueLocked adds r to the queue and wakes the killer; it never blocks.
// Call with Subsys.mu held.
func (k *killer) queueLocked(r refusal) {
	k.queue = append(k.queue, r)
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

func (s *Subsys) runKiller(k *killer) {
	for {
		select {
		case <-k.stop:
			return
		case <-k.wake:
		}
		s.mu.Lock()
		q := k.queue
		k.queue = nil
		s.mu.Unlock()
		for _, r := range q {
			s.enforce(r)
		}
	}
}

func (s *Subsys) proc() string {
	if s.procRoot == "" {
		return "/proc"
	}
	return s.procRoot
}

func (s *Subsys) logf(format string, a ...any) {
	if s.logFn != nil {
		s.logFn(format, a...)
		return
	}
	log.Printf(format, a...)
}

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for one thread.
const pidfdThread = unix.O_EXCL

// enforce kills refused task r.t, unless that would kill something it must
// not. It runs on the killer goroutine, without the registry lock.
func (s *Subsys) enforce(r refusal) {
	t := r.t
	if t.TID != t.TGID {
		// SIGKILL cannot kill one thread: it kills the whole group.
		if ok, why := s.groupKillable(t); !ok {
			s.mu.Lock()
			if st, doomed := s.doomed[t]; doomed {
				// Not refused after all: it lives, so it is charged.
				delete(s.doomed, t)
				st.chargeLocked(1)
			}
			s.mu.Unlock()
			s.logf("pids: thread %d of process %d is over its container's pids.max but is left running: %s", t.TID, t.TGID, why)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked(r)
}

// killLocked kills refused task r.t if it is still refused and not in the
// root container. It holds mu while it signals (a pidfd signal never
// blocks), so that the task cannot be moved into the root container between
// the check and the kill: the Attach hook waits for mu. Call with s.mu held.
func (s *Subsys) killLocked(r refusal) {
	t := r.t
	st, doomed := s.doomed[t]
	if !doomed {
		return // it exited meanwhile
	}
	if st.root {
		// Moved into the root container before we got to it: never
		// enforce anything there. It lives, uncharged (the root has no
		// pids.current).
		delete(s.doomed, t)
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
	start, err := readStart(s.proc(), t.TGID, t.TID)
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
			s.logf("pids: kill refused task %d: %v", t.TID, err)
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
func (s *Subsys) groupKillable(t *core.Task) (bool, string) {
	dir := fmt.Sprintf("%s/%d/task", s.proc(), t.TGID)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true, "" // the group is gone; nothing will be killed
	}
	var unknown []int
	s.mu.Lock()
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ok := s.inRoot[tid]; ok {
			s.mu.Unlock()
			return false, fmt.Sprintf("thread %d of the same process is in the root container", tid)
		}
		if _, ok := s.nonRoot[tid]; !ok {
			unknown = append(unknown, tid)
		}
	}
	s.mu.Unlock()
	for _, tid := range unknown {
		start, err := readStart(s.proc(), t.TGID, tid)
		if err != nil {
			continue // exited
		}
		if olderThan(start, tid, t, s.pidMax()) {
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

// pidMax is /proc/sys/kernel/pid_max (read once), or PID_MAX_LIMIT.
func (s *Subsys) pidMax() int {
	s.pidMaxOnce.Do(func() {
		s.pidMaxVal = pidMaxLimit
		b, err := os.ReadFile(s.proc() + "/sys/kernel/pid_max")
		if err != nil {
			return
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
			s.pidMaxVal = v
		}
	})
	return s.pidMaxVal
}

// readStart reads a thread's start time (clock ticks since boot, field 22
// of /proc/TGID/task/TID/stat).
func readStart(proc string, tgid, tid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/task/%d/stat", proc, tgid, tid))
	if err != nil {
		return 0, err
	}
	return parseStart(b)
}

// parseStart takes field 22 from a stat line. The comm field may hold
// spaces and parentheses: fields are counted from the last ')'.
func parseStart(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("short stat")
	}
	return strconv.ParseUint(f[22-3], 10, 64)
}
