package freezer

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// Subsys is the freezer subsystem. The zero value is ready to use.
type Subsys struct {
	// manual leaves the tracer goroutine unstarted: unit tests play its
	// part, confirming stops themselves.
	manual bool
	// procRoot is where procfs is mounted; "" means /proc.
	procRoot string
	// logFn logs what the tracer could not do; nil means log.Printf.
	logFn func(format string, a ...any)

	// tr is the tracer of the hierarchy the subsystem is bound to, made by
	// the root's Create. Guarded by the registry lock.
	tr *tracer
}

var (
	_ core.Subsys   = (*Subsys)(nil)
	_ core.Forker   = (*Subsys)(nil)
	_ core.Attacher = (*Subsys)(nil)
	_ core.Exiter   = (*Subsys)(nil)
)

// state is one container's freezer state.
type state struct {
	parent *state // nil for a root; immutable
	self   bool   // FROZEN was written here (CGROUP_FREEZING_SELF); guarded by the registry lock
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

// Create implements core.Subsys. The root's Create starts the tracer.
func (s *Subsys) Create(c *core.Container) (any, error) {
	st := &state{}
	if p := c.Parent(); p != nil {
		st.parent = stateOf(s, p)
		return st, nil
	}
	s.tr = newTracer(s.proc(), s.logf)
	if !s.manual {
		go s.tr.run()
	}
	return st, nil
}

// Destroy implements core.Subsys. The root's Destroy tells the tracer to
// let go of every task and end, without waiting for it.
func (s *Subsys) Destroy(c *core.Container) {
	if c.IsRoot() && s.tr != nil {
		s.tr.close()
		s.tr = nil
	}
}

func stateOf(s *Subsys, c *core.Container) *state {
	st, _ := c.State(s).(*state)
	if st == nil {
		panic(fmt.Sprintf("freezer: container %s has no freezer state", c.PathLocked()))
	}
	return st
}

// Files implements core.Subsys. cgroup v1: the root has no freezer files.
func (s *Subsys) Files() []core.File {
	boolFile := func(f func(*state) bool) func(*core.Container) (string, error) {
		return func(c *core.Container) (string, error) {
			if f(stateOf(s, c)) {
				return "1\n", nil
			}
			return "0\n", nil
		}
	}
	return []core.File{
		{Name: "state", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) { return s.stateLocked(c) + "\n", nil },
			Write: func(c *core.Container, _ core.Caller, data string) error {
				// cgroup v1 (freezer_write): the stripped buffer must be
				// THAWED or FROZEN; FREEZING and anything else is EINVAL.
				switch v := strings.TrimSpace(data); v {
				case "FROZEN":
					s.setSelfLocked(c, true)
				case "THAWED":
					s.setSelfLocked(c, false)
				default:
					return fmt.Errorf("freezer.state: %q is neither FROZEN nor THAWED: %w", v, syscall.EINVAL)
				}
				return nil
			},
		},
		{Name: "self_freezing", Flags: core.NotOnRoot, Read: boolFile(func(st *state) bool { return st.self })},
		{Name: "parent_freezing", Flags: core.NotOnRoot, Read: boolFile((*state).parentFreezing)},
	}
}

// stateLocked is what freezer.state reads: THAWED if neither c nor an
// ancestor is freezing; FROZEN if every task of c's subtree has been seen
// stopped; FREEZING until then. Call with the registry lock held.
func (s *Subsys) stateLocked(c *core.Container) string {
	if !stateOf(s, c).freezing() {
		return "THAWED"
	}
	tr := s.tr
	tr.mu.Lock()
	defer tr.mu.Unlock()
	frozen := true
	walk(c, func(d *core.Container) {
		for _, t := range d.TasksLocked() {
			if _, ok := tr.stopped[t]; !ok {
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
// container whose effective state changes is handed to the tracer, and the
// write returns at once: freezer.state shows FREEZING until the tracer is
// done. Thawing a child of a frozen container changes nothing but
// self_freezing, as in the kernel. Call with the registry lock held.
func (s *Subsys) setSelfLocked(c *core.Container, v bool) {
	st := stateOf(s, c)
	if st.self == v {
		return
	}
	parent := st.parentFreezing()
	st.self = v
	tr := s.tr
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var apply func(d *core.Container, wasParent, isParent bool)
	apply = func(d *core.Container, wasParent, isParent bool) {
		ds := stateOf(s, d)
		was, is := wasParent || ds.self, isParent || ds.self
		if d == c {
			was = wasParent || !v
		}
		if was != is {
			for _, t := range d.TasksLocked() {
				tr.setWantLocked(t, is)
			}
		}
		for _, ch := range d.ChildrenLocked() {
			apply(ch, was, is)
		}
	}
	apply(c, parent, parent)
}

// Fork implements core.Forker: a task born in a freezing container (its
// parent was not stopped yet when it forked: userspace learns of the fork
// after it happened) is frozen too.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	if s.tr == nil || !stateOf(s, c).freezing() {
		return
	}
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	s.tr.setWantLocked(t, true)
}

// Attach implements core.Attacher: tasks conform to the state of their new
// container (cgroup v1's freezer_attach): moved into a freezing container
// they freeze, moved out of one they thaw. A root is never freezing, so
// nothing is ever stopped in a root container.
func (s *Subsys) Attach(ts *core.TaskSet) {
	if s.tr == nil {
		return
	}
	freeze := stateOf(s, ts.Dst).freezing()
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	for _, t := range ts.Tasks {
		s.tr.setWantLocked(t, freeze)
	}
}

// Exit implements core.Exiter. The tracer reaps the task if it traces it.
func (s *Subsys) Exit(_ *core.Container, t *core.Task) {
	if s.tr == nil {
		return
	}
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	s.tr.exitLocked(t)
}

func (s *Subsys) proc() string {
	if s.procRoot == "" {
		return "/proc"
	}
	return s.procRoot
}
