// The scheduler's tuning (Config) and the kernel's defaults it starts
// groups with.

package sched

// Defaults of a new group, as in the kernel.
const (
	// DefaultShares is cpu.shares' default, and the weight of one task
	// (nice 0) beside its group's child groups.
	DefaultShares = 1024
	// DefaultPeriod is cpu.cfs_period_us's default, in ns.
	DefaultPeriod = 100e6
)

// Config tunes the scheduler. Durations are in nanoseconds.
type Config struct {
	// Slack is how far (in CPU time weighted to 1024 shares) a group may
	// run ahead of a contending sibling before it is held. Smaller is
	// smoother and costs more stops. With many tasks it grows to
	// SlackPerTask per task, so that the stops and resumes per second,
	// each of which costs the daemon CPU time per task, stay few.
	Slack, SlackPerTask int64
	// MaxLead caps the lead of a group that nobody contends with.
	MaxLead int64
	// MinTick and MaxTick bound the time between ticks; Probe is the tick
	// after holds changed, to measure the new rates.
	MinTick, MaxTick, Probe int64
	// A tick reads every task's counters, so with many tasks ticks are
	// spaced further: at least TickPerTask per task apart, and, when
	// nothing needs watching closely, IdlePerTask per task (at most
	// MaxIdleTick).
	TickPerTask, IdlePerTask, MaxIdleTick int64
	// Tau is the time constant over which a task's runnable fraction (the
	// part of the time it was running or waiting to run) is averaged:
	// /proc reports a wait only once it ended, so one interval alone can
	// miss it.
	Tau int64
	// BoundFrac: a task runnable at least this fraction of the time is
	// CPU-bound.
	BoundFrac float64
	// DemandFrac: a group whose tasks' runnable fractions sum to less than
	// this is idle.
	DemandFrac float64
}

// DefaultConfig is what the daemon uses.
var DefaultConfig = Config{
	Slack:        5e6,
	SlackPerTask: 0.4e6,
	MaxLead:      10e6,
	MinTick:      1e6,
	MaxTick:      50e6,
	Probe:        4e6,
	TickPerTask:  0.5e6,
	IdlePerTask:  2e6,
	MaxIdleTick:  500e6,
	Tau:          50e6,
	BoundFrac:    0.5,
	DemandFrac:   0.05,
}
