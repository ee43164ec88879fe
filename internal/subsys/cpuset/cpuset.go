package cpuset

import (
	"fmt"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/subsys/cpulist"
)

// The subsystem: its state, its hooks and its control files (the kernel's
// cpuset1_files in kernel/cgroup/cpuset-v1.c).

// Subsys is the cpuset subsystem. The zero value enforces on the running
// kernel; tests set Kernel and Interval.
type Subsys struct {
	// Kernel is how enforcement reaches the machine; nil is the running
	// kernel.
	Kernel Kernel
	// Interval is the affinity checker's period; 0 is DefaultInterval.
	Interval time.Duration
	// Logf reports what enforcement could not do; nil is log.Printf.
	Logf core.Logf
}

var (
	_ core.Subsys         = (*Subsys)(nil)
	_ core.CanAttacher    = (*Subsys)(nil)
	_ core.Attacher       = (*Subsys)(nil)
	_ core.Forker         = (*Subsys)(nil)
	_ core.Exiter         = (*Subsys)(nil)
	_ core.AttachCanceler = (*Subsys)(nil)
)

// flag is one of a cpuset's 0/1 settings (the kernel's cpuset_flagbits_t).
type flag uint16

const (
	cpuExclusive flag = 1 << iota
	memExclusive
	memHardwall
	memoryMigrate
	schedLoadBalance
	spreadPage
	spreadSlab
)

// listWriteMax is the longest write to cpus or mems the core hands to
// writeList: 100 + 6 * 8192, the bound for the largest NR_CPUS and
// MAX_NUMNODES (CONFIG_NODES_SHIFT 10 gives 1024 nodes; NR_CPUS is at most
// 8192).
const listWriteMax = 100 + 6*8192

// maxRelaxLevel bounds sched_relax_domain_level. The kernel allows
// sched_domain_level_max+1, which depends on the topology and is not
// visible from userspace; 5 is the highest level cpusets.rst documents
// ("search system wide").
const maxRelaxLevel = 5

// state is one cpuset. Every field is guarded by the registry lock.
type state struct {
	e    *enforcer // the hierarchy's, shared by all its cpusets
	root bool
	// cpus and mems are a child's own; a root's follow the machine
	// (e.topology) and these stay empty.
	cpus, mems      cpulist.Set
	flags           flag
	relax           int64 // sched_relax_domain_level
	pressureEnabled bool  // memory_pressure_enabled; root only
}

func (st *state) has(f flag) bool { return st.flags&f != 0 }

// cpusLocked is the cpuset's cpus (and, in v1, its effective_cpus).
func (st *state) cpusLocked() cpulist.Set {
	if st.root {
		return st.e.topology().CPUs
	}
	return st.cpus
}

// memsLocked is the cpuset's mems (and effective_mems).
func (st *state) memsLocked() cpulist.Set {
	if st.root {
		return st.e.topology().Mems
	}
	return st.mems
}

// Name implements core.Subsys.
func (*Subsys) Name() string { return "cpuset" }

func (s *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, s) }

// Create implements core.Subsys. The root reads the machine's topology and
// starts the hierarchy's enforcer. A child starts with no CPUs and no
// nodes, with sched_load_balance set and the parent's spread flags
// (cpuset1_online_css); with cgroup.clone_children set it copies the
// parent's cpus and mems, unless a sibling is exclusive (then it stays
// empty, as the kernel does).
func (s *Subsys) Create(c *core.Container) (any, error) {
	if c.IsRoot() {
		k := s.Kernel
		if k == nil {
			k = newLinuxKernel()
		}
		topo, err := k.Topology()
		if err != nil {
			return nil, fmt.Errorf("cpuset: reading the CPUs and nodes online: %w", err)
		}
		interval := s.Interval
		if interval <= 0 {
			interval = DefaultInterval
		}
		e := newEnforcer(k, topo, interval, s.Logf)
		e.start()
		// The top cpuset is exclusive and balanced (top_cpuset.flags).
		return &state{e: e, root: true, flags: cpuExclusive | memExclusive | schedLoadBalance, relax: -1}, nil
	}
	parent := c.Parent()
	p := s.state(parent)
	st := &state{e: p.e, flags: schedLoadBalance | p.flags&(spreadPage|spreadSlab), relax: -1}
	if parent.CloneChildrenLocked() {
		clone := true
		for _, sib := range parent.ChildrenLocked() {
			if sib != c && s.state(sib).has(cpuExclusive|memExclusive) {
				clone = false
			}
		}
		if clone {
			st.cpus, st.mems = p.cpusLocked(), p.memsLocked()
		}
	}
	return st, nil
}

// Destroy implements core.Subsys. A root's destruction stops the
// hierarchy's enforcer; it tracks no task by then, since every task is in
// the root when a hierarchy is torn down.
func (s *Subsys) Destroy(c *core.Container) {
	if st := s.state(c); st.root {
		st.e.close()
	}
}

// CanAttach implements core.CanAttacher: cgroup v1 refuses to attach to a
// cpuset with no CPUs or no memory nodes (ENOSPC). A root always has both.
func (s *Subsys) CanAttach(ts *core.TaskSet) error {
	st := s.state(ts.Dst)
	if st.root {
		return nil
	}
	if st.cpus.IsEmpty() || st.mems.IsEmpty() {
		return fmt.Errorf("cpuset %s has no CPUs or no memory nodes: %w", ts.Dst.PathLocked(), syscall.ENOSPC)
	}
	return nil
}

// CancelAttach implements core.AttachCanceler. CanAttach prepares nothing
// (the registry lock keeps the cpuset from being emptied meanwhile, where
// the kernel needs attach_in_progress), so there is nothing to undo.
func (s *Subsys) CancelAttach(*core.TaskSet) {}

// Attach implements core.Attacher: every moved thread gets its new
// cpuset's CPUs at once, as cpuset_attach does; one moved back to the root
// gets every online CPU back. With memory_migrate set on the destination,
// a moved thread-group leader's pages follow it to the new nodes (on the
// enforcer's goroutine: migration is slow).
func (s *Subsys) Attach(ts *core.TaskSet) {
	dst := s.state(ts.Dst)
	dstCPUs, dstMems := dst.cpusLocked(), dst.memsLocked()
	for i, t := range ts.Tasks {
		src := s.state(ts.Src[i])
		if dst.root {
			dst.e.release(t.TID, t.Start)
		} else {
			ref := dstCPUs
			if src.root {
				// Coming from the root, a mask narrower than every
				// online CPU is the task's own choice.
				ref = src.cpusLocked()
			}
			dst.e.place(t.TID, t.Start, dstCPUs, ref)
		}
		if dst.has(memoryMigrate) && t.TID == t.TGID {
			dst.e.queueMigration(t.TGID, src.memsLocked(), dstMems)
		}
	}
}

// Fork implements core.Forker: a new thread or process in a cpuset is
// confined to its CPUs. Userspace learns of the fork after it happened,
// but the child inherited its parent's mask, which was already confined,
// unless the parent moved in or the cpuset changed meanwhile; this puts
// that right, and starts tracking the child for the checker.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	st := s.state(c)
	if st.root {
		return // never enforce on a root's tasks
	}
	st.e.place(t.TID, t.Start, st.cpus, st.cpus)
}

// Exit implements core.Exiter.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	s.state(c).e.forget(t.TID, t.Start)
}

// Files implements core.Subsys: cgroup v1's cpuset1_files, in its order.
func (s *Subsys) Files() []core.File {
	return []core.File{
		// Their max_write_len depends on the machine (100 + 6 * NR_CPUS or
		// MAX_NUMNODES): the core lets up to listWriteMax through and
		// writeList answers E2BIG beyond the machine's bound.
		{Name: "cpus", MaxWrite: listWriteMax, Read: s.readList(false), Write: s.writeList(false)},
		{Name: "mems", MaxWrite: listWriteMax, Read: s.readList(true), Write: s.writeList(true)},
		{Name: "effective_cpus", Read: s.readList(false)},
		{Name: "effective_mems", Read: s.readList(true)},
		s.flagFile("cpu_exclusive", cpuExclusive),
		s.flagFile("mem_exclusive", memExclusive),
		s.flagFile("mem_hardwall", memHardwall),
		s.flagFile("sched_load_balance", schedLoadBalance),
		{Name: "sched_relax_domain_level", ReadS64: s.readRelax, WriteS64: s.writeRelax},
		s.flagFile("memory_migrate", memoryMigrate),
		// memory_pressure is the rate of direct reclaim by the cpuset's
		// tasks. Userspace cannot see direct reclaim per task, so it
		// stays 0 (docs/deviations.md).
		{Name: "memory_pressure", ReadU64: func(*core.Container) uint64 { return 0 }},
		s.flagFile("memory_spread_page", spreadPage),
		s.flagFile("memory_spread_slab", spreadSlab),
		// cpuset_write_u64: cpuset_memory_pressure_enabled = !!val. The
		// kernel's is one global; ours is the hierarchy's, in its root.
		{Name: "memory_pressure_enabled", Flags: core.OnlyOnRoot,
			ReadU64: func(c *core.Container) uint64 { return b2u(s.state(c).pressureEnabled) },
			WriteU64: func(c *core.Container, _ core.Caller, v uint64) error {
				s.state(c).pressureEnabled = v != 0
				return nil
			},
		},
	}
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// readList prints cpus, mems or their effective_ forms, which in v1 are
// the same sets (a child's are a subset of its parent's by rule).
func (s *Subsys) readList(mems bool) func(*core.Container) (string, error) {
	return func(c *core.Container) (string, error) {
		st := s.state(c)
		if mems {
			return st.memsLocked().String() + "\n", nil
		}
		return st.cpusLocked().String() + "\n", nil
	}
}

// writeList is cpuset_write_resmask for cpus or mems: update_cpumask and
// update_nodemask.
func (s *Subsys) writeList(mems bool) func(*core.Container, core.Caller, string) error {
	name, what := "cpus", "CPUs"
	if mems {
		name, what = "mems", "memory nodes"
	}
	return func(c *core.Container, _ core.Caller, data string) error {
		st := s.state(c)
		// The top cpuset follows the machine: its lists are read-only.
		if st.root {
			return fmt.Errorf("%s of the root cpuset is read-only: %w", name, syscall.EACCES)
		}
		topo := st.e.topology()
		nbits, online, limit := topo.NrCPUIDs, topo.CPUs, 100+6*topo.NrCPUs
		if mems {
			nbits, online, limit = topo.MaxNodes, topo.Mems, 100+6*topo.MaxNodes
		}
		// cftype max_write_len: kernfs refuses longer writes.
		if len(data) > limit {
			return fmt.Errorf("%s: a write of %d bytes is longer than %d: %w", name, len(data), limit, syscall.E2BIG)
		}
		buf := core.Strstrip(data) // cpuset_write_resmask strstrips
		var set cpulist.Set
		if buf != "" {
			var err error
			if set, err = cpulist.Parse(buf, nbits); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if !set.SubsetOf(online) {
				return fmt.Errorf("%s %q: %s %s are not online: %w", name, buf, what,
					complement(online, set), syscall.EINVAL)
			}
		}
		old := st.cpus
		if mems {
			old = st.mems
		}
		if set.Equal(old) {
			return nil // nothing to do, and nothing validated: as the kernel
		}
		trial := *st
		if mems {
			trial.mems = set
		} else {
			trial.cpus = set
		}
		if err := s.validateLocked(c, st, &trial); err != nil {
			return fmt.Errorf("%s %q: %w", name, buf, err)
		}
		if mems {
			st.mems = set
			if st.has(memoryMigrate) {
				s.migrateTasksLocked(c, old, set)
			}
			return nil
		}
		st.cpus = set
		s.applyCPUsLocked(c)
		return nil
	}
}

// complement is the members of set missing from online.
func complement(online, set cpulist.Set) cpulist.Set {
	var missing []int
	for _, i := range set.List() {
		if !online.Has(i) {
			missing = append(missing, i)
		}
	}
	return cpulist.Of(missing...)
}

// applyCPUsLocked gives every task of c's subtree its cpuset's CPUs, as
// update_cpumasks_hier does. In v1 only c's own tasks can change (each
// descendant's cpus are its own and a subset of c's, by rule), so the
// others cost a map lookup and no system call.
func (s *Subsys) applyCPUsLocked(c *core.Container) {
	st := s.state(c)
	for _, t := range c.TasksLocked() {
		st.e.setCPUs(t.TID, t.Start, st.cpus)
	}
	for _, ch := range c.ChildrenLocked() {
		s.applyCPUsLocked(ch)
	}
}

// migrateTasksLocked queues memory_migrate for each process of c, as
// cpuset_update_tasks_nodemask does for the tasks of a cpuset whose mems
// changed.
func (s *Subsys) migrateTasksLocked(c *core.Container, from, to cpulist.Set) {
	st := s.state(c)
	seen := map[int]bool{}
	for _, t := range c.TasksLocked() {
		if !seen[t.TGID] {
			seen[t.TGID] = true
			st.e.queueMigration(t.TGID, from, to)
		}
	}
}

// flagFile is a 0/1 flag: cpuset_read_u64, and cpuset_write_u64 →
// cpuset_update_flag, which takes the written u64 as an int turning_on:
// only its low 32 bits count, so 0x100000000 turns the flag off, as in the
// kernel.
func (s *Subsys) flagFile(name string, f flag) core.File {
	return core.File{
		Name:    name,
		ReadU64: func(c *core.Container) uint64 { return b2u(s.state(c).has(f)) },
		WriteU64: func(c *core.Container, _ core.Caller, v uint64) error {
			st := s.state(c)
			trial := *st
			if turningOn := int32(v); turningOn != 0 {
				trial.flags |= f
			} else {
				trial.flags &^= f
			}
			// cpuset_update_flag validates even when nothing changes.
			if err := s.validateLocked(c, st, &trial); err != nil {
				return fmt.Errorf("%s %d: %w", name, v, err)
			}
			st.flags = trial.flags
			return nil
		},
	}
}

// readRelax is cpuset_read_s64.
func (s *Subsys) readRelax(c *core.Container) int64 { return s.state(c).relax }

// writeRelax is cpuset_write_s64 → update_relax_domain_level: -1 (the
// system default) up to the highest scheduling-domain level, else EINVAL.
func (s *Subsys) writeRelax(c *core.Container, _ core.Caller, v int64) error {
	if v < -1 || v > maxRelaxLevel {
		return fmt.Errorf("sched_relax_domain_level %d: not in -1..%d: %w", v, maxRelaxLevel, syscall.EINVAL)
	}
	s.state(c).relax = v
	return nil
}
