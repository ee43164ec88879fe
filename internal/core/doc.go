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
// its own goroutine under its own lock, which is always taken after
// Registry.mu and never held while calling back into the registry.
//
// Lock order: Registry.mu, then any subsystem's own lock.
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
