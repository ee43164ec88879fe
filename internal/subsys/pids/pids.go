package pids

// The pids subsystem's model: its files, its per-container counters and
// the hooks that charge, refuse and uncharge tasks. kill.go kills what the
// hooks refused.

import (
	"fmt"
	"strconv"
	"sync"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// pidMaxLimit is the kernel's PID_MAX_LIMIT on 64-bit: the largest pids.max.
const pidMaxLimit = 4194304

// unlimited is pids.max "max".
const unlimited = -1

// Subsys is the pids subsystem. The zero value is ready to use. Its fields
// are configuration, set before it is registered.
type Subsys struct {
	// Logf reports what the killer decided not to do; nil is log.Printf.
	Logf core.Logf

	// procRoot is where procfs is mounted; "" means /proc. Tests change it.
	procRoot string
	// sendKill delivers SIGKILL to a refused task; nil means the real one
	// (pidfd after a start-time check). Tests replace it. It runs with
	// hier.mu held and must not block.
	sendKill func(k refusal) error
	// manual queues every kill, processes included, and leaves the killer
	// unstarted: tests run the queue themselves, with drain.
	manual bool
}

var (
	_ core.Subsys   = (*Subsys)(nil)
	_ core.Forker   = (*Subsys)(nil)
	_ core.Attacher = (*Subsys)(nil)
	_ core.Exiter   = (*Subsys)(nil)
)

// hier is one hierarchy's pids bookkeeping: made by the root's Create,
// shared by every state of the hierarchy, and ended by the root's Destroy.
type hier struct {
	// mu guards the counters of every state of the hierarchy and what
	// follows, because the killer reads and updates them without the
	// registry lock. Hooks take it after the registry lock.
	mu lockrank.Mutex[lockrank.Subsys]
	// doomed holds the refused tasks, not charged anywhere, until their
	// exit: the state of the container each is in now.
	doomed map[*core.Task]*state
	// nonRoot maps the TID of every task in a non-root container of the
	// hierarchy (charged or doomed) to its start time.
	nonRoot map[int]uint64
	// inRoot holds the TIDs moved into the root container by a write to
	// tasks or cgroup.procs: those the killer must never reach through a
	// thread-group kill.
	inRoot map[int]struct{}
	// queue holds the refused threads for the killer.
	queue []refusal
	// closed is set by the root's Destroy: the hooks do nothing more.
	closed bool

	// w is the killer (kill.go); it runs drain when woken.
	w *worker.Worker

	pidMaxOnce sync.Once
	pidMaxVal  int // see Subsys.pidMax
}

// state is one container's pids state.
type state struct {
	h      *hier  // the hierarchy's; immutable
	parent *state // nil for a root; immutable
	root   bool   // immutable

	max int64 // unlimited or 0..pidMaxLimit; guarded by the registry lock

	current int64 // charged tasks here and below; guarded by h.mu
	peak    int64 // the highest current ever; guarded by h.mu
	events  int64 // forks refused to tasks here; guarded by h.mu
}

// Name implements core.Subsys.
func (*Subsys) Name() string { return "pids" }

// Create implements core.Subsys. The root's Create starts the killer.
func (s *Subsys) Create(c *core.Container) (any, error) {
	st := &state{max: unlimited, root: c.IsRoot()}
	if p := c.Parent(); p != nil {
		st.parent = s.state(p)
		st.h = st.parent.h
		return st, nil
	}
	h := &hier{
		doomed:  map[*core.Task]*state{},
		nonRoot: map[int]uint64{},
		inRoot:  map[int]struct{}{},
		w:       worker.New(),
	}
	st.h = h
	if !s.manual {
		h.w.Start(func() { s.runKiller(h) })
	}
	return st, nil
}

// Destroy implements core.Subsys. The root's Destroy stops the killer
// without waiting for it.
func (s *Subsys) Destroy(c *core.Container) {
	if !c.IsRoot() {
		return
	}
	h := s.state(c).h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.w.Stop()
	h.doomed, h.nonRoot, h.inRoot, h.queue = nil, nil, nil, nil
}

func (s *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, s) }

// Files implements core.Subsys. cgroup v1: none of the pids files is in the
// root. As in kernel/cgroup/pids.c, pids.max is a string file ("max" or a
// number), pids.current and pids.peak are read_s64 and pids.events is a
// seq_show.
func (s *Subsys) Files() []core.File {
	// counter reads one of a state's counters under h.mu.
	counter := func(f func(*state) int64) func(*core.Container) int64 {
		return func(c *core.Container) int64 {
			st := s.state(c)
			st.h.mu.Lock()
			defer st.h.mu.Unlock()
			return f(st)
		}
	}
	return []core.File{
		{Name: "max", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				return formatMax(s.state(c).max), nil
			},
			Write: func(c *core.Container, _ core.Caller, data string) error {
				v, err := ParseMax(data)
				if err != nil {
					return fmt.Errorf("pids.max: %w", err)
				}
				// Lowering the limit below pids.current kills nothing; it
				// only refuses the next forks, as in the kernel.
				s.state(c).max = v
				return nil
			},
		},
		{Name: "current", Flags: core.NotOnRoot,
			ReadS64: counter(func(st *state) int64 { return st.current })},
		// Linux 6.x also has pids.peak in v1 (pids_update_watermark).
		{Name: "peak", Flags: core.NotOnRoot,
			ReadS64: counter(func(st *state) int64 { return st.peak })},
		{Name: "events", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				st := s.state(c)
				st.h.mu.Lock()
				defer st.h.mu.Unlock()
				return "max " + strconv.FormatInt(st.events, 10) + "\n", nil
			},
		},
	}
}

func formatMax(v int64) string {
	if v == unlimited {
		return "max\n"
	}
	return strconv.FormatInt(v, 10) + "\n"
}

// ParseMax parses a write to pids.max as kernel/cgroup/pids.c's
// pids_max_write does: the buffer is strstrip()ped; "max" means no limit;
// otherwise kstrtoll(buf, 0) (decimal, 0x hex, 0 octal, an optional sign:
// its ERANGE on overflow and EINVAL for anything else are returned as
// they are), and the value must be 0..PID_MAX_LIMIT (EINVAL).
func ParseMax(data string) (int64, error) {
	buf := core.Strstrip(data)
	if buf == "max" {
		return unlimited, nil
	}
	v, err := core.Kstrtoll(buf)
	if err != nil {
		return 0, err
	}
	if v < 0 || v > pidMaxLimit {
		return 0, fmt.Errorf("%d is not in 0..%d: %w", v, pidMaxLimit, syscall.EINVAL)
	}
	return v, nil
}

// chargeLocked adds delta to st and every non-root ancestor: pids.current is
// hierarchical. Call with h.mu held.
func (st *state) chargeLocked(delta int64) {
	for x := st; x != nil && !x.root; x = x.parent {
		x.current += delta
		x.peak = max(x.peak, x.current)
	}
}

// overLocked is the strictest container, st or an ancestor, that one more
// task would take over its limit, or nil. cgroup v1 (pids_try_charge):
// the fork fails if any level would exceed its limit. Call with the registry
// lock (for max) and h.mu held.
func (st *state) overLocked() *state {
	for x := st; x != nil && !x.root; x = x.parent {
		if x.max != unlimited && x.current+1 > x.max {
			return x
		}
	}
	return nil
}

// Fork implements core.Forker: task t was born in c (never a root: the
// core runs Fork hooks only outside roots). It happened already; if the
// kernel would have refused it, t is counted in pids.events, left
// uncharged, and killed: a new process at once, a new thread by the
// killer, which must first look at its process's other threads.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	st := s.state(c)
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.nonRoot[t.TID] = t.Start
	if st.overLocked() == nil {
		st.chargeLocked(1)
		return
	}
	// cgroup v1 counts a refused fork in the forking task's cgroup
	// (events_local[PIDCG_FORKFAIL]), whichever ancestor's limit it hit.
	st.events++
	h.doomed[t] = st
	if t.TID == t.TGID && !s.manual {
		// A new process: kill it here and now. A hand-off to the killer
		// costs a thread wake-up, which on a loaded machine is
		// milliseconds that the refused child spends running. This is a
		// pidfd_open, a read of /proc/PID/stat and a pidfd_send_signal:
		// nothing here sleeps or waits on another process.
		s.killLocked(h, refusal{t: t})
		return
	}
	h.queue = append(h.queue, refusal{t: t})
	h.w.Wake()
}

// Attach implements core.Attacher. Moving never fails and may exceed a
// limit, as in the kernel: the charge moves with the task.
func (s *Subsys) Attach(ts *core.TaskSet) {
	dst := s.state(ts.Dst)
	h := dst.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for i, t := range ts.Tasks {
		if dst.root {
			delete(h.nonRoot, t.TID)
			h.inRoot[t.TID] = struct{}{}
		} else {
			h.nonRoot[t.TID] = t.Start
			delete(h.inRoot, t.TID)
		}
		if _, ok := h.doomed[t]; ok {
			// A refused task is charged nowhere; the killer checks
			// where it is before it kills (never in a root).
			h.doomed[t] = dst
			continue
		}
		s.state(ts.Src[i]).chargeLocked(-1)
		dst.chargeLocked(1)
	}
}

// Exit implements core.Exiter.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	st := s.state(c)
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if start, ok := h.nonRoot[t.TID]; ok && start == t.Start {
		delete(h.nonRoot, t.TID)
	}
	delete(h.inRoot, t.TID)
	if _, ok := h.doomed[t]; ok {
		delete(h.doomed, t)
		return
	}
	st.chargeLocked(-1)
}
