package proc

// ID is one task's identity: its TID and its start time, in clock ticks
// since boot (field 22 of /proc/TID/stat).
type ID struct {
	TID   int
	Start uint64
}

// Is tells whether a and b, both read from /proc (or from anything that
// copies field 22, such as a scan), are the same task. /proc rounds a start
// time to ticks, and two reads of one task can straddle a tick's rounding,
// so a difference of one tick still is the same task.
func (a ID) Is(b ID) bool {
	return a.TID == b.TID && a.Start <= b.Start+1 && b.Start <= a.Start+1
}

// Holds tells whether the task that /proc shows now as seen is the one
// recorded as id, when id's start time may have come from a fork event of
// the proc connector. That start is the event's timestamp, which the kernel
// takes after it took the task's own start time: a tick later, or many
// under load when the forking task was preempted in between, and never
// earlier. So the task is the same unless /proc shows it started after the
// recorded time (beyond a tick of rounding), which is what a task that
// reused the TID shows.
//
// Use Holds wherever the recorded side may come from the model (core.Task
// records fork events); Is only where both sides were read from /proc.
func (id ID) Holds(seen ID) bool {
	return id.TID == seen.TID && SameStart(id.Start, seen.Start)
}

// SameStart is Holds on start times alone: recorded may come from a fork
// event, seen is /proc's.
func SameStart(recorded, seen uint64) bool { return seen <= recorded+1 }
