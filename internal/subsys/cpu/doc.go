// Package cpu is the cpu subsystem (cgroup v1's CFS group scheduling and
// bandwidth control), enforced from userspace: sibling containers share the
// CPU in proportion to their cpu.shares whatever their numbers of tasks or
// sessions, and cpu.cfs_quota_us caps a container's CPU time per
// cpu.cfs_period_us.
//
// # Files
//
// shares (default 1024, clamped to 2..262144), cfs_period_us (1000..1000000),
// cfs_quota_us (-1, or at least 1000, with cgroup v1's hierarchy check on
// quota/period ratios), stat (nr_periods, nr_throttled, throttled_time, and
// this kernel's nr_bursts and burst_time, always 0), and one extension,
// effective_percent (read-only): the share of the machine the container is
// entitled to when everything contends, the product of its shares' fraction
// among its siblings up the tree, capped at each level by quota/period over
// the number of CPUs. Writes are parsed as the kernel parses them (kstrtoull
// and kstrtoll: one trailing newline, no other whitespace; ERANGE on
// overflow) and fail with its errnos; in the root nothing is writable
// (EINVAL). TestBenchKernelParity compares every errno and value with the
// kernel's on this machine.
//
// # Enforcement
//
// The kernel cannot be asked: nice values count only within a session
// (autogroup), and changing a session's autogroup nice or any sysctl would
// touch what is not ours. So containerfs decides which tasks may run, and
// stops the others. The decision logic (package sched) is pure: given each
// task's CPU time and run-queue wait since the previous tick (from
// /proc/TID/schedstat) and its CPU affinity, it keeps for every container a
// virtual time (CPU time × 1024 / shares) and, among the siblings that want
// CPU, holds a container that has run ahead of a sibling by more than a
// slack, until the sibling catches up: a group-level CFS. A hold is made
// only if the siblings behind have enough CPU-bound tasks to use the CPUs
// freed, so an idle or lightly loaded sibling's share goes to the others
// and a single task per container on several CPUs is never held. When they
// can use only some of them (3 CPU-bound tasks beside 1 on 2 CPUs), the
// container ahead is held partially instead: it runs only as many tasks
// as the CPUs left free, and which of its CPU-bound tasks run rotates by
// the CPU time each used, so that they stay fair among themselves (a
// container with children shares its running tasks among them by their
// virtual times; none of its tasks may be pinned apart). Quotas are
// per period: a container whose subtree used its quota is held until the
// period ends, and an overrun is charged to the next period. Ticks are
// spaced by what needs watching next (a lead reaching the slack, a quota
// running out, a period ending) and, with many tasks, further apart so that
// reading their counters stays cheap.
//
// The enforcer (enforce.go) runs that logic on its own worker.Worker,
// started with the hierarchy's root (whose state owns it) and stopped with
// it; the hooks (Fork, Exit, Attach, file writes) only update its model
// under its lock. Stops go
// through the process-wide stopper (internal/stopper), for the reason
// "cpu": PTRACE_SEIZE and PTRACE_INTERRUPT, so that a throttled task does
// not look stopped to its parent (no "Stopped" job in a shell) and SIGCONT
// does not let it escape; the freezer shares the same Stopper, and a task
// runs only when neither holds it.
//
// CONTAINERFS_CPU_DEBUG=1 in the daemon's environment logs the enforcer's
// counters every 100 ticks; =2 logs every container's state at every tick.
//
// # What it must never do
//
// It never stops a task of a hierarchy's root container (tasks moved back
// there are let go at once), never the daemon, never a TID whose start time
// shows it is no longer the task it tracked. It changes no global setting:
// no sysctl, no autogroup, no nice value, no affinity. docs/deviations.md
// says where it differs from the kernel's CFS.
package cpu
