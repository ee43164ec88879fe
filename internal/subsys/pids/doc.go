// Package pids is the pids subsystem (kernel/cgroup/pids.c,
// Documentation/admin-guide/cgroup-v1/pids.rst): it limits the number of
// tasks (threads, as the kernel counts them) in a container and its
// descendants.
//
// Files, none in the root: pids.max ("max" or 0..4194304), pids.current
// (the tasks of the container and of every descendant), pids.peak (the
// highest pids.current, which Linux 6.x has in v1 too) and pids.events
// ("max N", the forks refused to tasks of this container, as v1 counts them).
// The strictest ancestor wins; moving a task in may exceed a limit, as in
// the kernel.
//
// # How the limit is enforced
//
// The kernel fails an over-limit fork with EAGAIN before the child exists.
// Userspace cannot: the daemon learns of a fork from the proc connector after
// it happened, with the child already running. So the Fork hook decides as
// the kernel would (is any non-root ancestor's current+1 above its max?) and,
// if the fork would have been refused, counts it in pids.events, leaves the
// child uncharged (pids.current shows what the kernel would) and kills it
// with SIGKILL through a pidfd, after checking that the PID still names that
// task (same start time): "refused" becomes "killed about one event round
// trip after it was born". A new process is killed right in the hook (three
// non-blocking system calls and a read of /proc/PID/stat; a hand-off to
// another goroutine would cost a thread wake-up), then raised to SCHED_FIFO
// so that it dies at once rather than when a loaded CPU gets round to it
// (it cannot reach user space again). A new thread cannot be
// killed alone (SIGKILL is always for the whole thread group), so its whole
// process is killed, as it usually dies anyway when thread creation fails
// (Go's runtime throws, the JVM raises OutOfMemoryError); that decision needs
// a look at the process's threads in /proc, so the killer goroutine makes
// it, and spares the process if one of its threads may be in the root
// container (see groupKillable). docs/deviations.md has the whole story.
//
// # Locking
//
// What is hierarchy-wide (the indexes of refused and non-root tasks, the
// killer's queue, the killer itself, a worker.Worker) is in a hier, made
// by the root's Create and shared by every state of the hierarchy. max is
// guarded by the registry lock. current, peak, events and the hier's
// indexes are guarded by hier.mu, because the killer reads and updates
// them without the registry lock. Hooks take hier.mu after the registry
// lock; the killer never takes the registry lock.
//
// # What it must never do
//
// Kill a task of the root container, the daemon, or any task it cannot
// prove is the refused one (pid reuse: the start time is checked); sleep or
// wait under the registry lock (a pidfd signal never blocks; the thread
// checks run on the killer goroutine).
package pids
