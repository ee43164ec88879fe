// Package freezer is the freezer subsystem (kernel/cgroup/legacy_freezer.c,
// Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst): writing
// FROZEN to freezer.state stops every task of a container and of its
// descendants, THAWED lets them run again, unless an ancestor is still
// frozen.
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
// any SIGCONT undoes it. The freezer holds each task in the daemon's shared
// Stopper (internal/stopper) for the reason "freezer", which stops it the
// way a debugger's PTRACE_SEIZE + PTRACE_INTERRUPT does: the task sits in a
// ptrace-stop (state "t"); its parent sees nothing through
// waitpid(WUNTRACED), SIGCONT does not resume it, and the task runs again
// once no reason holds it (the cpu and memory subsystems hold tasks in the
// same Stopper, so a task both frozen and throttled stays stopped until
// both let go).
//
// Hooks and file handlers never block: under the registry lock they record
// which tasks must be frozen (the holder's want set) and tell the Stopper,
// which stops them on its own thread. freezer.state reads FREEZING until
// the Stopper reports every task of the subtree stopped (or gone), then
// FROZEN, as the kernel's does. A task that forks or is moved into a
// freezing container is held too; one moved out is let go; one that exits
// is forgotten.
//
// While a task is frozen, signals sent to it stay pending in the kernel and
// are delivered when it is let go, as the kernel freezer delivers them on
// thaw; SIGKILL is the exception (see docs/deviations.md).
//
// A task that another tracer (strace, gdb) holds cannot be seized. The
// holder (one per hierarchy, in the root's state) has a worker that stops
// such a task with SIGSTOP instead, only if every thread of its process is
// to be frozen, and sends SIGCONT at the thaw;
// that fallback is visible, as SIGSTOP always is, and a stray SIGCONT
// resumes the task until the worker's next look (within 250 ms), which
// stops it again. The worker sleeps unless a stop is unconfirmed or such
// a task is held: a frozen container costs no CPU.
//
// # What it must never do
//
// Stop the daemon or any task of a root container; block under the
// registry lock; leave a task held when it is thawed. If the daemon exits
// or crashes, the kernel detaches every tracee and they run again: the
// failure mode is "thawed", never "stuck".
package freezer
