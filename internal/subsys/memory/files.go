package memory

// The memory subsystem's control files, in the kernel's order
// (mm/memcontrol-v1.c, mem_cgroup_legacy_files), and their handlers.

import (
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// Files implements core.Subsys, in the kernel's order
// (mem_cgroup_legacy_files), with the kernel's handler types: the counters
// and limits are read_u64 (limit_in_bytes and soft_limit_in_bytes write a
// string, page_counter_memparse; max_usage_in_bytes and failcnt a string
// that mem_cgroup_reset ignores), use_hierarchy, swappiness and
// move_charge_at_immigrate are read_u64/write_u64, oom_control is seq_show
// with write_u64, stat is seq_show and force_empty a string write.
func (s *Subsys) Files() []core.File {
	return []core.File{
		{Name: "usage_in_bytes", ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
			return uint64(e.usageOf(st))
		})},
		{Name: "max_usage_in_bytes", Flags: core.NotSetting,
			ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
				return uint64(st.maxUsage)
			}),
			// cgroup v1 (mem_cgroup_reset): any write resets the
			// watermark to the current usage.
			Write: s.lockedWrite(func(e *engine, st *cstate, _ string) error {
				st.maxUsage = e.usageOf(st)
				return nil
			}),
		},
		{Name: "limit_in_bytes",
			ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
				return uint64(st.limit)
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
			ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
				return uint64(st.soft)
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
			ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
				return st.failcnt
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
			ReadU64: func(*core.Container) uint64 { return 1 },
			// mem_cgroup_hierarchy_write: non-hierarchical mode is gone
			// (Linux 6.x); only 1.
			WriteU64: func(_ *core.Container, _ core.Caller, v uint64) error {
				if v != 1 {
					return fmt.Errorf("memory.use_hierarchy: only 1 is supported: %w", syscall.EINVAL)
				}
				return nil
			},
		},
		{Name: "swappiness",
			ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
				if st.root {
					return e.sys.swappiness
				}
				return st.swappiness
			}),
			WriteU64: s.lockedWriteU64(func(e *engine, st *cstate, v uint64) error {
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
			ReadU64: s.lockedU64(func(e *engine, st *cstate) uint64 {
				return st.moveCharge
			}),
			WriteU64: s.lockedWriteU64(func(e *engine, st *cstate, v uint64) error {
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
			WriteU64: s.lockedWriteU64(func(e *engine, st *cstate, v uint64) error {
				// mem_cgroup_oom_control_write: not in the root, and
				// only 0 or 1.
				if st.root || v > 1 {
					return fmt.Errorf("memory.oom_control: %d: %w", v, syscall.EINVAL)
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

// locked makes a Read handler that runs with the engine's mu held. After
// the hierarchy is unmounted (the engine shut), a file may still be read
// in the instant before it goes: ENODEV then.
func (s *Subsys) locked(f func(e *engine, st *cstate) (string, error)) func(*core.Container) (string, error) {
	return func(c *core.Container) (string, error) {
		st := s.state(c)
		e := st.e
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.shut {
			return "", syscall.ENODEV
		}
		return f(e, st)
	}
}

// lockedU64 makes a ReadU64 handler that runs with the engine's mu held.
// It has no error to answer: after the engine is shut it reads the last
// figures.
func (s *Subsys) lockedU64(f func(e *engine, st *cstate) uint64) func(*core.Container) uint64 {
	return func(c *core.Container) uint64 {
		st := s.state(c)
		e := st.e
		e.mu.Lock()
		defer e.mu.Unlock()
		return f(e, st)
	}
}

// lockedWrite makes a Write handler that runs with the engine's mu held.
func (s *Subsys) lockedWrite(f func(e *engine, st *cstate, data string) error) func(*core.Container, core.Caller, string) error {
	return func(c *core.Container, _ core.Caller, data string) error {
		st := s.state(c)
		e := st.e
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.shut {
			return syscall.ENODEV
		}
		return f(e, st, data)
	}
}

// lockedWriteU64 makes a WriteU64 handler that runs with the engine's mu
// held.
func (s *Subsys) lockedWriteU64(f func(e *engine, st *cstate, v uint64) error) func(*core.Container, core.Caller, uint64) error {
	return func(c *core.Container, _ core.Caller, v uint64) error {
		st := s.state(c)
		e := st.e
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.shut {
			return syscall.ENODEV
		}
		return f(e, st, v)
	}
}
