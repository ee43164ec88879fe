package freezer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/stopper"
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
// stops with SIGSTOP instead. Its goroutine only looks after the latter;
// stopping and resuming is the Stopper's.
type holder struct {
	sp     Stopper
	proc   string
	logf   func(format string, a ...any)
	signal func(tgid, tid int, sig syscall.Signal) error

	// mu is taken after the registry lock and before the Stopper's. The
	// goroutine never holds it across a read of /proc.
	mu sync.Mutex
	// want holds every task of a non-root container whose effective state
	// is freezing. Guarded by mu.
	want map[*core.Task]struct{}
	// sigstopped holds the wanted tasks stopped with SIGSTOP, and whether
	// /proc showed them stopped at the last look. Guarded by mu.
	sigstopped map[*core.Task]bool
	changed    time.Time // when want last grew; guarded by mu
	closed     bool      // guarded by mu

	wake chan struct{} // capacity 1
	done chan struct{} // closed when the goroutine has ended

	// logged: tasks the goroutine has said it cannot stop. Owned by check.
	logged map[*core.Task]bool
}

func newHolder(sp Stopper, proc string, logf func(string, ...any), signal func(int, int, syscall.Signal) error) *holder {
	return &holder{
		sp: sp, proc: proc, logf: logf, signal: signal,
		want: map[*core.Task]struct{}{}, sigstopped: map[*core.Task]bool{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
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

func (h *holder) notify() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// close lets every task go; the goroutine sends SIGCONT to those it
// stopped with SIGSTOP, and ends. Call with the registry lock held.
func (h *holder) close() {
	h.mu.Lock()
	h.closed = true
	for t := range h.want {
		h.sp.Forget(t.TID, holdReason)
	}
	clear(h.want)
	h.mu.Unlock()
	h.notify()
}

// run is the holder's goroutine: it sleeps unless a change was made or a
// stop is unconfirmed.
func (h *holder) run() {
	defer close(h.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, closed := h.check()
		if closed {
			return
		}
		var tick <-chan time.Time
		if next > 0 {
			timer.Reset(next)
			tick = timer.C
		}
		select {
		case <-h.wake:
		case <-tick:
		}
		timer.Stop()
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
				h.logf("freezer: task %d already has a tracer and cannot be stopped: %s", t.TID, why)
			}
			continue
		}
		if err := h.signal(t.TGID, t.TID, syscall.SIGSTOP); err != nil {
			continue // gone: its exit is on its way
		}
		signalled[t.TGID] = true
		if !h.logged[t] {
			h.logged[t] = true
			h.logf("freezer: task %d already has a tracer: stopped with SIGSTOP instead (visible to its parent, undone by SIGCONT until the next look)", t.TID)
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
		seen[t] = st.state == 'T' || st.state == 't'
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
	tids, err := threads(h.proc, tgid)
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

// stat is what the holder reads from /proc/TGID/task/TID/stat.
type stat struct {
	state byte
	flags uint64
	start uint64
}

func readStat(proc string, tgid, tid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/task/%d/stat", proc, tgid, tid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// PF_KTHREAD, from the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// parseStat takes the state (field 3), flags (9) and start time (22) from a
// stat line. The comm field may hold spaces and parentheses: fields are
// counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("short stat")
	}
	flags, err := strconv.ParseUint(f[9-3], 10, 64)
	if err != nil {
		return stat{}, err
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return stat{}, err
	}
	return stat{state: f[0][0], flags: flags, start: start}, nil
}

// threads lists the TIDs of process tgid.
func threads(proc string, tgid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("%s/%d/task", proc, tgid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
