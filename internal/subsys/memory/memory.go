package memory

import (
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/stopper"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
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
	Logf func(format string, a ...any)

	// procRoot is where procfs is mounted; "" is /proc. Tests change it.
	procRoot string
	// manual leaves the sampler goroutine unstarted: tests call tick.
	manual bool
	// sendKill kills process tgid, which started at start; nil is the real
	// one (a pidfd after a start-time check). Tests replace it. It runs
	// with mu held and must not block.
	sendKill func(tgid int, start uint64) error
	// clock is the time; nil is time.Now. Tests replace it.
	clock func() time.Time

	mu sync.Mutex
	// e is the state of the hierarchy the subsystem is bound to; nil when
	// it is not bound. Guarded by mu.
	e *engine
}

var (
	_ core.Subsys      = (*Subsys)(nil)
	_ core.CanAttacher = (*Subsys)(nil)
	_ core.Attacher    = (*Subsys)(nil)
	_ core.Forker      = (*Subsys)(nil)
	_ core.Exiter      = (*Subsys)(nil)
)

// cstate is one container's memory state. Every field after the immutable
// ones is guarded by Subsys.mu, because the sampler reads and updates them
// without the registry lock.
type cstate struct {
	parent *cstate // nil for the root; immutable
	root   bool    // immutable
	name   string  // for logs: the name at mkdir (renames are not followed)

	children map[*cstate]struct{}
	removed  bool

	// Settings.
	limit, soft    int64 // bytes, whole pages; unlimited for none
	swappiness     uint64
	moveCharge     uint64
	oomKillDisable bool

	// What the last sample found: this container's own processes (local)
	// and those of its whole subtree (total); usage is total's anon+file.
	local, total stats
	usage        int64
	maxUsage     int64

	failcnt uint64
	oomKill uint64 // kills here and below, as v1's memory_events
	paused  bool   // over its limit with the OOM killer disabled
	// noVictimLogged: we said that nothing here may be killed; not again
	// until that changes.
	noVictimLogged bool

	// lastJoin is when a task last came into this container or one below
	// it. A process's proportional share may have changed since (a fork
	// shares its pages): a rollup older than that is not trusted for a
	// kill.
	lastJoin time.Time
	// deferSince is when a decision here was first put off for want of
	// fresh rollups; zero if it is not.
	deferSince time.Time

	// events are the cgroup.event_control registrations (events.go).
	events []*event

	// Fault counts of the processes while they were here, and of removed
	// children (which total_ keeps, as the kernel's do).
	faults, majFaults         uint64
	deadFaults, deadMajFaults uint64
}

// stats are memory figures in bytes.
type stats struct {
	anon, file, shmem, huge, swap, locked int64
}

func (a *stats) add(b stats) {
	a.anon += b.anon
	a.file += b.file
	a.shmem += b.shmem
	a.huge += b.huge
	a.swap += b.swap
	a.locked += b.locked
}

// Name implements core.Subsys.
func (*Subsys) Name() string { return "memory" }

func (s *Subsys) logf(format string, a ...any) {
	if s.Logf != nil {
		s.Logf(format, a...)
		return
	}
	log.Printf(format, a...)
}

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
		ps := stateOf(s, p)
		s.mu.Lock()
		defer s.mu.Unlock()
		st.parent = ps
		ps.children[st] = struct{}{}
		st.swappiness = ps.swappiness
		if ps.root && s.e != nil {
			st.swappiness = s.e.sys.swappiness
		}
		st.oomKillDisable = ps.oomKillDisable
		return st, nil
	}
	pauser := s.Pauser
	if pauser == nil {
		pauser = stopper.Default()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.e = newEngine(s, st, pauser)
	if !s.manual {
		go s.e.run()
	}
	return st, nil
}

// Destroy implements core.Subsys. A removed child's event counts stay in
// its parent's total_ lines. The root's Destroy stops the sampler (without
// waiting for it) and lets every task it paused run.
func (s *Subsys) Destroy(c *core.Container) {
	st := stateOf(s, c)
	s.mu.Lock()
	defer s.mu.Unlock()
	st.removed = true
	dropEventsLocked(st)
	if !st.root {
		p := st.parent
		delete(p.children, st)
		p.deadFaults += st.faults + st.deadFaults
		p.deadMajFaults += st.majFaults + st.deadMajFaults
		return
	}
	if s.e != nil {
		s.e.shutdownLocked()
		s.e = nil
	}
}

func stateOf(s *Subsys, c *core.Container) *cstate {
	st, _ := c.State(s).(*cstate)
	if st == nil {
		panic(fmt.Sprintf("memory: container %s has no memory state", c.PathLocked()))
	}
	return st
}

// path is st's path as it was named at mkdir, for logs.
func (st *cstate) path() string {
	if st.root {
		return "/"
	}
	p := st.parent.path()
	if p == "/" {
		return "/" + st.name
	}
	return p + "/" + st.name
}

// underOOM tells whether st or an ancestor is paused: v1 marks the whole
// subtree of the memcg in OOM (mem_cgroup_mark_under_oom).
func (st *cstate) underOOM() bool {
	for x := st; x != nil; x = x.parent {
		if x.paused {
			return true
		}
	}
	return false
}

// within tells whether st is x or one of its descendants.
func (st *cstate) within(x *cstate) bool {
	for y := st; y != nil; y = y.parent {
		if y == x {
			return true
		}
	}
	return false
}

// effLimit is the strictest limit of st and its ancestors: v1's
// hierarchical_memory_limit.
func (st *cstate) effLimit() int64 {
	l := unlimited
	for x := st; x != nil; x = x.parent {
		l = min(l, x.limit)
	}
	return l
}

// Files implements core.Subsys, in the kernel's order
// (mem_cgroup_legacy_files).
func (s *Subsys) Files() []core.File {
	return []core.File{
		{Name: "usage_in_bytes", Read: s.locked(func(e *engine, st *cstate) (string, error) {
			if st.root {
				return formatBytes(e.sysUsage()), nil
			}
			return formatBytes(st.usage), nil
		})},
		{Name: "max_usage_in_bytes", Flags: core.NotSetting,
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				return formatBytes(st.maxUsage), nil
			}),
			// cgroup v1 (mem_cgroup_reset): any write resets the
			// watermark to the current usage.
			Write: s.lockedWrite(func(e *engine, st *cstate, _ string) error {
				st.maxUsage = st.usage
				if st.root {
					st.maxUsage = e.sysUsage()
				}
				return nil
			}),
		},
		{Name: "limit_in_bytes",
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				return formatBytes(st.limit), nil
			}),
			Write: s.lockedWrite(func(e *engine, st *cstate, data string) error {
				v, err := ParseLimit(data)
				if err != nil {
					return fmt.Errorf("memory.limit_in_bytes: %w", err)
				}
				if st.root {
					return fmt.Errorf("memory.limit_in_bytes: the root container has no limit: %w", syscall.EINVAL)
				}
				// cgroup v1 reclaims down to a lower limit and answers
				// EBUSY if it cannot. Userspace cannot reclaim another
				// process's memory: a limit below the usage is refused.
				if v < st.usage {
					return fmt.Errorf("memory.limit_in_bytes: %d is below the usage, %d, and nothing can be reclaimed: %w", v, st.usage, syscall.EBUSY)
				}
				st.limit = v
				e.wakeLocked()
				return nil
			}),
		},
		{Name: "soft_limit_in_bytes",
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				return formatBytes(st.soft), nil
			}),
			// Stored, also in the root, as v1 does; it only steers the
			// kernel's reclaim under global pressure, which we do not do.
			Write: s.lockedWrite(func(e *engine, st *cstate, data string) error {
				v, err := ParseLimit(data)
				if err != nil {
					return fmt.Errorf("memory.soft_limit_in_bytes: %w", err)
				}
				st.soft = v
				return nil
			}),
		},
		{Name: "failcnt", Flags: core.NotSetting,
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				return strconv.FormatUint(st.failcnt, 10) + "\n", nil
			}),
			// cgroup v1 (mem_cgroup_reset): any write resets it.
			Write: s.lockedWrite(func(e *engine, st *cstate, _ string) error {
				st.failcnt = 0
				return nil
			}),
		},
		{Name: "stat", Read: s.locked(func(e *engine, st *cstate) (string, error) {
			return e.formatStat(st), nil
		})},
		{Name: "force_empty", Flags: core.NotSetting,
			// cgroup v1 reclaims what it can and always succeeds
			// (mem_cgroup_force_empty), except in the root. There is
			// nothing userspace can reclaim: a successful no-op.
			Write: s.lockedWrite(func(e *engine, st *cstate, _ string) error {
				if st.root {
					return fmt.Errorf("memory.force_empty: %w", syscall.EINVAL)
				}
				return nil
			}),
		},
		{Name: "use_hierarchy",
			Read: func(*core.Container) (string, error) { return "1\n", nil },
			Write: func(_ *core.Container, _ core.Caller, data string) error {
				v, err := core.Kstrtoull(data)
				if err != nil {
					return fmt.Errorf("memory.use_hierarchy: %w", err)
				}
				// Linux 6.x: non-hierarchical mode is gone; only 1.
				if v != 1 {
					return fmt.Errorf("memory.use_hierarchy: only 1 is supported: %w", syscall.EINVAL)
				}
				return nil
			},
		},
		{Name: "swappiness",
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				if st.root {
					return strconv.FormatUint(e.sys.swappiness, 10) + "\n", nil
				}
				return strconv.FormatUint(st.swappiness, 10) + "\n", nil
			}),
			Write: s.lockedWrite(func(e *engine, st *cstate, data string) error {
				v, err := core.Kstrtoull(data)
				if err != nil {
					return fmt.Errorf("memory.swappiness: %w", err)
				}
				if v > 200 {
					return fmt.Errorf("memory.swappiness: %d is not in 0..200: %w", v, syscall.EINVAL)
				}
				if st.root {
					// cgroup v1 sets the vm.swappiness sysctl here. The
					// daemon does not change the machine's sysctls.
					return fmt.Errorf("memory.swappiness: the root's is the vm.swappiness sysctl, which containerfs does not change: %w", syscall.EPERM)
				}
				st.swappiness = v
				return nil
			}),
		},
		{Name: "move_charge_at_immigrate",
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				return strconv.FormatUint(st.moveCharge, 10) + "\n", nil
			}),
			Write: s.lockedWrite(func(e *engine, st *cstate, data string) error {
				v, err := core.Kstrtoull(data)
				if err != nil {
					return fmt.Errorf("memory.move_charge_at_immigrate: %w", err)
				}
				// Bit 0 anon, bit 1 file (MOVE_MASK).
				if v&^3 != 0 {
					return fmt.Errorf("memory.move_charge_at_immigrate: %d has bits other than 1 and 2: %w", v, syscall.EINVAL)
				}
				st.moveCharge = v
				return nil
			}),
		},
		{Name: "oom_control", Flags: core.NotSetting,
			Read: s.locked(func(e *engine, st *cstate) (string, error) {
				return fmt.Sprintf("oom_kill_disable %d\nunder_oom %d\noom_kill %d\n",
					b2i(st.oomKillDisable), b2i(st.underOOM()), st.oomKill), nil
			}),
			Write: s.lockedWrite(func(e *engine, st *cstate, data string) error {
				v, err := core.Kstrtoull(data)
				if err != nil {
					return fmt.Errorf("memory.oom_control: %w", err)
				}
				// cgroup v1: not in the root, and only 0 or 1.
				if st.root || v > 1 {
					return fmt.Errorf("memory.oom_control: %q: %w", data, syscall.EINVAL)
				}
				st.oomKillDisable = v == 1
				// Re-enabling the killer wakes v1's OOM waiters, which
				// then kill: the sampler looks again at once.
				e.wakeLocked()
				return nil
			}),
		},
		s.eventControlFile(),
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// locked makes a Read handler that runs with s.mu held. An unbound
// subsystem (no engine) has no files to serve, but a file may be read in
// the instant of an unmount: ENODEV then.
func (s *Subsys) locked(f func(e *engine, st *cstate) (string, error)) func(*core.Container) (string, error) {
	return func(c *core.Container) (string, error) {
		st := stateOf(s, c)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.e == nil {
			return "", syscall.ENODEV
		}
		return f(s.e, st)
	}
}

func (s *Subsys) lockedWrite(f func(e *engine, st *cstate, data string) error) func(*core.Container, core.Caller, string) error {
	return func(c *core.Container, _ core.Caller, data string) error {
		st := stateOf(s, c)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.e == nil {
			return syscall.ENODEV
		}
		return f(s.e, st, data)
	}
}

// Fork implements core.Forker: task t was born in c (never a root). A task
// born in a paused container is paused too; it may have run for a moment
// (userspace learns of a fork after it happened).
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	st := stateOf(s, c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e == nil {
		return
	}
	s.e.joinLocked(t, st, t.Start, true)
}

// Exit implements core.Exiter.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e == nil {
		return
	}
	s.e.leaveLocked(t, true)
}

// CanAttach implements core.CanAttacher. cgroup v1 refuses a move with
// ENOMEM only when the destination has move_charge_at_immigrate set and
// cannot take the moving process's charge (mem_cgroup_can_attach). We do
// the same for a thread group leader (the mm owner, whose memory moves),
// with its resident memory from /proc/PID/statm (a read that takes no
// lock of the process and does not sleep).
func (s *Subsys) CanAttach(ts *core.TaskSet) error {
	dst := stateOf(s, ts.Dst)
	if dst.root {
		return nil
	}
	srcs := make([]*cstate, len(ts.Src))
	for i, c := range ts.Src {
		srcs[i] = stateOf(s, c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e == nil || dst.moveCharge == 0 {
		return nil
	}
	for i, t := range ts.Tasks {
		if t.TID != t.TGID {
			continue
		}
		b, err := os.ReadFile(s.proc() + "/" + strconv.Itoa(t.TGID) + "/statm")
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
	dst := stateOf(s, ts.Dst)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.e
	if e == nil {
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

// kill sends SIGKILL to process tgid if it is still the one that started
// at start: a pidfd is opened first and the start time checked second, so
// a PID reused after the check is never hit. Nothing here blocks.
func (s *Subsys) kill(tgid int, start uint64) error {
	if s.sendKill != nil {
		return s.sendKill(tgid, start)
	}
	return pidfdKill(s.proc(), tgid, start)
}

func pidfdKill(root string, tgid int, start uint64) error {
	if tgid == os.Getpid() {
		return fmt.Errorf("the daemon: %w", syscall.EPERM)
	}
	fd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return fmt.Errorf("process %d: %w", tgid, err)
	}
	defer unix.Close(fd)
	got, err := readStart(root, tgid)
	if err != nil || !proc.SameStart(start, got) {
		return fmt.Errorf("process %d is gone: %w", tgid, syscall.ESRCH)
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// nowTicks is the time in clock ticks since boot, the unit of start times.
func (e *engine) nowTicks() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano() / (int64(time.Second) / clockTicks))
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100
