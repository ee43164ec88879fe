package pids

// The comparison of a fork bomb under containerfs and under the kernel's
// pids controller (CONTAINERFS_BENCH=1 only).

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

// kernelPids is where the host mounts the kernel's cgroup v1 pids hierarchy.
const kernelPids = "/sys/fs/cgroup/pids"

// kernelCgroup makes a bench-* child of the kernel's pids hierarchy and
// removes it when the test ends, once the processes the test moved there
// are gone. It is the only place the tests write under /sys/fs/cgroup.
func kernelCgroup(t *testing.T, root string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skipf("no kernel cgroup v1 hierarchy at %s: %v", root, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("bench-%d-%08x", os.Getpid(), rand.Uint32()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("rmdir %s: %v (it still holds %q)", dir, err, readProcs(dir))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

func readProcs(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	return strings.TrimSpace(string(b))
}

// TestBenchForkBombVsKernel runs the same bomb under containerfs and under
// the kernel's pids controller, logs both side by side, and asserts the
// target: containerfs refuses exactly as many forks as the kernel (the
// same pids.events), and the machine stays responsive. It runs only with
// CONTAINERFS_BENCH=1:
//
//	CONTAINERFS_BENCH=1 go test -run TestBenchForkBombVsKernel -v ./internal/subsys/pids/
func TestBenchForkBombVsKernel(t *testing.T) {
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("set CONTAINERFS_BENCH=1 to compare with the kernel")
	}
	testutil.Short(t)
	testutil.RequireRoot(t)

	dir := container(t, "bomb")
	testutil.MustWrite(t, filepath.Join(dir, "pids.max"), strconv.Itoa(bombMax))
	ours, oursRes := runBomb(t, bombForks, bombMax,
		func(pid int) error {
			return testutil.WriteFile(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
		},
		func() (int, error) { return readInt(filepath.Join(dir, "pids.current"), "") })
	oursEvents, _ := readInt(filepath.Join(dir, "pids.events"), "max ")
	ours.kill()

	kdir := kernelCgroup(t, kernelPids)
	testutil.MustWrite(t, filepath.Join(kdir, "pids.max"), strconv.Itoa(bombMax))
	kern, kernRes := runBomb(t, bombForks, bombMax,
		func(pid int) error {
			return testutil.WriteFile(t, filepath.Join(kdir, "cgroup.procs"), strconv.Itoa(pid))
		},
		func() (int, error) { return readInt(filepath.Join(kdir, "pids.current"), "") })
	kernEvents, _ := readInt(filepath.Join(kdir, "pids.events"), "max ")
	ents, _ := os.ReadDir(kdir)
	var files []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pids.") {
			files = append(files, e.Name())
		}
	}
	kern.kill()

	t.Logf("kernel pids files: %v", files)
	t.Logf("containerfs: %v; pids.events %d", oursRes, oursEvents)
	t.Logf("kernel:      %v; pids.events %d", kernRes, kernEvents)
	t.Logf("%-34s %14s %14s", "pids.max 20, 2000 forks", "containerfs", "kernel")
	row := func(name string, a, b any) { t.Logf("%-34s %14v %14v", name, a, b) }
	row("worst tasks over pids.max", max(0, oursRes.MaxLive-bombMax), max(0, kernRes.MaxLive-bombMax))
	row("max live (events) / (/proc)", fmt.Sprintf("%d / %d", oursRes.MaxLive, oursRes.MaxAlive), fmt.Sprintf("%d / %d", kernRes.MaxLive, kernRes.MaxAlive))
	row("time over pids.max", oursRes.OverTime.Round(time.Microsecond), kernRes.OverTime.Round(time.Microsecond))
	row("longest stretch over pids.max", oursRes.LongestOver.Round(time.Microsecond), kernRes.LongestOver.Round(time.Microsecond))
	row("refused child life, median", oursRes.MedianLife.Round(time.Microsecond), "never born")
	row("refused child life, max", oursRes.MaxLife.Round(time.Microsecond), "never born")
	row("event receipt lag, median", oursRes.MedianLag.Round(time.Microsecond), kernRes.MedianLag.Round(time.Microsecond))
	row("forks refused (pids.events)", oursEvents, kernEvents)
	row("bomb: forks ok / failed", fmt.Sprintf("%d / %d", oursRes.OK, oursRes.Failed), fmt.Sprintf("%d / %d", kernRes.OK, kernRes.Failed))
	row("bomb run time", oursRes.Elapsed.Round(time.Millisecond), kernRes.Elapsed.Round(time.Millisecond))
	row("worst 5 ms timer lateness", oursRes.MaxTimerDelay.Round(time.Microsecond), kernRes.MaxTimerDelay.Round(time.Microsecond))
	row("slowest pids.current read", oursRes.MaxReadDelay.Round(time.Microsecond), kernRes.MaxReadDelay.Round(time.Microsecond))

	if oursEvents != kernEvents {
		t.Errorf("pids.events: containerfs %d, kernel %d: want the same forks refused", oursEvents, kernEvents)
	}
	if oursRes.MaxTimerDelay > maxTimerLate {
		t.Errorf("a 5 ms timer fired %v late under containerfs, want at most %v", oursRes.MaxTimerDelay, maxTimerLate)
	}
}
