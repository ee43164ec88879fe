// Package sched is the cpu subsystem's scheduler: the pure decision logic
// that says, at each tick, which of a hierarchy's tasks must be held
// (stopped) so that sibling containers share the CPU by their cpu.shares
// and no container exceeds its cpu.cfs_quota_us per cpu.cfs_period_us. It
// has no clock, reads no /proc, makes no system call and starts no
// goroutine: the cpu subsystem's enforcer feeds it each task's CPU time
// and run-queue wait since the previous tick and applies what it decides.
//
// Shares are enforced as a group-level CFS: every group has a virtual
// time v that advances by its CPU time scaled by 1024/shares. Among the
// groups of one parent that want CPU (eligible), one that runs ahead of a
// sibling by more than Slack is held (all its tasks stopped) until the
// siblings behind it have caught up; so, over time, siblings' CPU times
// follow their shares whatever their numbers of tasks or sessions. A hold
// is only worth it if the siblings behind can use the CPUs it frees: a
// group is held only when the siblings behind it have enough CPU-bound
// tasks to fill every CPU it may run on (saturated; see partial holds
// below for when they fill only some); otherwise its lead is
// capped at MaxLead instead, so that a later contention does not start with
// a long hold. Idle siblings are not eligible: their share goes to the
// others (work-conserving). A sibling that becomes eligible again starts at
// the smallest v of the others: no credit is saved up while idle.
//
// Partial holds: on several CPUs a group's entitlement can be less than the
// CPUs its tasks would take while the siblings behind it cannot fill them
// all (3 CPU-bound tasks beside 1, equal shares, 2 CPUs: each is entitled
// to one CPU). Such a group, when it runs ahead by more than Slack, is not
// held whole but limited to as many running tasks as the CPUs the siblings
// behind leave free (its limit); the rest of its CPU-bound tasks are held,
// and which ones rotates: a group keeps for each task the CPU time it used
// (its vrun), and runs the limit's worth with the least, a running task
// being swapped out once it is 2×Slack ahead of a held one. So the group's
// tasks stay fair among themselves, and its virtual time against its
// siblings' settles the rest (a 2:1 group alternates between its limit and
// running whole). A group with child groups shares its limit among them
// (allot): each running task goes to the child with the smallest virtual
// time, so that they follow their shares within it. Partial holds are
// made only in groups whose CPU-bound tasks may each run on every CPU the
// group's tasks may use: which tasks to let run is then of no matter to
// where they go.
//
// Quotas are enforced per period, as CFS bandwidth control does: a group
// whose subtree used its quota in the current period is held until the
// period ends. Running past the quota (a tick comes late) is charged to the
// next period, so over many periods the group gets exactly quota/period.
package sched
