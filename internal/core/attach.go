package core

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// Attach moves task pid into dst, as a write to dst's tasks file does; with
// group set it moves pid's whole thread group, as cgroup.procs does. pid 0
// means the caller. Attach is two-phase across the hierarchy's subsystems: if
// any CanAttach refuses, the ones that agreed are cancelled and nothing moves.
func (r *Registry) Attach(dst *Container, who Caller, pid int, group bool) error {
	if pid == 0 {
		pid = who.PID
	}
	if pid <= 0 {
		return fmt.Errorf("pid %d: %w", pid, syscall.ESRCH)
	}
	// Read /proc before taking the lock: for a task the model knows, its
	// stat (start time, flags) is enough when root writes; otherwise its
	// status too (thread group, uids).
	ti, err := r.lookup(pid, who.UID == 0)
	if err != nil || ti.Exited {
		return fmt.Errorf("attach %d: %w", pid, syscall.ESRCH)
	}
	if ti.NoSetAffinity {
		// cgroup v1: kernel threads bound to their CPUs cannot move.
		return fmt.Errorf("attach %d: kernel thread: %w", pid, syscall.EINVAL)
	}
	// cgroup v1: the writer must be root or have the target's uid.
	if who.UID != 0 && who.UID != ti.UID && who.UID != ti.SUID {
		return fmt.Errorf("attach %d: uid %d may not move it: %w", pid, who.UID, syscall.EACCES)
	}
	infos := []TaskInfo{ti}
	if group {
		if infos, err = r.threadGroup(ti); err != nil {
			return err
		}
	}

	r.lock()
	defer r.unlock()
	if dst.removed {
		return fmt.Errorf("attach %d to removed container: %w", pid, syscall.ENODEV)
	}
	if r.self != 0 && ti.TGID == r.self {
		return fmt.Errorf("attach %d: the containerfs daemon stays in its root containers: %w", pid, syscall.EPERM)
	}
	ts := &TaskSet{Dst: dst}
	for _, info := range infos {
		t := r.taskLocked(info)
		if src := t.In(dst.h); src != dst {
			ts.Tasks = append(ts.Tasks, t)
			ts.Src = append(ts.Src, src)
		}
	}
	if err := r.migrateLocked(ts); err != nil {
		return err
	}
	if f := r.onAttach; f != nil {
		tgid, start := ti.TGID, ti.Start
		if leader := r.tasks[tgid]; leader != nil {
			start = leader.Start
		}
		r.after = append(r.after, func() { f(dst, who, tgid, start) })
	}
	return nil
}

// lookup describes task pid from /proc, reading only its stat when the
// model already knows the task (same start time) and uids are not needed.
func (r *Registry) lookup(pid int, root bool) (TaskInfo, error) {
	r.lock()
	var tgid int
	var start uint64
	if t := r.tasks[pid]; t != nil {
		tgid, start = t.TGID, t.Start
	}
	r.unlock()
	if root && tgid != 0 {
		if st, ok := r.procs.(StatReader); ok {
			ti, err := st.Stat(pid)
			if err == nil && proc.SameStart(start, ti.Start) {
				ti.TID, ti.TGID = pid, tgid
				return ti, nil
			}
		}
	}
	return r.procs.Task(pid)
}

// threadGroup lists the threads of ti's group, the leader first.
func (r *Registry) threadGroup(ti TaskInfo) ([]TaskInfo, error) {
	tids, err := r.procs.Threads(ti.TGID)
	if err != nil {
		return nil, fmt.Errorf("attach thread group %d: %w", ti.TGID, syscall.ESRCH)
	}
	infos := make([]TaskInfo, 0, len(tids))
	for _, tid := range tids {
		if tid == ti.TID {
			infos = append(infos, ti)
			continue
		}
		info, err := r.procs.Task(tid)
		if err != nil || info.Exited {
			continue // exited meanwhile
		}
		infos = append(infos, info)
	}
	for i, info := range infos {
		if info.TID == ti.TGID {
			infos[0], infos[i] = infos[i], infos[0]
		}
	}
	return infos, nil
}

// migrateLocked runs the two phases of a migration.
func (r *Registry) migrateLocked(ts *TaskSet) error {
	if len(ts.Tasks) == 0 {
		return nil
	}
	h := ts.Dst.h
	for i, hk := range h.ss {
		if hk.canAttach == nil {
			continue
		}
		if err := hk.canAttach.CanAttach(ts); err != nil {
			for j := i - 1; j >= 0; j-- {
				if c := h.ss[j].cancel; c != nil {
					c.CancelAttach(ts)
				}
			}
			var errno syscall.Errno
			if !errors.As(err, &errno) {
				err = fmt.Errorf("%w: %w", err, syscall.EINVAL)
			}
			return fmt.Errorf("%s refuses the move: %w", hk.ss.Name(), err)
		}
	}
	for _, t := range ts.Tasks {
		t.setIn(h, ts.Dst)
	}
	for _, hk := range h.ss {
		if hk.attach != nil {
			hk.attach.Attach(ts)
		}
	}
	for i, src := range ts.Src {
		// A thread group leaving together empties its container once.
		if !slices.Contains(ts.Src[:i], src) {
			r.checkReleaseLocked(src)
		}
	}
	return nil
}

// taskLocked returns the model's task for info (as /proc shows it), adding
// it if it is new. A known TID whose task started after the one recorded is
// a reused TID: the old task has exited.
func (r *Registry) taskLocked(info TaskInfo) *Task {
	t := r.tasks[info.TID]
	if t != nil && proc.SameStart(t.Start, info.Start) {
		return t
	}
	if t != nil {
		r.exitLocked(t)
	}
	// A task we did not see being born joins its thread group, or, failing
	// that, the root containers.
	var from *Task
	if leader := r.tasks[info.TGID]; leader != nil && info.TGID != info.TID {
		from = leader
	}
	return r.addLocked(info, from)
}

// addLocked adds a task, in from's containers if from is not nil, else in
// every root; subsystems' Fork hooks run where it lands outside a root.
func (r *Registry) addLocked(info TaskInfo, from *Task) *Task {
	t := &Task{TID: info.TID, TGID: info.TGID, Start: info.Start}
	r.tasks[t.TID] = t
	if t.TID != t.TGID {
		r.threads[t.TGID]++
	}
	for _, h := range r.hier {
		if h == nil {
			continue
		}
		c := h.root
		if from != nil && from.In(h) != nil {
			c = from.In(h)
		}
		t.setIn(h, c)
		if c.parent == nil {
			continue
		}
		for _, hk := range h.ss {
			if hk.fork != nil {
				hk.fork.Fork(c, t)
			}
		}
	}
	return t
}

func (r *Registry) exitLocked(t *Task) {
	delete(r.tasks, t.TID)
	if t.TID != t.TGID {
		r.leftGroupLocked(t.TGID)
	}
	for _, h := range r.hier {
		if h == nil {
			continue
		}
		c := t.In(h)
		if c == nil {
			continue
		}
		t.setIn(h, nil)
		if c.parent == nil {
			continue // as with Fork: no hooks for the roots' tasks
		}
		for _, hk := range h.ss {
			if hk.exit != nil {
				hk.exit.Exit(c, t)
			}
		}
		r.checkReleaseLocked(c)
	}
}

// AddTask records a task found by a scan of /proc, in its thread group's
// containers if the group is known, else in the root containers. A TID
// already known with the same start time is left where it is.
func (r *Registry) AddTask(info TaskInfo) {
	r.lock()
	defer r.unlock()
	r.taskLocked(info)
}

// Fork records that parentTID created child: the child enters its parent's
// container in every hierarchy, then every subsystem's Fork hook runs. A
// thread (TID != TGID) joins its thread group's leader instead. If neither
// the parent nor, for a thread, the leader is known, the child is not added
// and Fork returns false: events were lost or came out of order, and the
// caller should resynchronise from /proc. A fork already known (from a
// scan) or older than the task now holding that TID is ignored.
func (r *Registry) Fork(parentTID int, child TaskInfo) bool {
	r.lock()
	defer r.unlock()
	if old := r.tasks[child.TID]; old != nil {
		if old.ID().Is(child.ID()) || old.Start > child.Start {
			return true
		}
		r.exitLocked(old) // its exit event was lost: the TID is reused
	}
	from := r.tasks[parentTID]
	if child.TGID != child.TID {
		if leader := r.tasks[child.TGID]; leader != nil {
			from = leader
		}
	}
	if from == nil {
		return false
	}
	r.addLocked(child, from)
	return true
}

// Exit removes task tid, which exited at time at (clock ticks since boot;
// 0 for unknown); Exit hooks run. A task that started after at is a newer
// holder of the TID and is left alone, so a late exit event cannot remove it.
func (r *Registry) Exit(tid int, at uint64) {
	r.lock()
	defer r.unlock()
	t := r.tasks[tid]
	if t == nil || (at != 0 && t.Start > at+1) {
		return
	}
	r.exitLocked(t)
}

// leftGroupLocked counts a non-leader thread of group tgid out.
func (r *Registry) leftGroupLocked(tgid int) {
	if n := r.threads[tgid]; n > 1 {
		r.threads[tgid] = n - 1
	} else {
		delete(r.threads, tgid)
	}
}

// Known tells whether the model has a task tid.
func (r *Registry) Known(tid int) bool {
	r.lock()
	defer r.unlock()
	return r.tasks[tid] != nil
}

// GroupAlive tells whether the model still has a thread of thread group
// tgid: its leader, or another thread. After the leader's exit the group
// lives on while another thread does (a zombie leader, or a thread that is
// about to exec and take over the group's ID).
func (r *Registry) GroupAlive(tgid int) bool {
	r.lock()
	defer r.unlock()
	return r.tasks[tgid] != nil || r.threads[tgid] > 0
}

// Exec records that thread group tgid ran execve. When a thread other than
// the leader execs, the kernel kills the leader and the exec'ing thread
// takes over the group's ID (and the leader's start time, start) without an
// exit event for its old TID: the thread the model still has in that group
// becomes the leader, keeping its containers. Exec returns false if the
// model knows no thread of the group at all, so the caller can resync.
func (r *Registry) Exec(tgid int, start uint64) bool {
	r.lock()
	defer r.unlock()
	if r.tasks[tgid] != nil {
		return true
	}
	if r.threads[tgid] == 0 {
		return false // no thread of the group: no need to look
	}
	var heir *Task
	var rest []*Task
	for _, t := range r.tasks {
		if t.TGID != tgid {
			continue
		}
		if heir == nil || t.TID > heir.TID {
			if heir != nil {
				rest = append(rest, heir)
			}
			heir = t
		} else {
			rest = append(rest, t)
		}
	}
	if heir == nil {
		return false
	}
	for _, t := range rest {
		r.exitLocked(t) // de_thread killed them; their exits may be late
	}
	delete(r.tasks, heir.TID)
	r.leftGroupLocked(tgid) // the heir is the leader now
	heir.TID, heir.Start = tgid, start
	r.tasks[tgid] = heir
	for _, c := range heir.in {
		if c != nil {
			c.membersChangedLocked()
		}
	}
	return true
}

// ScanTask is one thread as a scan of /proc found it.
type ScanTask struct {
	TaskInfo
	PPID int // the parent process of its thread group
}

// Resync makes the model's task set equal to a scan of /proc, after events
// were lost: tasks gone (or whose TID now belongs to a task with another
// start time) exit; new tasks join their thread group, or else their
// parent process, or else the roots, in order of start time so that parents
// are placed before their children. Tasks already known stay where they are.
func (r *Registry) Resync(scan []ScanTask) (added, removed int) {
	slices.SortFunc(scan, func(a, b ScanTask) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.TID, b.TID))
	})
	r.lock()
	defer r.unlock()
	seen := make(map[int]uint64, len(scan))
	for _, st := range scan {
		seen[st.TID] = st.Start
	}
	for tid, t := range r.tasks {
		if start, ok := seen[tid]; !ok || !proc.SameStart(t.Start, start) {
			r.exitLocked(t)
			removed++
		}
	}
	for _, st := range scan {
		if r.tasks[st.TID] != nil {
			continue
		}
		from := r.tasks[st.TGID]
		if st.TID == st.TGID || from == nil {
			from = r.tasks[st.PPID]
		}
		r.addLocked(st.TaskInfo, from)
		added++
	}
	return added, removed
}

// Tasks lists every known task's TID and start time.
func (r *Registry) Tasks() map[int]uint64 {
	r.lock()
	defer r.unlock()
	m := make(map[int]uint64, len(r.tasks))
	for tid, t := range r.tasks {
		m[tid] = t.Start
	}
	return m
}

// Where is one membership of a task: a line of /proc/PID/cgroup.
type Where struct {
	Hierarchy *Hierarchy
	Path      string
}

// Where lists task tid's container in every hierarchy, by hierarchy id.
func (r *Registry) Where(tid int) ([]Where, bool) {
	r.lock()
	defer r.unlock()
	t := r.tasks[tid]
	if t == nil {
		return nil, false
	}
	var ws []Where
	for _, h := range r.hier {
		if h != nil && t.In(h) != nil {
			ws = append(ws, Where{Hierarchy: h, Path: t.In(h).PathLocked()})
		}
	}
	sortWhere(ws)
	return ws, true
}

// sortWhere orders memberships newest hierarchy first, as the kernel lists
// /proc/PID/cgroup.
func sortWhere(ws []Where) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].Hierarchy.id > ws[j-1].Hierarchy.id; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}
