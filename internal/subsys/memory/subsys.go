package memory

// The memory subsystem's type, its configuration, and the lifecycle of
// its per-container state (Create, Destroy).

import (
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/stopper"
)

// Pauser stops and resumes tasks for a reason of the caller's, without the
// tasks or their parents seeing it; *stopper.Stopper is one. Its methods
// must not block: they are called with the registry lock held.
type Pauser interface {
	// Stop holds task tid (which started at start, in clock ticks since
	// boot) for reason.
	Stop(tid int, start uint64, reason string)
	// Forget drops reason's hold on tid; it runs when nothing holds it.
	Forget(tid int, reason string)
}

var _ Pauser = (*stopper.Stopper)(nil)

// holdReason is the memory subsystem's reason in the shared Stopper.
const holdReason = "memory"

// Subsys is the memory subsystem. The zero value enforces on the running
// kernel with the process's shared Stopper.
type Subsys struct {
	// Pauser pauses the tasks of a container over its limit when its OOM
	// killer is disabled; nil is stopper.Default(), shared with cpu.
	Pauser Pauser
	// Logf reports OOM kills, pauses, and what could not be done; nil is
	// log.Printf.
	Logf core.Logf

	// procRoot is where procfs is mounted; "" is /proc. Tests change it.
	procRoot string
	// manual leaves the sampler goroutine unstarted: tests call tick.
	manual bool
	// sendKill kills process tgid, which started at start; nil is the real
	// one (a pidfd after a start-time check). Tests replace it. It runs
	// with the engine's mu held and must not block.
	sendKill func(tgid int, start uint64) error
	// clock is the time; nil is time.Now. Tests replace it.
	clock func() time.Time
}

var (
	_ core.Subsys      = (*Subsys)(nil)
	_ core.CanAttacher = (*Subsys)(nil)
	_ core.Attacher    = (*Subsys)(nil)
	_ core.Forker      = (*Subsys)(nil)
	_ core.Exiter      = (*Subsys)(nil)
)

// Name implements core.Subsys.
func (*Subsys) Name() string { return "memory" }

func (s *Subsys) proc() string {
	if s.procRoot == "" {
		return "/proc"
	}
	return s.procRoot
}

func (s *Subsys) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// Create implements core.Subsys. A child inherits its parent's swappiness
// and oom_kill_disable, as v1's mem_cgroup_css_alloc does; the root's
// Create starts the sampler.
func (s *Subsys) Create(c *core.Container) (any, error) {
	st := &cstate{
		root: c.IsRoot(), name: c.NameLocked(),
		children: map[*cstate]struct{}{},
		limit:    unlimited, soft: unlimited,
	}
	if p := c.Parent(); p != nil {
		ps := s.state(p)
		e := ps.e
		e.mu.Lock()
		defer e.mu.Unlock()
		st.e, st.parent = e, ps
		ps.children[st] = struct{}{}
		st.swappiness = ps.swappiness
		if ps.root {
			st.swappiness = e.sys.swappiness
		}
		st.oomKillDisable = ps.oomKillDisable
		return st, nil
	}
	pauser := s.Pauser
	if pauser == nil {
		pauser = stopper.Default()
	}
	st.e = newEngine(s, st, pauser)
	if !s.manual {
		st.e.w.Start(st.e.run)
	}
	return st, nil
}

// Destroy implements core.Subsys. A removed child's event counts stay in
// its parent's total_ lines. The root's Destroy stops the sampler (without
// waiting for it) and lets every task it paused run.
func (s *Subsys) Destroy(c *core.Container) {
	st := s.state(c)
	e := st.e
	e.mu.Lock()
	defer e.mu.Unlock()
	st.removed = true
	dropEventsLocked(st)
	if !st.root {
		p := st.parent
		delete(p.children, st)
		p.deadFaults += st.faults + st.deadFaults
		p.deadMajFaults += st.majFaults + st.deadMajFaults
		return
	}
	e.shutdownLocked()
}

// state is c's memory state.
func (s *Subsys) state(c *core.Container) *cstate { return core.StateOf[*cstate](c, s) }
