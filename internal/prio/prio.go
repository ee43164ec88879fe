// Package prio sets how the daemon's threads are scheduled.
//
// The daemon must run ahead of the tasks it serves: a starved daemon stalls
// every FUSE call, places forked children late and enforces late. Nice -10
// is not enough under a fork storm: the kernel's EEVDF scheduler lets the
// running task finish its slice before a woken one preempts it, so the
// daemon waited up to a scheduler tick (4 ms here) to read an event.
// So the daemon's threads run at SCHED_FIFO priority 1, the lowest
// real-time priority, which preempts every ordinary task at once: measured
// with a fork storm, fork-to-placement p99 fell from 3.4 ms to 0.5 ms.
//
// Threads inherit the policy of the thread that creates them, and the Go
// runtime makes new threads from its existing ones (or, for a goroutine
// locked to its thread, from a template thread made at the first
// LockOSThread, which Raise also reaches), so setting every thread once
// at start-up covers those to come.
//
// Bulk work is not real-time: the samplers that read /proc for many tasks
// (cpuacct, memory, cpuset), and the requests that walk the whole model (a
// metrics scrape; snapshot, lscgroup and cgget on the control socket),
// call Background first, which locks their goroutine to its own thread and
// runs that thread at SCHED_OTHER, nice -10. The cpu enforcer stays
// real-time: a quota is only as exact as its ticks are punctual, and it
// spaces its ticks by the number of tasks it reads. Processes the daemon
// starts (release agents) are started from a thread that Ordinary has put
// back to SCHED_OTHER, nice 0, so they inherit nothing of the daemon's.
//
// Without CAP_SYS_NICE (or with RLIMIT_RTPRIO 0) SCHED_FIFO is refused:
// the daemon then runs at nice -10, as before.
package prio

import (
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
)

// Nice is the nice value of the daemon's non-real-time threads.
const Nice = -10

// Raise makes every thread of the process SCHED_FIFO 1 (nice -10 if that is
// refused). When the process leads its own session (as when mount.container
// starts the daemon), its autogroup is raised to nice -10 too, since with
// autogroup on, nice counts only within a session; a daemon run from a
// terminal leaves the terminal's session alone. It reports whether the
// threads are real-time.
func Raise(logf func(string, ...any)) (realtime bool) {
	realtime = true
	tids, _ := proc.Threads("", os.Getpid())
	for _, tid := range tids {
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice); err != nil {
			logf("raise priority of thread %d: %v", tid, err)
		}
		if !realtime {
			continue
		}
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
			logf("SCHED_FIFO for thread %d: %v; the daemon runs at nice %d instead", tid, err, Nice)
			realtime = false
		}
	}
	if !realtime {
		// Some threads may have been made real-time before the refusal.
		for _, tid := range tids {
			setOther(tid, Nice)
		}
	}
	if sid, _ := unix.Getsid(0); sid == os.Getpid() {
		if err := os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(Nice)), 0); err != nil {
			logf("raise autogroup priority: %v", err)
		}
	}
	return realtime
}

// Background locks the calling goroutine to its thread for good and runs
// that thread at SCHED_OTHER, nice -10: for long-lived goroutines that do
// bulk work. Call it first thing in the goroutine; the thread ends with it.
func Background() {
	runtime.LockOSThread()
	setOther(0, Nice)
}

// Ordinary locks the calling goroutine to its thread for good and runs that
// thread as an ordinary one (SCHED_OTHER, nice 0): start child processes
// from it, in a goroutine of their own, so that they inherit nothing of the
// daemon's priority.
func Ordinary() {
	runtime.LockOSThread()
	setOther(0, 0)
}

func setOther(tid, nice int) {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL, Nice: int32(nice)}
	unix.SchedSetAttr(tid, &attr, 0)
}

// Policy is the scheduling policy and nice value of thread tid (0: the
// caller's), for tests.
func Policy(tid int) (policy uint32, nice int32, err error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, 0, err
	}
	return attr.Policy, attr.Nice, nil
}
