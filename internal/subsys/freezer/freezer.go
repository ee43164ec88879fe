package freezer

// The freezer subsystem's model: its files, its per-container state, and
// the hooks that hand tasks to the holder (holder.go).

import (
	"fmt"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/stopper"
)

// Stopper stops and resumes tasks for a reason of the caller's, without the
// tasks or their parents seeing it; *stopper.Stopper is one. Its methods
// must not block: they are called with the registry lock held.
type Stopper interface {
	// Stop holds task tid (which started at start, in clock ticks since
	// boot) for reason.
	Stop(tid int, start uint64, reason string)
	// Resume drops reason's hold on tid; it runs when nothing holds it.
	Resume(tid int, reason string)
	// Forget drops reason's hold and its interest in tid, which exited.
	Forget(tid int, reason string)
	// Status tells whether tid is stopped, and why it cannot be.
	Status(tid int) (stopper.State, error)
	// WaitStopped is closed once every task of tids is stopped, gone or
	// no longer held.
	WaitStopped(tids []int) <-chan struct{}
}

// freezeWait bounds how long a write of FROZEN waits for the tasks to
// stop before it returns; freezer.state reads FREEZING until they have.
const freezeWait = 20 * time.Millisecond

var _ Stopper = (*stopper.Stopper)(nil)

// holdReason is the freezer's reason in the shared Stopper.
const holdReason = "freezer"

// Subsys is the freezer subsystem. The zero value freezes real tasks with
// the process's shared Stopper. Its fields are configuration, set before it
// is registered.
type Subsys struct {
	// Stopper stops and resumes tasks; nil is stopper.Default(), shared
	// with cpu and memory.
	Stopper Stopper
	// Logf reports what could not be done; nil is log.Printf.
	Logf core.Logf

	// manual leaves the holder's worker unstarted: unit tests call
	// check themselves.
	manual bool
	// procRoot is where procfs is mounted; "" means /proc.
	procRoot string
	// signal sends sig to thread tid of process tgid; nil is tgkill.
	// Tests replace it.
	signal func(tgid, tid int, sig syscall.Signal) error
}

var (
	_ core.Subsys   = (*Subsys)(nil)
	_ core.Forker   = (*Subsys)(nil)
	_ core.Attacher = (*Subsys)(nil)
	_ core.Exiter   = (*Subsys)(nil)
)

// state is one container's freezer state.
type state struct {
	h      *holder // the hierarchy's, made by the root's Create; immutable
	parent *state  // nil for a root; immutable
	self   bool    // FROZEN was written here (CGROUP_FREEZING_SELF); guarded by the registry lock
}

// freezing is the effective state: the container's own or an ancestor's
// (CGROUP_FREEZING = SELF | PARENT). Call with the registry lock held.
func (st *state) freezing() bool {
	for x := st; x != nil; x = x.parent {
		if x.self {
			return true
		}
	}
	return false
}

// parentFreezing is CGROUP_FREEZING_PARENT: an ancestor is freezing.
func (st *state) parentFreezing() bool { return st.parent != nil && st.parent.freezing() }

// Name implements core.Subsys.
func (*Subsys) Name() string { return "freezer" }

// Create implements core.Subsys. The root's Create starts the holder.
func (s *Subsys) Create(c *core.Container) (any, error) {
	st := &state{}
	if p := c.Parent(); p != nil {
		st.parent = s.state(p)
		st.h = st.parent.h
		return st, nil
	}
	sp := s.Stopper
	if sp == nil {
		sp = stopper.Default()
	}
	sig := s.signal
	if sig == nil {
		sig = func(tgid, tid int, sig syscall.Signal) error { return syscall.Tgkill(tgid, tid, sig) }
	}
	st.h = newHolder(sp, s.procRoot, s.Logf, sig)
	if !s.manual {
		st.h.w.Start(st.h.run)
	}
	return st, nil
}

// Destroy implements core.Subsys. The root's Destroy lets every task go;
// it does not wait for them to run.
func (s *Subsys) Destroy(c *core.Container) {
	if c.IsRoot() {
		s.state(c).h.close()
	}
}

func (s *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, s) }

// Files implements core.Subsys. cgroup v1: the root has no freezer files.
// As in kernel/cgroup/legacy_freezer.c, freezer.state is a string file and
// self_freezing and parent_freezing are read_u64.
func (s *Subsys) Files() []core.File {
	boolFile := func(f func(*state) bool) func(*core.Container) uint64 {
		return func(c *core.Container) uint64 {
			if f(s.state(c)) {
				return 1
			}
			return 0
		}
	}
	return []core.File{
		{Name: "state", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) { return s.stateLocked(c) + "\n", nil },
			WriteUnlocked: func(c *core.Container, _ core.Caller, data string) error {
				// cgroup v1 (freezer_write): the stripped buffer must be
				// THAWED or FROZEN; FREEZING and anything else is EINVAL.
				var freeze bool
				switch v := core.Strstrip(data); v {
				case "FROZEN":
					freeze = true
				case "THAWED":
				default:
					return fmt.Errorf("freezer.state: %q is neither FROZEN nor THAWED: %w", v, syscall.EINVAL)
				}
				// The kernel's write returns at once and the state reads
				// FREEZING until every task is frozen. A freeze here takes
				// a few ms, and every read of the state is a round trip
				// to the daemon: the write waits (outside the registry
				// lock, for at most freezeWait) for the tasks to stop, so
				// that the next read usually says FROZEN.
				var stopped <-chan struct{}
				err := c.WithLock(func() error {
					h := s.state(c).h
					if h.isClosed() {
						return syscall.ENODEV
					}
					s.setSelfLocked(c, freeze)
					if freeze {
						var tids []int
						walk(c, func(d *core.Container) {
							for _, t := range d.TasksLocked() {
								tids = append(tids, t.TID)
							}
						})
						if len(tids) > 0 {
							stopped = h.sp.WaitStopped(tids)
						}
					}
					return nil
				})
				if err != nil || stopped == nil {
					return err
				}
				timer := time.NewTimer(freezeWait)
				defer timer.Stop()
				select {
				case <-stopped:
				case <-timer.C:
				}
				return nil
			},
		},
		{Name: "self_freezing", Flags: core.NotOnRoot, ReadU64: boolFile(func(st *state) bool { return st.self })},
		{Name: "parent_freezing", Flags: core.NotOnRoot, ReadU64: boolFile((*state).parentFreezing)},
	}
}

// stateLocked is what freezer.state reads: THAWED if neither c nor an
// ancestor is freezing; FROZEN if every task of c's subtree is stopped;
// FREEZING until then. Call with the registry lock held.
func (s *Subsys) stateLocked(c *core.Container) string {
	st := s.state(c)
	if !st.freezing() {
		return "THAWED"
	}
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	frozen := true
	walk(c, func(d *core.Container) {
		for _, t := range d.TasksLocked() {
			if frozen && !h.stoppedLocked(t) {
				frozen = false
			}
		}
	})
	if frozen {
		return "FROZEN"
	}
	return "FREEZING"
}

// walk calls f for c and every descendant, parents first.
func walk(c *core.Container, f func(*core.Container)) {
	f(c)
	for _, ch := range c.ChildrenLocked() {
		walk(ch, f)
	}
}

// setSelfLocked writes FROZEN (v) or THAWED to c. Every task of a
// container whose effective state changes is handed to the Stopper, and
// the write returns at once: freezer.state shows FREEZING until every
// task is stopped. Thawing a child of a frozen container changes nothing
// but self_freezing, as in the kernel. Call with the registry lock held.
func (s *Subsys) setSelfLocked(c *core.Container, v bool) {
	st := s.state(c)
	if st.self == v {
		return
	}
	parent := st.parentFreezing()
	st.self = v
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	var apply func(d *core.Container, wasParent, isParent bool)
	apply = func(d *core.Container, wasParent, isParent bool) {
		ds := s.state(d)
		was, is := wasParent || ds.self, isParent || ds.self
		if d == c {
			was = wasParent || !v
		}
		if was != is {
			for _, t := range d.TasksLocked() {
				h.holdLocked(t, is)
			}
		}
		for _, ch := range d.ChildrenLocked() {
			apply(ch, was, is)
		}
	}
	apply(c, parent, parent)
	h.notify()
}

// Fork implements core.Forker: a task born in a freezing container (its
// parent was not stopped yet when it forked: userspace learns of the fork
// after it happened) is frozen too.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	st := s.state(c)
	if !st.freezing() {
		return
	}
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holdLocked(t, true)
	h.notify()
}

// Attach implements core.Attacher: tasks conform to the state of their new
// container (cgroup v1's freezer_attach): moved into a freezing container
// they freeze, moved out of one they thaw. A root is never freezing, so
// nothing is ever stopped in a root container.
func (s *Subsys) Attach(ts *core.TaskSet) {
	dst := s.state(ts.Dst)
	freeze := dst.freezing()
	h := dst.h
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range ts.Tasks {
		h.holdLocked(t, freeze)
	}
	h.notify()
}

// Exit implements core.Exiter: the Stopper forgets the task.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	h := s.state(c).h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.exitLocked(t)
}
