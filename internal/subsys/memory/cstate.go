package memory

// One container's memory state: its settings, what the sampler found, and
// the questions asked of its place in the hierarchy (limit, OOM, path).

import "time"

// cstate is one container's memory state. Every field after the immutable
// ones is guarded by the engine's mu, because the sampler reads and updates them
// without the registry lock.
type cstate struct {
	e      *engine // the hierarchy's, owned by the root's state; immutable
	parent *cstate // nil for the root; immutable
	root   bool    // immutable
	name   string  // for logs: the name at mkdir (renames are not followed)

	children map[*cstate]struct{}
	removed  bool

	// Settings.
	limit, soft    int64 // bytes, whole pages; unlimited for none
	swappiness     uint64
	moveCharge     uint64
	oomKillDisable bool

	// What the last sample found: this container's own processes (local)
	// and those of its whole subtree (total); usage is total's anon+file.
	local, total stats
	usage        int64
	maxUsage     int64

	failcnt uint64
	oomKill uint64 // kills here and below, as v1's memory_events
	paused  bool   // over its limit with the OOM killer disabled
	// noVictimLogged: we said that nothing here may be killed; not again
	// until that changes.
	noVictimLogged bool

	// lastJoin is when a task last came into this container or one below
	// it. A process's proportional share may have changed since (a fork
	// shares its pages): a rollup older than that is not trusted for a
	// kill.
	lastJoin time.Time
	// deferSince is when a decision here was first put off for want of
	// fresh rollups; zero if it is not.
	deferSince time.Time

	// events are the cgroup.event_control registrations (events.go).
	events []*event

	// Fault counts of the processes while they were here, and of removed
	// children (which total_ keeps, as the kernel's do).
	faults, majFaults         uint64
	deadFaults, deadMajFaults uint64
}

// stats are memory figures in bytes.
type stats struct {
	anon, file, shmem, huge, swap, locked int64
}

func (a *stats) add(b stats) {
	a.anon += b.anon
	a.file += b.file
	a.shmem += b.shmem
	a.huge += b.huge
	a.swap += b.swap
	a.locked += b.locked
}

// path is st's path as it was named at mkdir, for logs.
func (st *cstate) path() string {
	if st.root {
		return "/"
	}
	p := st.parent.path()
	if p == "/" {
		return "/" + st.name
	}
	return p + "/" + st.name
}

// underOOM tells whether st or an ancestor is paused: v1 marks the whole
// subtree of the memcg in OOM (mem_cgroup_mark_under_oom).
func (st *cstate) underOOM() bool {
	for x := st; x != nil; x = x.parent {
		if x.paused {
			return true
		}
	}
	return false
}

// within tells whether st is x or one of its descendants.
func (st *cstate) within(x *cstate) bool {
	for y := st; y != nil; y = y.parent {
		if y == x {
			return true
		}
	}
	return false
}

// effLimit is the strictest limit of st and its ancestors: v1's
// hierarchical_memory_limit.
func (st *cstate) effLimit() int64 {
	l := unlimited
	for x := st; x != nil; x = x.parent {
		l = min(l, x.limit)
	}
	return l
}
