// Package cpuacct is the cpuacct subsystem (kernel/sched/cpuacct.c,
// Documentation/admin-guide/cgroup-v1/cpuacct.rst): it counts the
// CPU time the tasks of each container use, in nanoseconds, by CPU and by
// user and system mode, and enforces nothing.
//
// # How it counts
//
// The kernel charges a task's time to its cgroup and to every ancestor as
// the scheduler accounts it. From userspace, the subsystem samples each
// task's cumulative figures and charges the difference between two
// samples, the kernel's way, to the task's container and every ancestor
// below the root:
//
//   - the run time is /proc/TID/schedstat's first field, the task's
//     se.sum_exec_runtime in ns (the figure the kernel's cpuacct.usage adds
//     up);
//   - the user/system split is that run time split in the ratio of the
//     task's utime and stime from /proc/TID/stat, the way the kernel's
//     cputime_adjust splits it; time the tick has not yet seen in either
//     mode goes to usage only, until it has;
//   - the CPU is /proc/TID/stat's processor field, the CPU the task last
//     ran on: each sample's delta goes to that CPU. The kernel charges each
//     slice to the CPU it ran on; a task that migrated between two samples
//     has its whole delta put on the last one.
//
// A task that joins a container is sampled in the Attach hook for a
// baseline, so time it used before does not come with it; a task that
// leaves is sampled first, so the old container keeps what it used there.
// A task born in a container (the Fork hook) counts from zero: all of its
// life was there, even the part before userspace heard of the fork.
//
// Samples are taken by the subsystem's own goroutine every 100 ms (longer
// when there are so many tasks that sampling would take more than 2% of a
// CPU), and afresh, under the registry lock, when a usage file of a
// container is read, for up to 256 tasks of its subtree (about 5 µs for a
// task that has not run since its last sample, 10 µs for one that has);
// a bigger subtree shows the figures of the last round. Each tracked task
// keeps its two /proc files open and preads them, which is 3 to 4 times
// cheaper than opening them each time and binds the files to the task, so
// a reused TID cannot be mistaken for it.
//
// # Exits
//
// A task that exits is gone from /proc as soon as its parent reaps it,
// usually before the proc connector's exit event reaches us. Its final
// figure comes from the taskstats exit record (internal/taskstats), which
// the kernel sends for every exiting task to listeners registered per CPU:
// one listener per possible CPU tells which CPU the task exited on. The
// record and the proc connector's exit event come on different sockets,
// in either order, and a short-lived child's record can come before its
// fork event: records are matched to tasks by TID, thread group and start
// time, and each side waits for the other up to 5 s. If the task is still
// a zombie when its exit event is applied, its /proc files give the final
// figure instead. If no record comes, the last sample stands.
//
// The record's run time is se.sum_exec_runtime when do_exit sends it,
// which is as of the task's last scheduler update and before the rest of
// do_exit (unmapping memory, closing files): 0.5 to 4 ms less than the
// kernel charges a process (mean 1.5 ms here). The kernel itself credits a
// reaped child's exact total, and what the child had reaped, to its
// parent's cutime and cstime, which /proc/PID/stat shows. For each tracked
// thread group the subsystem keeps what that figure should be if the
// records were exact, and charges the difference as it shows up to the
// group leader's container (kin.go); it waits until an observation is
// 250 ms old, by when every child it counts has had its record applied, so
// nothing is charged twice. Against the kernel's cpuacct, hundreds of
// processes of 2 to 30 ms each come out within 0.3%. What threads' records
// miss (they are not reaped into cutime), and processes whose parent is
// not in a container, keep the record's figure.
//
// # The root
//
// The root's files show the whole machine, as the kernel's root does, from
// /proc/stat: usage is user+nice+system+irq+softirq, usage_user is
// user+nice, usage_sys system+irq+softirq, to the 10 ms tick. Writing 0 to
// the root's usage is accepted and changes nothing, as in the kernel.
//
// # What it must never do
//
// It never acts on a task: it only reads /proc and listens to taskstats.
// Hooks and file handlers run under the registry lock and do at most a
// bounded number of /proc reads; the sampling rounds read /proc without
// any lock held and take the lock of the hierarchy's accounting (acct.mu,
// in the root's state) only to charge. The lock order is the registry's,
// then mu; mu is never held while calling into the registry.
package cpuacct
