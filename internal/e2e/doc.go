// Package e2e tests containerfs as its users meet it: mount(8) with the
// mount.container helper, the seed article's shell session, several
// hierarchies at once, the CLI's /proc/PID/cgroup and /proc/cgroups tables,
// hierarchies outliving their mounts, and the daemon's life cycle (SIGTERM,
// SIGKILL and the stale mounts it leaves, start-up by the mount helper).
//
// Every test runs its own daemon on a private socket (internal/testutil),
// acts only on processes it started, bounds every command and filesystem
// operation in time, and removes its mounts and processes when it ends.
// The seed session needs mount(8) to find the helper at
// /sbin/mount.container: the test installs a link there for its duration
// when none exists, and uses an existing one only if it is containerfs.
package e2e
