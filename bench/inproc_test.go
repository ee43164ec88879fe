package bench

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/daemon"
	"github.com/containerfs/containerfs/internal/subsys"
)

// inProc tells whether to serve containerfs from the benchmark's own
// process (CONTAINERFS_BENCH_INPROC=1), so that go test's -cpuprofile and
// -memprofile see the daemon's code: the daemon has no profiling flag. The
// figures then include the client and the server competing for the same Go
// runtime, so use this mode to find where time goes, not to measure it.
func inProc() bool { return os.Getenv("CONTAINERFS_BENCH_INPROC") == "1" }

// startContainerfsInProc is startContainerfs with the daemon in this process.
func startContainerfsInProc(tb testing.TB, o setup) *system {
	tb.Helper()
	tmp, err := os.MkdirTemp("", "containerfs-inproc-")
	if err != nil {
		tb.Fatal(err)
	}
	d, err := daemon.New(daemon.Config{
		Socket: filepath.Join(tmp, "sock"),
		Subsys: subsys.All(),
		Debug:  o.debug,
		Logf:   tb.Logf,
	})
	if err != nil {
		os.RemoveAll(tmp)
		tb.Fatal(err)
	}
	go d.Serve()
	mnt := filepath.Join(tmp, "mnt")
	always(tb, func() {
		if err := d.Close(); err != nil {
			tb.Logf("in-process daemon: %v", err)
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH) // harmless if gone
		os.RemoveAll(tmp)
	})
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := d.Mount("container", mnt, cfsOptions()); err != nil {
		tb.Fatal(err)
	}
	return &system{name: cfsName, dir: mnt, pid: os.Getpid()}
}
