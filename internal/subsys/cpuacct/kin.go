package cpuacct

import "time"

// Reconciling exits through the parent's cutime.
//
// An exit record is sent early in do_exit and carries se.sum_exec_runtime as
// of the task's last scheduler update: it misses up to a tick before it and
// the rest of do_exit after it (0.5 to 4 ms a process here). The kernel
// itself, when a parent reaps a child, adds the child's exact total (and
// what the child had reaped in turn) to the parent's cutime and cstime,
// which /proc/PID/stat shows to the tick. So for each tracked thread group
// the subsystem keeps what its cutime+cstime should be if the records were
// exact (the first value seen, plus each reaped child's record and expected
// cutime) and charges the difference, as it shows up, to the group
// leader's container: the part of its children's lives the records missed.
//
// The difference is taken from an observation at least kinDelay old: a
// child is reaped after it sent its record, so by then every child in the
// observation has had its record applied, and a child counted in the
// observation but not yet in the expectation cannot be charged twice.
// Mistakes go the safe way: a record linked twice, or a child that was
// counted in the first value, only makes the expectation too high, and the
// corrections smaller.
const kinDelay = 250 * time.Millisecond

type observation struct {
	kids uint64
	at   int64
}

// kin is one tracked thread group's reaped children, as seen and as
// expected. Guarded by acct.mu.
type kin struct {
	expect  uint64        // the first value seen, plus the children linked since
	charged uint64        // corrections charged so far
	last    uint64        // the last value seen
	queue   []observation // values seen, not yet kinDelay old
	ripe    uint64        // the newest value at least kinDelay old
	idle    int64         // when the group's last tracked task went; 0 while it has some
}

// ripen moves the observations older than kinDelay out of the queue.
func (k *kin) ripen(now int64) {
	i := 0
	for ; i < len(k.queue) && now-k.queue[i].at >= int64(kinDelay); i++ {
		k.ripe = k.queue[i].kids
	}
	k.queue = k.queue[i:]
}

// expected is what the group's cutime+cstime should finally be: what its
// own parent will be credited, besides its own run time.
func (k *kin) expected() uint64 { return max(k.expect+k.charged, k.last) }

// observeLocked notes a sample's cutime+cstime for the task's thread group;
// the first one is the group's base.
func (a *acct) observeLocked(tk *task, sm sample) {
	if !sm.hasStat {
		return
	}
	tk.ppid = sm.ppid
	k := a.kin[tk.tgid]
	if k == nil {
		a.kin[tk.tgid] = &kin{expect: sm.kids, last: sm.kids, ripe: sm.kids}
		return
	}
	if sm.kids > k.last {
		k.last = sm.kids
		k.queue = append(k.queue, observation{sm.kids, a.nowNS()})
	}
}

// deathLocked links thread group tgid, which has died having run own ns by
// its records, to its parent's expectation. It returns whether the parent
// is reconciled.
func (a *acct) deathLocked(tgid, ppid int, own uint64) bool {
	var kids uint64
	if k := a.kin[tgid]; k != nil {
		kids = k.expected()
		delete(a.kin, tgid)
	}
	p := a.kin[ppid]
	if p == nil || ppid == tgid {
		return false
	}
	p.expect += own + kids
	return true
}

// reconcileLocked charges each group's ripe difference to its leader's
// container, and forgets groups gone for longer than exitWait.
func (a *acct) reconcileLocked(now int64) {
	for tgid, k := range a.kin {
		if k.idle != 0 && now-k.idle > int64(exitWait) {
			delete(a.kin, tgid)
			continue
		}
		k.ripen(now)
		if k.ripe <= k.expect+k.charged {
			continue
		}
		leader := a.byTID[tgid]
		if leader == nil || a.tasks[leader.ct] != leader {
			continue // the leader left: nowhere to charge
		}
		d := k.ripe - k.expect - k.charged
		leader.g.chargeLocked(leader.cpu, d, 0, 0)
		k.charged += d
		a.stats.Reconciled += d
	}
}
