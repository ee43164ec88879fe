// The sticky table: processes placed on request or by hand, which the
// rules leave alone, and the trees that inherit that at fork.

package policy

import (
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// Stick says how the rules treat a process after it was placed on
// request (cgexec, cgclassify) or by hand.
type Stick int

// The ways a placed process is left alone.
const (
	// StickNone: the rules may move it again on its next exec or uid
	// change (cgclassify --cancel-unchanged).
	StickNone Stick = iota
	// StickSelf: the rules leave it alone, but classify its children when
	// they exec (cgexec and cgclassify without --sticky).
	StickSelf
	// StickTree: the rules leave it and every descendant alone (--sticky).
	StickTree
)

func (s Stick) String() string {
	return [...]string{"not sticky", "sticky", "sticky with its children"}[s]
}

type stickyEntry struct {
	start uint64 // 0: not read yet (inherited at fork)
	tree  bool
	why   string // why it, or the ancestor it inherits from, was made sticky
	// ancestor is, for an entry inherited at fork, the process that was
	// made sticky; 0 for that process itself. A fork in a sticky tree
	// copies the entry and formats nothing.
	ancestor int
}

// reason says why the entry exists, for Explain.
func (s stickyEntry) reason() string {
	if s.ancestor == 0 {
		return s.why
	}
	return fmt.Sprintf("a descendant of %d, %s", s.ancestor, s.why)
}

// Stick leaves process pid alone as mode says (StickNone lets the rules
// act on it again).
func (e *Engine) Stick(pid int, mode Stick) error {
	p, err := e.o.Procs.Process(pid)
	if err != nil {
		return withErrno(err, syscall.ESRCH) // it names the process already
	}
	e.setSticky(p, mode, "on request")
	return nil
}

// NoteManual records that process pid was moved by hand (a write to a
// tasks or cgroup.procs file): the rules leave it alone from then on, as
// Options.Manual says. The daemon calls it for every move not made by the
// engine (see Own).
//
// start is the process's start time (clock ticks, as /proc shows it), which
// the caller already knows: this runs before the writer of tasks is
// answered, so it reads nothing.
func (e *Engine) NoteManual(pid int, start uint64) {
	e.setSticky(Process{PID: pid, Start: start}, e.o.Manual, "moved by hand")
}

func (e *Engine) setSticky(p Process, mode Stick, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if mode == StickNone {
		delete(e.sticky, p.PID)
		return
	}
	e.sticky[p.PID] = stickyEntry{start: p.Start, tree: mode == StickTree, why: why}
}

// pruneSticky drops the entries of processes gone from the model.
func (e *Engine) pruneSticky() {
	e.mu.Lock()
	pids := make([]int, 0, len(e.sticky))
	for pid := range e.sticky {
		pids = append(pids, pid)
	}
	e.mu.Unlock()
	for _, pid := range pids {
		e.onExit(pid)
	}
}

func (e *Engine) stickyEntry(pid int) (stickyEntry, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sticky[pid]
	return s, ok
}

// isSticky tells whether the rules must leave p alone. An entry of an
// earlier holder of the PID (its exit event lost) is dropped. The entry's
// start may be the model's (NoteManual gets the leader's start from the
// registry, which a fork event may have stamped late) and p's is /proc's,
// so the comparison is proc.SameStart.
func (e *Engine) isSticky(p Process) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sticky[p.PID]
	if !ok {
		return false
	}
	if s.start == 0 {
		s.start = p.Start
		e.sticky[p.PID] = s
	} else if !proc.SameStart(s.start, p.Start) {
		delete(e.sticky, p.PID)
		return false
	}
	return true
}

// onExit forgets a sticky process once its last thread is gone. The exit
// of a thread group's leader is not always the end of the process: a
// zombie leader's process lives while other threads do, and when another
// thread execs (as Go's syscall.Exec does from whatever thread it runs
// on), the kernel kills the leader, sends its exit, and the exec'ing
// thread takes over its PID and its start time. The model, which has
// applied this exit already, knows whether a thread of the group is left;
// asking it reads nothing from /proc, which matters in a fork storm inside
// a sticky tree, where every child has an entry.
func (e *Engine) onExit(tgid int) {
	s, ok := e.stickyEntry(tgid)
	if !ok || e.o.Model.GroupAlive(tgid) {
		return
	}
	e.mu.Lock()
	if cur, ok := e.sticky[tgid]; ok && cur == s {
		delete(e.sticky, tgid)
	}
	e.mu.Unlock()
}
