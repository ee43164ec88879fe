// Package core is the process-container model: the registry of hierarchies,
// the tree of containers in each, the subsystems bound to them, and which
// container every task on the machine is in, one per hierarchy.
//
// It is the seed's container_subsys design as it matured into cgroup v1. A
// subsystem implements Subsys (Name, Create, Destroy, Files) and opts into the
// hooks it needs (CanAttacher, AttachCanceler, Attacher, Forker, Exiter); the
// core type-asserts them once, when the subsystem is registered. Control files
// are declared in File tables, like the kernel's cftype, and served by the FUSE
// layer (internal/cgfs); no FUSE type ever reaches this package.
//
// # Locking
//
// One mutex, Registry.mu, guards the whole model: the hierarchies, every
// container tree, every task's memberships, and the per-container state of
// every subsystem. It plays the part of the kernel's cgroup_mutex. Subsystem
// hooks and control-file handlers run with it held, so they must not block:
// no exec, no waiting on netlink, no signal-and-wait, no FUSE notify. A
// subsystem that must do slow work (stopping tasks, sampling /proc) does it on
// its own goroutine (a worker.Worker) under its own lock.
//
// The lock ladder of the whole daemon, top to bottom. A goroutine takes
// locks only downwards, and never calls up while holding a lower one:
//
//  1. daemon (internal/daemon): its configuration, mounts and tracker.
//  2. policy (internal/policy): first the engine's move lock (one
//     decision at a time), then its rule and sticky tables. The engine
//     calls into the registry with them held.
//  3. registry (Registry.mu): the model. Hooks and locked handlers run
//     under it; UnlockedWrite handlers and Registry methods take it.
//  4. subsystem: one subsystem's own lock (its enforcer's, sampler's or
//     killer's state), taken under the registry lock by hooks, or alone by
//     its worker. A worker never takes the registry lock while holding
//     its own.
//  5. stopper (internal/stopper): the holds of every subsystem, taken
//     under a subsystem's lock. The stopper calls nothing above it.
//
// Locks below the ladder (a netlink connection's, a FUSE handle's, a
// metrics collector's) guard only their own fields and take nothing
// ranked while held. The ladder's locks are lockrank.Mutexes: a build
// with the lockrank tag (CI runs `go test -tags lockrank -short ./...`)
// panics at the first acquisition out of this order.
//
// Functions that expect Registry.mu held end in Locked. Fields say which
// lock guards them.
//
// # What the model must never do
//
// The daemon never moves itself into a container (its own threads are
// refused with EPERM), and subsystems never enforce anything on tasks of a
// hierarchy's root container: Container.IsRoot tells them.
package core
