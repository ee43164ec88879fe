package cpuset

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/subsys/cpulist"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// BenchmarkCheckTask is the checker's cost per tracked task and pass when
// nothing has to be corrected: one sched_getaffinity and the bookkeeping.
// A pass over N tasks costs N times this.
func BenchmarkCheckTask(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	k := newLinuxKernel()
	topo, _ := k.Topology()
	e := newEnforcer(k, topo, time.Hour, b.Logf)
	tid := unix.Gettid()
	cur, err := k.Affinity(tid)
	if err != nil {
		b.Fatal(err)
	}
	tr := &tracked{cpus: cur, want: cur}
	e.tasks[tid] = tr
	for b.Loop() {
		e.mu.Lock()
		e.checkLocked(tid, tr)
		e.mu.Unlock()
	}
}

// BenchmarkSetAffinity is what an attach, a fork or a cpus change costs
// per task: sched_setaffinity of a sleeping process (started here) to one
// CPU and back.
func BenchmarkSetAffinity(b *testing.B) {
	online, err := cpulist.OnlineCPUs()
	if err != nil || online.Count() < 2 {
		b.Skip("needs two online CPUs")
	}
	sleep := exec.Command("sleep", "300")
	if err := sleep.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	k := newLinuxKernel()
	l := online.List()
	sets := []cpulist.Set{cpulist.Of(l[0]), cpulist.Of(l[len(l)-1])}
	i := 0
	for b.Loop() {
		if err := k.SetAffinity(sleep.Process.Pid, sets[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAttach moves a sleeping process (started here) back and forth
// between two cpusets on different CPUs by writing its PID to their tasks
// files: through containerfs with the cpuset subsystem, through
// containerfs with debug only (the FUSE and core floor, no affinity), and
// through the kernel's own cgroup v1 cpuset in two children named
// bench-cpuset-* that the benchmark creates and removes.
func BenchmarkAttach(b *testing.B) {
	online, err := cpulist.OnlineCPUs()
	if err != nil || online.Count() < 2 {
		b.Skip("needs two online CPUs")
	}
	l := online.List()
	lo, hi := strconv.Itoa(l[0]), strconv.Itoa(l[len(l)-1])

	b.Run("containerfs-cpuset", func(b *testing.B) {
		d := testutil.StartDaemon(b)
		mnt := d.Mount("cpuset")
		benchMoves(b, mnt, lo, hi, true)
	})
	b.Run("containerfs-debug", func(b *testing.B) {
		d := testutil.StartDaemon(b)
		mnt := d.Mount("debug")
		benchMoves(b, mnt, lo, hi, false)
	})
	b.Run("kernel", func(b *testing.B) {
		const kroot = "/sys/fs/cgroup/cpuset"
		if _, err := os.Stat(filepath.Join(kroot, "cpuset.cpus")); err != nil {
			b.Skip("no kernel cgroup v1 cpuset at " + kroot)
		}
		benchMoves(b, kroot, lo, hi, true)
	})
}

// benchMoves makes two cpusets bench-cpuset-<pid>-{a,b} under root, moves
// a sleep between them b.N times, and removes everything it made, whatever
// happens: the process is killed (so that it leaves the cpusets) before
// they are removed.
func benchMoves(b *testing.B, root, lo, hi string, cpuset bool) {
	base := fmt.Sprintf("bench-cpuset-%d-", os.Getpid())
	dirs := []string{filepath.Join(root, base+"a"), filepath.Join(root, base+"b")}
	sleep := exec.Command("sleep", "300")
	if err := sleep.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		sleep.Process.Kill()
		sleep.Wait()
		for _, d := range dirs {
			for range 100 {
				if err := os.Remove(d); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	for i, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if cpuset {
			cpus := lo
			if i == 1 {
				cpus = hi
			}
			if err := testutil.WriteFile(b, filepath.Join(d, "cpuset.cpus"), cpus); err != nil {
				b.Fatal(err)
			}
			if err := testutil.WriteFile(b, filepath.Join(d, "cpuset.mems"), "0"); err != nil {
				b.Fatal(err)
			}
		}
	}
	tasks := []string{filepath.Join(dirs[0], "tasks"), filepath.Join(dirs[1], "tasks")}
	pid := []byte(strconv.Itoa(sleep.Process.Pid))
	files := make([]*os.File, 2)
	for i, p := range tasks {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	i := 0
	for b.Loop() {
		// One write(2) per move, as echo PID > tasks does after its open.
		if _, err := syscall.Pwrite(int(files[i%2].Fd()), pid, 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if cpuset {
		want := []string{lo, hi}[(i+1)%2]
		if got, err := affinity(sleep.Process.Pid); err != nil || got != want {
			b.Errorf("after %d moves: got affinity %q (%v), want %q", i, got, err, want)
		}
	}
}
