package cpuacct

import (
	"math/bits"

	"github.com/containerfs/containerfs/internal/core"
)

// A container's counters and a task's samples: how a sample's difference
// from the last one is charged.

// counters are one CPU's share of a container's CPU time, in nanoseconds.
type counters struct{ usage, user, sys uint64 }

// group is one container's accounting state. The kernel charges a task's
// time to its cgroup and to every ancestor as it is used (cpuacct_charge),
// so each group's counters already include its descendants; a reset zeroes
// one group's counters and nobody else's.
type group struct {
	parent *group // nil for a root
	root   bool   // a hierarchy root: its figures come from /proc/stat
	a      *acct  // the hierarchy's accounting, which the root owns

	// The fields below are guarded by acct.mu.
	cpus []counters // by possible CPU
	// prevUser and prevSys keep cpuacct.stat monotonic between reads, as
	// the kernel's cputime_adjust does with the cgroup's prev_cputime.
	prevUser, prevSys uint64
	refreshed         int64 // when a read last sampled the subtree, in ns
}

func newGroup(parent *group, a *acct) *group {
	g := &group{parent: parent, a: a}
	if parent == nil {
		g.root = true
		return g
	}
	g.cpus = make([]counters, a.ncpu)
	return g
}

// chargeLocked adds time used on cpu to g and to every ancestor below the
// root, as cpuacct_charge and cpuacct_account_field do.
func (g *group) chargeLocked(cpu int, usage, user, sys uint64) {
	for x := g; x != nil && !x.root; x = x.parent {
		if cpu < 0 || cpu >= len(x.cpus) {
			cpu = 0
		}
		c := &x.cpus[cpu]
		c.usage += usage
		c.user += user
		c.sys += sys
	}
}

// resetLocked zeroes g's own counters (cpuusage_write).
func (g *group) resetLocked() {
	clear(g.cpus)
	g.prevUser, g.prevSys = 0, 0
}

// sample is what userspace can see of one task's CPU time at one moment,
// counted from the task's birth.
type sample struct {
	run uint64 // ns on CPU (se.sum_exec_runtime)
	// user and sys are run split by the ratio of the task's user and system
	// ticks; split is false while the tick has not yet caught the task in
	// either mode (it has run less than a tick or two).
	user, sys uint64
	split     bool
	cpu       int // the CPU the task ran on last; -1 if unknown
	// kids is the thread group's cutime+cstime in ns (/proc/TID/stat
	// fields 16 and 17, to the tick): what its reaped children used. ppid
	// is its parent process. Both are set only when hasStat.
	kids    uint64
	ppid    int
	hasStat bool
}

// splitRun splits run by the ratio of two tick counts.
func splitRun(run, uticks, sticks uint64) sample {
	s := sample{run: run, cpu: -1}
	if uticks+sticks == 0 {
		return s
	}
	s.split = true
	s.user = mulDiv(run, uticks, uticks+sticks)
	s.sys = run - s.user
	return s
}

// mulDiv is a*b/c without overflow, for b <= c.
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// task is one tracked task: a member of a non-root container, or one that
// has exited and whose exit record has not arrived yet.
type task struct {
	ct         *core.Task // identity; its TID, TGID and Start never change
	tid, tgid  int
	start      uint64 // start time in ticks since boot
	g          *group // where its time goes
	src        source // nil until opened
	gen        uint64 // bumped by every move, so samples read before it are dropped
	based      bool   // run, user, sys hold a baseline
	run        uint64 // what has been charged up to, from the task's birth
	user, sys  uint64
	owed       uint64 // run charged to this container but to neither user nor system yet
	cpu        int    // the CPU it was last seen on; -1 if unknown
	ppid       int    // its parent process when last sampled; 0 if unknown
	linked     int    // the parent its thread group's death was linked to
	exited     bool   // the core has told us of its exit
	final      bool   // its exit record has been charged
	exitAt     int64
	noSource   bool // /proc could not be opened for it: no sampling
	fromRecord bool // the final figure came from taskstats
}

// advanceLocked charges tk's container with what tk used between the last
// sample charged and s. The first sample after an attach is the baseline:
// time used before the task joined is not charged. A sample older than the
// last one charged (read before a move, or before a fresher sample) changes
// nothing.
//
// The user/system split is charged as far as it is known: time whose split
// is not known yet (the tick has not seen the task) goes to usage only, as
// the kernel's tick-sampled user and system figures leave out time the
// tick did not see, and is split later, once the ticks tell, but never
// beyond what this container was charged: usage_user + usage_sys never
// exceeds usage.
func (tk *task) advanceLocked(s sample) {
	if !tk.based {
		tk.based = true
		tk.run = s.run
		if s.split {
			tk.user, tk.sys = s.user, s.sys
		}
		tk.owed = 0
		if s.cpu >= 0 {
			tk.cpu = s.cpu
		}
		return
	}
	if s.run <= tk.run {
		return
	}
	d := s.run - tk.run
	var du, ds uint64
	if s.split {
		du = clampDelta(s.user, tk.user, d+tk.owed)
		ds = clampDelta(s.sys, tk.sys, d+tk.owed-du)
	}
	tk.owed = tk.owed + d - du - ds
	if s.cpu >= 0 {
		tk.cpu = s.cpu
	}
	tk.g.chargeLocked(tk.cpu, d, du, ds)
	tk.run = s.run
	tk.user += du
	tk.sys += ds
}

// clampDelta is now-before, within [0, most].
func clampDelta(now, before, most uint64) uint64 {
	if now <= before {
		return 0
	}
	return min(now-before, most)
}
