// Package memory is the memory subsystem (cgroup v1's memcg:
// Documentation/admin-guide/cgroup-v1/memory.rst, mm/memcontrol-v1.c): it
// reports the memory of each container's processes and enforces
// memory.limit_in_bytes, hierarchically, with v1's OOM killer or, when
// memory.oom_control has oom_kill_disable set, by pausing the container.
//
// Files, in the kernel's order, all of them also in the root:
// usage_in_bytes, max_usage_in_bytes (any write resets it to the usage),
// limit_in_bytes (memparse suffixes, -1, rounded down to a page; EINVAL in
// the root; EBUSY below the usage), soft_limit_in_bytes (stored only),
// failcnt (any write resets it), stat (v1's keys and their total_
// versions), force_empty (write-only; a no-op, EINVAL in the root),
// use_hierarchy (always 1), swappiness (0..200, inherited; the root's is
// vm.swappiness, which we never change: EPERM), move_charge_at_immigrate
// (0..3) and oom_control (oom_kill_disable 0/1, inherited; not in the
// root); and, without the prefix, cgroup.event_control (eventfd
// notifications of usage thresholds and OOM, events.go).
// docs/deviations.md has every difference from the kernel.
//
// # What is counted
//
// The kernel charges each page to the memcg of the task that first touched
// it, and the charge stays there. Userspace cannot see charges, only what
// each process maps now. So a container's usage here is the memory its
// processes map: for each process (a thread group: threads share one mm,
// and v1 charges the mm's owner, the leader), the proportional set size
// (Pss, from /proc/PID/smaps_rollup: a page mapped by n processes counts
// 1/n in each, so pages shared within a container count once), anon plus
// file, summed over the container's processes and, hierarchically, over
// its descendants. Page cache that no process maps, kernel memory, and
// pages a process left behind in its old container are not seen; its
// pages move with it when it moves.
//
// # How it is sampled
//
// smaps_rollup walks the page tables (1.4 ms for 100 MB, 6 ms for 1 GB
// here), so it is read rarely, within a CPU budget; /proc/PID/statm
// (resident and file pages, a 5 µs pread of a file kept open) is read
// often, and a process's estimate is its last Pss corrected by how its
// statm changed since. One sampler goroutine per bound hierarchy does all
// /proc reading, without the registry lock: a round reads the processes of
// containers that have a limit (or an ancestor with one) as often as the
// headroom requires (the time a 4 GB/s allocator needs to reach the limit,
// between 10 ms and 1 s); every second it reads every process, and the
// machine's figures for the root (/proc/vmstat, /proc/meminfo).
//
// # How the limit is enforced
//
// The kernel fails the charge of the page that would cross the limit,
// reclaims, and invokes the OOM killer. We see the crossing after it
// happened, at the next round. Before acting on a container over its limit
// the sampler re-reads the rollups it does not trust (older than a second,
// or than the last task to join), so that shared pages never cause a kill.
// Then, as v1 does: failcnt counts it; with the OOM killer enabled the
// process with the highest oom_badness (resident + swap, plus
// oom_score_adj thousandths of the limit; never -1000) in the container's
// subtree is killed with SIGKILL through a pidfd after a start-time check,
// counted in oom_kill of its container and every ancestor, and no other is
// chosen while it dies; with oom_kill_disable set, every task of the
// subtree is paused (under_oom 1) through the shared Stopper (ptrace
// stops, invisible to the parent and immune to SIGCONT) until the limit is
// raised, the usage drops, or the OOM killer is re-enabled (then the
// victim is killed first, and the rest run).
//
// # Locking
//
// The hierarchy's state (the engine: the process index and the sampler) is
// owned by the root container's state, and every container's state points
// to it. Settings, per-container figures and the process index are guarded
// by the engine's mu, taken after the registry lock by hooks and file
// handlers (cgroup.event_control, an unlocked write, takes the registry
// lock first with Container.WithLock), and by the sampler without the
// registry lock, which it never takes. The sampler (a worker.Worker) reads
// /proc with mu released, and signals (a pidfd kill,
// or asking the Stopper, which only records the wish) with it held, so
// that a process cannot be moved into the root container between the
// check and the kill.
//
// # What it must never do
//
// Kill or pause a task of a root container or the daemon: a process is
// killed only if every one of its threads is known to be outside the root
// container (or was born after its leader came in), and only threads in
// non-root containers are paused. Touch the kernel's memory hierarchy or
// any sysctl. Block under the registry lock: hooks and handlers only
// update state, wake the sampler and ask the Stopper; the one /proc read
// under it is CanAttach's statm, which takes no lock of the process.
package memory
