// Package lockrank is the lock ladder of containerfs, made checkable. The
// locks that nest are ranked, and a goroutine may only take a lock of a
// higher rank than every ranked lock it holds:
//
//	daemon → policy (moves, then its state) → registry → subsystem → stopper
//
// A Mutex[C] is a sync.Mutex whose rank is its class C. Built normally it
// is exactly a sync.Mutex. Built with the lockrank tag (`go test -tags
// lockrank ./...`, which CI runs), every Lock checks the ladder and panics,
// naming both locks, when a goroutine takes a lock at or below one it
// holds: the order that can deadlock is caught on the first run that takes
// it, not on the rare run that deadlocks.
//
// Locks outside the ladder (a connection's, a file handle's) stay plain
// sync.Mutexes: nothing is taken under them that takes a ranked lock.
package lockrank

import "sync"

// Rank orders locks: a lock is taken only after those of lower rank.
type Rank int

// The ranks of the ladder.
const (
	RankDaemon     Rank = 10 // daemon: its configuration and mounts
	RankPolicyMove Rank = 20 // policy: one move decision at a time
	RankPolicy     Rank = 30 // policy: its rule and sticky tables
	RankRegistry   Rank = 40 // core.Registry: the whole model, the kernel's cgroup_mutex
	RankSubsys     Rank = 50 // one subsystem's own state (enforcer, sampler)
	RankStopper    Rank = 60 // the stopper: holds of every subsystem
)

func (r Rank) String() string {
	switch r {
	case RankDaemon:
		return "daemon"
	case RankPolicyMove:
		return "policy moves"
	case RankPolicy:
		return "policy"
	case RankRegistry:
		return "registry"
	case RankSubsys:
		return "subsystem"
	case RankStopper:
		return "stopper"
	}
	return "rank?"
}

// A Class names a rung of the ladder; the classes are this package's.
type Class interface{ rank() Rank }

// The classes, one per rank.
type (
	Daemon     struct{}
	PolicyMove struct{}
	Policy     struct{}
	Registry   struct{}
	Subsys     struct{}
	Stopper    struct{}
)

func (Daemon) rank() Rank     { return RankDaemon }
func (PolicyMove) rank() Rank { return RankPolicyMove }
func (Policy) rank() Rank     { return RankPolicy }
func (Registry) rank() Rank   { return RankRegistry }
func (Subsys) rank() Rank     { return RankSubsys }
func (Stopper) rank() Rank    { return RankStopper }

// Mutex is a sync.Mutex on rung C of the ladder. The zero value is an
// unlocked mutex.
type Mutex[C Class] struct {
	mu sync.Mutex
}

// Lock takes m, checking the ladder under the lockrank tag.
func (m *Mutex[C]) Lock() {
	var c C
	acquire(c.rank(), m)
	m.mu.Lock()
}

// Unlock releases m.
func (m *Mutex[C]) Unlock() {
	release(m)
	m.mu.Unlock()
}
