// Package conformance is a black-box test suite for a mounted cgroup v1
// ("process containers") hierarchy. Run takes the root directory of a mount
// and checks it only through system calls and real child processes: the
// errnos of directory operations, the core control files, moving tasks and
// thread groups, permissions and delegation, and how reads behave.
//
// The same suite runs against containerfs (conformance_test.go mounts one
// through an isolated daemon) and, when a developer points
// CONFORMANCE_KERNEL_ROOT at a hierarchy mounted by hand, against the
// kernel's own cgroupfs, so that our behaviour is checked against the
// reference and not against our reading of it.
//
// What the suite must never do: act on a process it did not start, write
// under /sys/fs/cgroup or any hierarchy it was not given, create kernel
// cgroups on its own, or leave anything behind. Every child container it
// makes is removed and every process it starts is moved back to the root it
// was given and killed, by PID, when its test ends, failed or not. Every
// filesystem operation is bounded in time: a hung FUSE request fails the test
// (see do) instead of hanging the suite.
//
// Tasks are always moved into the root before a check that they leave it, so
// the checks hold whether or not the implementation learns of forks on its
// own. The checks that need it (a new process is listed where its parent is,
// an exited one leaves) are grouped under the Tracking subtest.
package conformance
