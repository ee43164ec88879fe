// Package freezer is the freezer subsystem (SPEC section 9): writing FROZEN
// to freezer.state stops every task of a container and of its descendants,
// THAWED lets them run again, unless an ancestor is still frozen.
//
// Files (none in the root): freezer.state (THAWED, FREEZING or FROZEN, the
// effective state combining the container's own and its ancestors'; only
// FROZEN and THAWED may be written, anything else is EINVAL),
// freezer.self_freezing and freezer.parent_freezing (read-only, 0 or 1).
//
// # How tasks are stopped
//
// Not with SIGSTOP: the cgroup v1 documentation rejects it because the task
// and its parent see it (a shell prints "Stopped", a debugger is told) and
// any SIGCONT undoes it. The freezer stops a task the way a debugger's
// PTRACE_SEIZE + PTRACE_INTERRUPT does: the task sits in a ptrace-stop
// (state "t"); its parent sees nothing through waitpid(WUNTRACED), SIGCONT
// does not resume it, and PTRACE_DETACH lets it go (FIELD-NOTES: about 125
// µs per task).
//
// ptrace binds a tracee to the thread that seized it, so one goroutine, the
// tracer, locked to its OS thread (runtime.LockOSThread), owns every tracee.
// Hooks and file handlers never call ptrace: under the registry lock they
// only record which tasks must be frozen (the "want" set) and wake the
// tracer, which seizes, interrupts, reaps and detaches, and publishes which
// tasks it has seen stopped. freezer.state reads FREEZING until every task of
// the subtree is in that set, then FROZEN, as the kernel's does.
//
// While a task is frozen, signals sent to it stay pending in the kernel and
// are delivered when it is detached, as the kernel freezer delivers them on
// thaw; SIGKILL is the exception (see docs/deviations.md). A signal
// the task was about to take when it stopped (a signal-delivery-stop) is
// held and re-injected at detach. A traced task that exits is reaped by the
// tracer (waitpid with __WALL), so its real parent gets its exit status.
// A task that cannot be seized because it already has a tracer (strace,
// gdb) is stopped with SIGSTOP instead, only if every thread of its process
// is to be frozen, and resumed with SIGCONT; that fallback is visible, as
// SIGSTOP always is, and a stray SIGCONT resumes the task until the tracer's
// next look (within 250 ms), which stops it again.
//
// # What it must never do
//
// Stop the daemon or any task of a root container; block under the
// registry lock; leave a task traced when it is thawed, or unreaped when it
// exits. If the tracer's thread dies (the daemon exits or crashes), the
// kernel detaches every tracee and they run again: the failure mode is
// "thawed", never "stuck".
package freezer
