package core

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// Task is one thread on the machine. A task is identified by its TID and its
// start time, so that a reused TID is never mistaken for the task that had it.
type Task struct {
	TID, TGID int
	Start     uint64 // start time in clock ticks since boot (/proc/PID/stat field 22)

	// in[slot] is the task's container in the hierarchy at that registry
	// slot. Guarded by Registry.mu.
	in []*Container
}

// ID is the task's identity.
func (t *Task) ID() proc.ID { return proc.ID{TID: t.TID, Start: t.Start} }

// In is the task's container in hierarchy h. Call with the registry lock held
// (hooks and handlers are).
func (t *Task) In(h *Hierarchy) *Container {
	if h.slot < len(t.in) {
		return t.in[h.slot]
	}
	return nil
}

// TaskInfo is what the model needs to know of a thread from outside.
type TaskInfo struct {
	TID, TGID int
	Start     uint64
	UID, SUID uint32 // real and saved uid, for cgroup v1's move permission
	// NoSetAffinity marks kernel threads with PF_NO_SETAFFINITY, which
	// cgroup v1 refuses to move (EINVAL).
	NoSetAffinity bool
	// Exited marks a zombie: it has left every cgroup, and moving it is
	// ESRCH.
	Exited bool
}

// ID is the task's identity.
func (ti TaskInfo) ID() proc.ID { return proc.ID{TID: ti.TID, Start: ti.Start} }

// Procs looks tasks up where they live. The daemon uses /proc; unit tests use
// a fake.
type Procs interface {
	// Task describes one thread; an error wrapping ESRCH if it is gone.
	Task(tid int) (TaskInfo, error)
	// Threads lists the TIDs of thread group tgid; ESRCH if it is gone.
	Threads(tgid int) ([]int, error)
}

// StatReader is an optional Procs method: a cheaper lookup that fills only
// Start, NoSetAffinity and Exited.
type StatReader interface {
	Stat(tid int) (TaskInfo, error)
}

// ProcFS reads tasks from a procfs mounted at Root ("/proc").
type ProcFS struct{ Root string }

var _ StatReader = ProcFS{}

// Stat reads only /proc/TID/stat.
func (p ProcFS) Stat(tid int) (TaskInfo, error) {
	st, err := proc.ReadStat(p.Root, tid)
	if errors.Is(err, proc.ErrMalformed) {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, err)
	}
	if err != nil {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, syscall.ESRCH)
	}
	return TaskInfo{
		TID: tid, Start: st.Start,
		NoSetAffinity: st.Flags&proc.PFNoSetAffinity != 0,
		Exited:        st.Zombie(),
	}, nil
}

// Task reads /proc/TID/stat and, for the thread group and uids,
// /proc/TID/status.
func (p ProcFS) Task(tid int) (TaskInfo, error) {
	ti, err := p.Stat(tid)
	if err != nil {
		return TaskInfo{}, err
	}
	st, err := proc.ReadStatus(p.Root, tid)
	if errors.Is(err, proc.ErrMalformed) {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, err)
	}
	if err != nil {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, syscall.ESRCH)
	}
	ti.TGID, ti.UID, ti.SUID = st.TGID, st.UID[proc.Real], st.UID[proc.Saved]
	return ti, nil
}

// Threads lists /proc/TGID/task.
func (p ProcFS) Threads(tgid int) ([]int, error) {
	tids, err := proc.Threads(p.Root, tgid)
	if err != nil {
		return nil, fmt.Errorf("thread group %d: %w", tgid, syscall.ESRCH)
	}
	return tids, nil
}
