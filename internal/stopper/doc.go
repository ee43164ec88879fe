// Package stopper is the daemon's one owner of ptrace stops: it stops and
// resumes tasks (threads) on behalf of several subsystems without the stop
// being visible to the tasks' parents or undone by SIGCONT.
//
// # Why one service
//
// A task can have only one tracer, and every ptrace request must come from
// the OS thread that seized the task. The cpu subsystem (throttling), the
// memory subsystem (pausing) and the freezer all need to stop tasks,
// sometimes the same ones at the same time, so the daemon has one Stopper
// (Default) and each user holds a task for a reason of its own ("cpu",
// "memory", "freezer"). A task runs when no reason holds it.
//
// # How a task is stopped
//
// A dedicated goroutine (a worker.Worker's), locked to its OS thread
// (runtime.LockOSThread) and raised to SCHED_FIFO 2 when allowed, one above
// the rest of the daemon (resuming many tasks must not be preempted by the
// tasks it wakes, see docs/field-notes.md, "CPU scheduling from
// userspace"), does every ptrace call:
//
//   - Stop: PTRACE_SEIZE with no options, then PTRACE_INTERRUPT. The task
//     enters a PTRACE_EVENT_STOP trap (state "t"), which its parent's
//     waitpid(WUNTRACED|WCONTINUED) does not report (a shell shows no
//     "Stopped" job) and which SIGCONT does not end.
//   - Resume: PTRACE_DETACH, as soon as no reason holds the task. Tasks are
//     traced only while held, so a running task is as free as an untraced
//     one: its signals go straight to it, and gdb or strace can attach.
//   - Signals that reach a held task stay pending and are delivered at the
//     detach. One signal dequeued in the window between the seize and the
//     trap (a signal-delivery-stop) is re-injected with the detach. A
//     group-stop (SIGSTOP, Ctrl-Z) taken while traced is resumed by the
//     detach into a plain group-stop, so job control still works.
//   - SIGKILL ends a held task as usual; its exit is reported to us (the
//     tracer) first, and the kernel tells its real parent only after we have
//     reaped that report, so the loop reaps every tracee event promptly
//     with waitid(__WALL|__WNOTHREAD), woken by SIGCHLD.
//   - Stops send no SIGCHLD: the Stopper sets SA_NOCLDSTOP on the
//     process's SIGCHLD action (keeping the Go runtime's handler), because
//     a signal and the runtime wake-ups behind it for every stop were most
//     of the daemon's CPU time when it throttles many tasks. The loop reaps
//     stop reports whenever it wakes, and polls for them (0.5 ms, then
//     doubling up to 50 ms) only while someone waits: a WaitStopped caller,
//     or a task to let go once its stop has been reported. A held task is
//     stopped whether or not its report has been read.
//
// # API
//
// Stop(tid, start, reason) holds a task for a reason; Resume(tid, reason)
// drops that hold; Forget(tid, reason) drops it and says the caller no
// longer cares about the task (call it when the task exits or leaves your
// care); Status, Stopped and Held tell where a task stands; WaitStopped
// returns a channel closed once every task of a batch is stopped, gone or no
// longer held. Stop, Resume and Forget only
// record the wish, under the Stopper's own lock, and wake the goroutine:
// they never block, so subsystem hooks may call them with the registry lock
// held (lock order: registry, subsystem, Stopper), and WaitStopped's
// channel is to be waited on outside any lock. The freezer Stops every
// task of a freezing container with reason "freezer" and reads FROZEN once
// Status says each is Stopped (or Gone); it Resumes them on THAWED, Stops a
// task that forks or moves into a frozen container, and Forgets a task on
// its Exit hook. cpu holds tasks for "cpu" (throttling), memory for
// "memory" (a container paused under oom_kill_disable).
//
// A task is identified by its TID and, optionally, its start time (field 22
// of /proc/TID/stat); the first Stop of a task opens a thread pidfd, so a
// TID reused by another process after the task exited is never stopped in
// its place.
//
// # What it must never do
//
// It never stops the daemon's own threads, nor a task whose real parent is
// the daemon (another goroutine's wait on such a child could consume the
// ptrace stop reports this loop relies on). It never sends a signal of its
// own: no SIGSTOP, no SIGCONT. If the daemon dies, the kernel detaches
// every tracee and they run again; the Stopper sets no PTRACE_O_EXITKILL.
// It cannot stop a task that another tracer (gdb, strace) already holds:
// such a task stays in state Failed and is retried every second.
package stopper
