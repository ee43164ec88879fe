package pids

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// pidMaxLimit is the kernel's PID_MAX_LIMIT on 64-bit: the largest pids.max.
const pidMaxLimit = 4194304

// unlimited is pids.max "max".
const unlimited = -1

// Subsys is the pids subsystem. The zero value is ready to use.
type Subsys struct {
	// procRoot is where procfs is mounted; "" means /proc. Tests change it.
	procRoot string
	// sendKill delivers SIGKILL to a refused task; nil means the real one
	// (pidfd after a start-time check). Tests replace it. It runs with mu
	// held and must not block.
	sendKill func(k refusal) error
	// manual queues every kill, processes included, and leaves the killer
	// goroutine unstarted: tests run the queue themselves, with drain.
	manual bool
	// logFn reports what the killer decided not to do; nil means
	// log.Printf.
	logFn func(format string, a ...any)

	pidMaxOnce sync.Once
	pidMaxVal  int // see pidMax

	mu sync.Mutex
	// doomed holds the refused tasks, not charged anywhere, until their
	// exit: the state of the container each is in now. Guarded by mu.
	doomed map[*core.Task]*state
	// nonRoot maps the TID of every task in a non-root container of the
	// hierarchy (charged or doomed) to its start time. Guarded by mu.
	nonRoot map[int]uint64
	// inRoot holds the TIDs moved into the root container by a write to
	// tasks or cgroup.procs: those the killer must never reach through a
	// thread-group kill. Guarded by mu.
	inRoot map[int]struct{}
	// k is the killer of the hierarchy the subsystem is bound to; nil when
	// it is not bound. Guarded by mu.
	k *killer
}

var (
	_ core.Subsys   = (*Subsys)(nil)
	_ core.Forker   = (*Subsys)(nil)
	_ core.Attacher = (*Subsys)(nil)
	_ core.Exiter   = (*Subsys)(nil)
)

// state is one container's pids state.
type state struct {
	parent *state // nil for a root; immutable
	root   bool   // immutable

	max int64 // unlimited or 0..pidMaxLimit; guarded by the registry lock

	current int64 // charged tasks here and below; guarded by Subsys.mu
	peak    int64 // the highest current ever; guarded by Subsys.mu
	events  int64 // forks refused to tasks here; guarded by Subsys.mu
}

// Name implements core.Subsys.
func (*Subsys) Name() string { return "pids" }

// Create implements core.Subsys. The root's Create starts the killer.
func (s *Subsys) Create(c *core.Container) (any, error) {
	st := &state{max: unlimited, root: c.IsRoot()}
	if p := c.Parent(); p != nil {
		st.parent = stateOf(s, p)
		return st, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doomed = map[*core.Task]*state{}
	s.nonRoot = map[int]uint64{}
	s.inRoot = map[int]struct{}{}
	s.k = newKiller()
	if !s.manual {
		go s.runKiller(s.k)
	}
	return st, nil
}

// Destroy implements core.Subsys. The root's Destroy stops the killer
// without waiting for it.
func (s *Subsys) Destroy(c *core.Container) {
	if !c.IsRoot() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.k != nil {
		close(s.k.stop)
		s.k = nil
	}
	s.doomed, s.nonRoot, s.inRoot = nil, nil, nil
}

func stateOf(s *Subsys, c *core.Container) *state {
	st, _ := c.State(s).(*state)
	if st == nil {
		panic(fmt.Sprintf("pids: container %s has no pids state", c.PathLocked()))
	}
	return st
}

// Files implements core.Subsys. cgroup v1: none of the pids files is in the
// root.
func (s *Subsys) Files() []core.File {
	return []core.File{
		{Name: "max", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				return formatMax(stateOf(s, c).max), nil
			},
			Write: func(c *core.Container, _ core.Caller, data string) error {
				v, err := ParseMax(data)
				if err != nil {
					return fmt.Errorf("pids.max: %w", err)
				}
				// Lowering the limit below pids.current kills nothing; it
				// only refuses the next forks, as in the kernel.
				stateOf(s, c).max = v
				return nil
			},
		},
		{Name: "current", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				st := stateOf(s, c)
				s.mu.Lock()
				defer s.mu.Unlock()
				return strconv.FormatInt(st.current, 10) + "\n", nil
			},
		},
		// Linux 6.x also has pids.peak in v1 (pids_update_watermark).
		{Name: "peak", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				st := stateOf(s, c)
				s.mu.Lock()
				defer s.mu.Unlock()
				return strconv.FormatInt(st.peak, 10) + "\n", nil
			},
		},
		{Name: "events", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				st := stateOf(s, c)
				s.mu.Lock()
				defer s.mu.Unlock()
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

// ParseMax parses a write to pids.max as the kernel's pids_max_write does:
// the buffer is stripped; "max" means no limit; otherwise kstrtoll(buf, 0)
// (decimal, 0x hex, 0 octal, an optional sign; ERANGE on overflow, EINVAL
// for anything else), and the value must be 0..PID_MAX_LIMIT (EINVAL).
func ParseMax(data string) (int64, error) {
	s := strings.TrimSpace(data)
	if s == "max" {
		return unlimited, nil
	}
	// strconv accepts underscores with base 0; kstrtoll does not.
	if strings.Contains(s, "_") {
		return 0, fmt.Errorf("%q is not a number: %w", s, syscall.EINVAL)
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is out of range: %w", s, syscall.ERANGE)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a number: %w", s, syscall.EINVAL)
	}
	if v < 0 || v > pidMaxLimit {
		return 0, fmt.Errorf("%d is not in 0..%d: %w", v, pidMaxLimit, syscall.EINVAL)
	}
	return v, nil
}

// chargeLocked adds delta to st and every non-root ancestor: pids.current is
// hierarchical. Call with s.mu held.
func (st *state) chargeLocked(delta int64) {
	for x := st; x != nil && !x.root; x = x.parent {
		x.current += delta
		x.peak = max(x.peak, x.current)
	}
}

// overLocked is the strictest container, st or an ancestor, that one more
// task would take over its limit, or nil. cgroup v1 (pids_try_charge):
// the fork fails if any level would exceed its limit. Call with the registry
// lock (for max) and s.mu held.
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
// uncharged, and killed: a new process at once, a new thread by the killer
// goroutine, which must first look at its process's other threads.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	st := stateOf(s, c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.k == nil {
		return
	}
	s.nonRoot[t.TID] = t.Start
	if st.overLocked() == nil {
		st.chargeLocked(1)
		return
	}
	// cgroup v1 counts a refused fork in the forking task's cgroup
	// (events_local[PIDCG_FORKFAIL]), whichever ancestor's limit it hit.
	st.events++
	s.doomed[t] = st
	if t.TID == t.TGID && !s.manual {
		// A new process: kill it here and now. A hand-off to the killer
		// goroutine costs a thread wake-up, which on a loaded machine is
		// milliseconds that the refused child spends running. This is a
		// pidfd_open, a read of /proc/PID/stat and a pidfd_send_signal:
		// nothing here sleeps or waits on another process.
		s.killLocked(refusal{t: t})
		return
	}
	s.k.queueLocked(refusal{t: t})
}

// Attach implements core.Attacher. Moving never fails and may exceed a
// limit, as in the kernel: the charge moves with the task.
func (s *Subsys) Attach(ts *core.TaskSet) {
	dst := stateOf(s, ts.Dst)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.k == nil {
		return
	}
	for i, t := range ts.Tasks {
		if dst.root {
			delete(s.nonRoot, t.TID)
			s.inRoot[t.TID] = struct{}{}
		} else {
			s.nonRoot[t.TID] = t.Start
			delete(s.inRoot, t.TID)
		}
		if _, ok := s.doomed[t]; ok {
			// A refused task is charged nowhere; the killer checks
			// where it is before it kills (never in a root).
			s.doomed[t] = dst
			continue
		}
		stateOf(s, ts.Src[i]).chargeLocked(-1)
		dst.chargeLocked(1)
	}
}

// Exit implements core.Exiter.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	st := stateOf(s, c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.k == nil {
		return
	}
	if start, ok := s.nonRoot[t.TID]; ok && start == t.Start {
		delete(s.nonRoot, t.TID)
	}
	delete(s.inRoot, t.TID)
	if _, ok := s.doomed[t]; ok {
		delete(s.doomed, t)
		return
	}
	st.chargeLocked(-1)
}
