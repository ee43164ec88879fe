// Package proc reads the kernel's per-task files under /proc: stat, status,
// schedstat and io. It is the one parser of them in containerfs; every
// other package (the core, the tracker, the policy engine, the stopper, the
// subsystems) uses it, and it imports nothing of containerfs.
//
// It also defines a task's identity, ID: a TID alone names different tasks
// over time (pid_max is 32768 on these machines, and a busy machine reuses
// TIDs within minutes), a TID with its start time names one. There are two
// ways to compare identities, for the two ways a start time is learnt; see
// ID.Is and ID.Holds.
//
// Parsing allocates nothing but Stat.Comm, because the samplers parse these
// files for every tracked task at every tick; ReadStat and friends read with
// one open, read and close into a caller's buffer.
package proc
