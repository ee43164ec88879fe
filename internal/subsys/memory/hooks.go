package memory

// The task hooks: forks, exits and moves update the process index, and a
// move may be refused when the destination cannot take its charge.

import (
	"fmt"
	"os"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/proc"
)

// Fork implements core.Forker: task t was born in c (never a root). A task
// born in a paused container is paused too; it may have run for a moment
// (userspace learns of a fork after it happened).
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	st := s.state(c)
	e := st.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shut {
		return
	}
	e.joinLocked(t, st, t.Start, true)
}

// Exit implements core.Exiter.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	e := s.state(c).e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shut {
		return
	}
	e.leaveLocked(t, true)
}

// CanAttach implements core.CanAttacher. cgroup v1 refuses a move with
// ENOMEM only when the destination has move_charge_at_immigrate set and
// cannot take the moving process's charge (mem_cgroup_can_attach). We do
// the same for a thread group leader (the mm owner, whose memory moves),
// with its resident memory from /proc/PID/statm (a read that takes no
// lock of the process and does not sleep).
func (s *Subsys) CanAttach(ts *core.TaskSet) error {
	dst := s.state(ts.Dst)
	if dst.root {
		return nil
	}
	srcs := make([]*cstate, len(ts.Src))
	for i, c := range ts.Src {
		srcs[i] = s.state(c)
	}
	e := dst.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shut || dst.moveCharge == 0 {
		return nil
	}
	for i, t := range ts.Tasks {
		if t.TID != t.TGID {
			continue
		}
		b, err := os.ReadFile(proc.Path(s.proc(), t.TGID, "statm"))
		if err != nil {
			continue // gone: the core finds out
		}
		sm, err := parseStatm(b)
		if err != nil {
			continue
		}
		var amount int64
		if dst.moveCharge&1 != 0 {
			amount += sm.resident - sm.shared
		}
		if dst.moveCharge&2 != 0 {
			amount += sm.shared
		}
		for x := dst; x != nil && !x.root; x = x.parent {
			if srcs[i].within(x) {
				break // already counted from here up
			}
			if x.limit != unlimited && x.usage+amount > x.limit {
				return fmt.Errorf("memory: moving process %d (%d bytes) into %s would exceed the limit of %s (%d of %d bytes used): %w",
					t.TGID, amount, dst.path(), x.path(), x.usage, x.limit, syscall.ENOMEM)
			}
		}
	}
	return nil
}

// Attach implements core.Attacher. A process's memory belongs to the
// container of its thread group leader (v1 charges the mm's owner), so
// moving the leader moves the whole process's usage; moving another thread
// only changes whether that thread is paused.
func (s *Subsys) Attach(ts *core.TaskSet) {
	dst := s.state(ts.Dst)
	e := dst.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shut {
		return
	}
	for _, t := range ts.Tasks {
		if dst.root {
			e.leaveLocked(t, false)
			e.inRoot[t.TID] = struct{}{}
			continue
		}
		e.joinLocked(t, dst, e.nowTicks(), false)
		if dst.effLimit() != unlimited {
			// Look at the newcomer now rather than when the sampler
			// planned to (moves are rare; forks, which may come in
			// storms, wait for the next round).
			e.wakeLocked()
		}
	}
}
