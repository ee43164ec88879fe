package freezer

// The holder: which tasks of a hierarchy must be frozen, and the SIGSTOP
// fallback for those another tracer holds.

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// How soon the holder looks again at tasks whose stop is not confirmed:
// often for a while after a change (a task another tracer holds is known to
// be Failed within a millisecond or two), then seldom (a SIGCONT that
// resumed a task stopped with SIGSTOP is undone at the next look).
const (
	fastLook   = 5 * time.Millisecond
	fastWindow = time.Second
	slowLook   = 250 * time.Millisecond
)

// holder is what the freezer holds in one hierarchy: which tasks must be
// frozen (each held in the Stopper for "freezer"), and the tasks the Stopper
// cannot stop because another tracer (strace, gdb) holds them, which it
// stops with SIGSTOP instead. Its worker only looks after the latter;
// stopping and resuming is the Stopper's. One per hierarchy, in the root's
// state.
type holder struct {
	sp     Stopper
	proc   string // procfs; "" is /proc
	Logf   core.Logf
	signal func(tgid, tid int, sig syscall.Signal) error

	// mu is taken after the registry lock and before the Stopper's. The
	// worker never holds it across a read of /proc.
	mu lockrank.Mutex[lockrank.Subsys]
	// want holds every task of a non-root container whose effective state
	// is freezing. Guarded by mu.
	want map[*core.Task]struct{}
	// sigstopped holds the wanted tasks stopped with SIGSTOP, and whether
	// /proc showed them stopped at the last look. Guarded by mu.
	sigstopped map[*core.Task]bool
	changed    time.Time // when want last grew; guarded by mu
	closed     bool      // guarded by mu

	// w runs run, unless the Subsys is manual (tests call check).
	w *worker.Worker

	// logged: tasks the worker has said it cannot stop. Owned by check.
	logged map[*core.Task]bool
}

func newHolder(sp Stopper, proc string, logger core.Logf, signal func(int, int, syscall.Signal) error) *holder {
	return &holder{
		sp: sp, proc: proc, Logf: logger, signal: signal,
		want: map[*core.Task]struct{}{}, sigstopped: map[*core.Task]bool{},
		w:      worker.New(),
		logged: map[*core.Task]bool{},
	}
}

// holdLocked records whether t must be frozen and tells the Stopper. It
// never blocks. Call with mu held, then notify.
func (h *holder) holdLocked(t *core.Task, v bool) {
	if _, had := h.want[t]; had == v || h.closed {
		return
	}
	if v {
		h.want[t] = struct{}{}
		h.changed = time.Now()
		h.sp.Stop(t.TID, t.Start, holdReason)
	} else {
		delete(h.want, t)
		h.sp.Resume(t.TID, holdReason)
	}
}

// exitLocked forgets t, which exited. Call with mu held.
func (h *holder) exitLocked(t *core.Task) {
	delete(h.want, t)
	delete(h.sigstopped, t)
	h.sp.Forget(t.TID, holdReason)
}

// stoppedLocked tells whether t counts as frozen: stopped by the Stopper
// (or gone: its exit is on its way), or stopped by the SIGSTOP fallback.
// Call with mu held.
func (h *holder) stoppedLocked(t *core.Task) bool {
	if h.sigstopped[t] {
		return true
	}
	st, _ := h.sp.Status(t.TID)
	return st == stopper.Stopped || st == stopper.Gone
}

// notify wakes the worker: want changed. It never blocks.
func (h *holder) notify() { h.w.Wake() }

// isClosed tells whether the root's Destroy closed h.
func (h *holder) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// close lets every task go; the worker sends SIGCONT to those it stopped
// with SIGSTOP, and ends. Call with the registry lock held: it does not
// wait for the worker.
func (h *holder) close() {
	h.mu.Lock()
	h.closed = true
	for t := range h.want {
		h.sp.Forget(t.TID, holdReason)
	}
	clear(h.want)
	h.mu.Unlock()
	h.w.Stop()
}

// run is the holder's worker loop: it sleeps unless a change was made or a
// stop is unconfirmed. Once stopped it looks a last time, which lets go
// the tasks it stopped with SIGSTOP.
func (h *holder) run() {
	for {
		next, closed := h.check()
		if closed {
			return
		}
		if next == 0 {
			next = -1 // only when woken
		}
		if !h.w.Wait(next) {
			h.check()
			return
		}
	}
}

// check stops with SIGSTOP the wanted tasks the Stopper cannot stop because
// another tracer holds them, sends SIGCONT to those no longer wanted, and
// stops again those a SIGCONT resumed. It says when to look again (0: only
// when woken) and whether the holder is closed.
//
// SIGSTOP stops a whole process, so it is sent only if every thread of the
// process is to be frozen. It is visible, as SIGSTOP always is: the task's
// parent and its tracer see it, and a SIGCONT resumes the task until the
// next look. Without a tracer of its own, a task never needs it.
func (h *holder) check() (next time.Duration, closed bool) {
	h.mu.Lock()
	closed = h.closed
	var failed []*core.Task
	pending := false
	for t := range h.want {
		if _, ok := h.sigstopped[t]; ok {
			continue
		}
		switch st, err := h.sp.Status(t.TID); st {
		case stopper.Failed:
			if errors.Is(err, syscall.EPERM) {
				failed = append(failed, t)
			} else {
				pending = true
			}
		case stopper.Running, stopper.Stopping:
			pending = true
		}
	}
	var release []*core.Task
	for t := range h.sigstopped {
		if _, ok := h.want[t]; !ok {
			release = append(release, t)
			delete(h.sigstopped, t)
		}
	}
	stillHeld := map[int]bool{} // processes with a thread still SIGSTOPped
	watch := make([]*core.Task, 0, len(h.sigstopped))
	for t := range h.sigstopped {
		stillHeld[t.TGID] = true
		watch = append(watch, t)
	}
	wanted := map[int]map[int]bool{} // TGID -> wanted TIDs, for the failed tasks' processes
	for _, t := range failed {
		wanted[t.TGID] = map[int]bool{}
	}
	if len(failed) > 0 {
		for t := range h.want {
			if w := wanted[t.TGID]; w != nil {
				w[t.TID] = true
			}
		}
	}
	recent := time.Since(h.changed) < fastWindow
	h.mu.Unlock()

	// Resume the processes no thread of which is held any more.
	continued := map[int]bool{}
	for _, t := range release {
		delete(h.logged, t)
		if !stillHeld[t.TGID] && !continued[t.TGID] {
			continued[t.TGID] = true
			h.signal(t.TGID, t.TID, syscall.SIGCONT)
		}
	}
	// Stop, with SIGSTOP, whole processes that another tracer holds.
	var stopped []*core.Task
	signalled := map[int]bool{}
	for _, t := range failed {
		if signalled[t.TGID] {
			stopped = append(stopped, t)
			continue
		}
		why := h.wholeProcess(t.TGID, wanted[t.TGID])
		if why != "" {
			if !h.logged[t] {
				h.logged[t] = true
				h.Logf.Printf("freezer: task %d already has a tracer and cannot be stopped: %s", t.TID, why)
			}
			continue
		}
		if err := h.signal(t.TGID, t.TID, syscall.SIGSTOP); err != nil {
			continue // gone: its exit is on its way
		}
		signalled[t.TGID] = true
		if !h.logged[t] {
			h.logged[t] = true
			h.Logf.Printf("freezer: task %d already has a tracer: stopped with SIGSTOP instead (visible to its parent, undone by SIGCONT until the next look)", t.TID)
		}
		stopped = append(stopped, t)
	}
	// Follow the SIGSTOPped tasks in /proc: stopped means state T, or t
	// when their own tracer holds them in the stop.
	seen := make(map[*core.Task]bool, len(watch))
	for _, t := range watch {
		st, err := readStat(h.proc, t.TGID, t.TID)
		if err != nil {
			continue // gone: its exit hook drops it
		}
		seen[t] = st.State == 'T' || st.State == 't'
		if !seen[t] {
			h.signal(t.TGID, t.TID, syscall.SIGSTOP)
		}
	}

	h.mu.Lock()
	for _, t := range stopped {
		if _, ok := h.want[t]; ok {
			h.sigstopped[t] = false
		} else if !h.sigstoppedProcessLocked(t.TGID) {
			h.signal(t.TGID, t.TID, syscall.SIGCONT) // thawed meanwhile
		}
	}
	for t, v := range seen {
		if _, ok := h.sigstopped[t]; ok {
			h.sigstopped[t] = v
		}
	}
	switch {
	case pending && recent:
		next = fastLook
	case pending || len(h.sigstopped) > 0 || len(failed) > 0:
		next = slowLook
	}
	h.mu.Unlock()
	return next, closed
}

func (h *holder) sigstoppedProcessLocked(tgid int) bool {
	for t := range h.sigstopped {
		if t.TGID == tgid {
			return true
		}
	}
	return false
}

// wholeProcess says why process tgid may not be stopped with SIGSTOP ("" if
// it may): every one of its threads must be wanted.
func (h *holder) wholeProcess(tgid int, wanted map[int]bool) string {
	tids, err := proc.Threads(h.proc, tgid)
	if err != nil {
		return "its process is gone"
	}
	for _, tid := range tids {
		if !wanted[tid] {
			return fmt.Sprintf("thread %d of its process is not being frozen, and SIGSTOP would stop it too", tid)
		}
	}
	return ""
}

// readStat reads /proc/TGID/task/TID/stat: the path within its thread
// group, so that a TID reused by another process reads as gone.
func readStat(root string, tgid, tid int) (proc.Stat, error) {
	var buf [proc.StatBufSize]byte
	b, err := proc.ReadSmall(proc.Path(root, tgid, fmt.Sprintf("task/%d/stat", tid)), buf[:])
	if err != nil {
		return proc.Stat{}, err
	}
	return proc.ParseStat(b)
}
