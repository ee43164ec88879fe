package memory

// The memory subsystem's control files, in the kernel's order
// (mm/memcontrol-v1.c, mem_cgroup_legacy_files), and their handlers.

import (
	"fmt"
	"strconv"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

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
