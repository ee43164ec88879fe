// Package bench holds containerfs's benchmarks. Each compares, in the same
// run, containerfs with two references: the floor (bench/floorfs, a bare
// go-fuse file system mounted with containerfs's options, which is what any
// FUSE file system pays) and the kernel's own cgroup v1, in a bench-* child
// cgroup of the freezer (or pids) hierarchy that the benchmark makes and
// removes itself.
//
// The benchmarks run only with -bench, and the 10,000-container test only
// with CONTAINERFS_BENCH=1: plain `go test ./...` runs nothing slow here. See
// README.md for how to run them and what was measured.
//
// What a benchmark must never do: touch a kernel cgroup it did not make,
// move a process it did not start, use the memory hierarchy, change a
// sysctl, or leave a mount, a cgroup or a process behind, even when it fails
// or times out.
package bench
