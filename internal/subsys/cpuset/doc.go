// Package cpuset is the cpuset subsystem (cgroup v1's cpuset controller):
// it confines the tasks of each container to a set of CPUs and memory
// nodes.
//
// # Files
//
// cpus, mems (list syntax "0-3,7"; "" clears), effective_cpus,
// effective_mems, the flags cpu_exclusive, mem_exclusive, mem_hardwall,
// memory_migrate, memory_spread_page, memory_spread_slab,
// sched_load_balance, sched_relax_domain_level, memory_pressure and, in the
// root only, memory_pressure_enabled. Writes are checked as the kernel's
// validate_change checks them and fail with its errnos (validate.go);
// nothing changes when a write fails. Lists are parsed by
// internal/subsys/cpulist, exactly as bitmap_parselist parses them.
//
// # Enforcement
//
// CPUs are enforced with sched_setaffinity(2) on every thread: at once,
// with the registry lock held, when a task is attached, when a new task is
// seen in a cpuset (Fork), and when a cpuset's cpus change; a task moved
// back to the root gets every online CPU back. Since a task may widen its
// own affinity with sched_setaffinity and userspace hears of no such call,
// an enforcer goroutine per hierarchy (enforce.go) reads every tracked
// task's affinity each Interval (100 ms) and narrows what was widened, as
// the kernel would have: the task keeps what it asked for within its
// cpuset. The tid→cpuset map lives under the enforcer's own lock, updated
// by the hooks; the goroutine never takes the registry lock.
//
// Memory nodes are validated but can be enforced only in part: with
// memory_migrate set, a process's pages are moved with migrate_pages(2)
// when it joins the cpuset or when mems change (on the goroutine, since it
// is slow). The nodes future allocations come from cannot be imposed on
// another process from outside (set_mempolicy and mbind act on the
// caller), nor can spreading or hardwalling; docs/deviations.md says
// what that means.
//
// # What it must never do
//
// It never touches a task of a hierarchy's root container (except to give
// a task moved back there its CPUs back), never the daemon (which the core
// keeps in the roots), and never a TID whose start time shows it is no
// longer the task it tracked: between a task's exit and the exit event a
// TID can be reused by someone else's process.
package cpuset
