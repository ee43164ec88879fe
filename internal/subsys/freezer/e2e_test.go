package freezer

// End-to-end tests on a freezer mount of a real daemon, with real processes.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary double as a multi-threaded busy process.
func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv("FREEZER_TEST_BUSY_THREADS")); err == nil {
		runtime.GOMAXPROCS(n)
		for range n {
			go func() {
				for {
				}
			}()
		}
		select {}
	}
	os.Exit(m.Run())
}

// mount starts a daemon and mounts a freezer hierarchy.
func mount(t *testing.T) string {
	t.Helper()
	d := testutil.StartDaemon(t)
	return d.Mount("freezer")
}

// mkdir makes a container, removed when the test ends (after its
// processes, whose cleanups were registered later and run first).
func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

// child is a process the test started, in its own process group; it and
// everything it started are killed and reaped when the test ends.
type child struct {
	cmd    *exec.Cmd
	pid    int
	waited bool
}

func startProc(t *testing.T, env []string, name string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &child{cmd: cmd, pid: cmd.Process.Pid}
	t.Cleanup(func() {
		syscall.Kill(-p.pid, syscall.SIGKILL)
		if !p.waited {
			cmd.Wait()
		}
	})
	return p
}

// busy starts a shell spinning in a loop.
func busy(t *testing.T) *child {
	t.Helper()
	return startProc(t, nil, "/bin/sh", "-c", "while :; do :; done")
}

func move(t *testing.T, dir string, pid int) {
	t.Helper()
	testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
}

// waitState polls freezer.state until it reads want, for up to d, and
// returns how long that took.
func waitState(t *testing.T, dir, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	for time.Since(start) < d {
		if got = testutil.ReadFile(t, filepath.Join(dir, "freezer.state")); got == want+"\n" {
			return time.Since(start)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s/freezer.state: got %q after %v, want %s", dir, got, d, want)
	return 0
}

// taskStat is a thread's state and CPU time (utime+stime, clock ticks).
type taskStat struct {
	state byte
	cpu   uint64
}

func readTask(pid, tid int) (taskStat, error) {
	st, err := readStat("", pid, tid)
	if err != nil {
		return taskStat{}, err
	}
	return taskStat{state: st.State, cpu: st.UTime + st.STime}, nil
}

// cpu is the CPU time of process pid, all threads (utime+stime from
// /proc/PID/stat, clock ticks).
func cpu(t *testing.T, pid int) uint64 {
	t.Helper()
	st, err := proc.ReadStat("", pid)
	if err != nil {
		t.Fatalf("stat %d: %v", pid, err)
	}
	return st.UTime + st.STime
}

// states lists the state letter of every thread of pid.
func states(t *testing.T, pid int) string {
	t.Helper()
	tids, err := proc.Threads("", pid)
	if err != nil {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	var s []byte
	for _, tid := range tids {
		if ts, err := readTask(pid, tid); err == nil {
			s = append(s, ts.state)
		}
	}
	return string(s)
}

// cpuGrows tells whether pid's CPU time grows within d.
func cpuGrows(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	c0 := cpu(t, pid)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if cpu(t, pid) > c0 {
			return true
		}
	}
	return false
}

// quiet checks that the CPU time of every pid stays the same (within a tick
// or two: a sample can land mid-tick) for d, and that every thread reads
// state t (traced stop).
func quiet(t *testing.T, d time.Duration, pids ...int) {
	t.Helper()
	before := make([]uint64, len(pids))
	for i, pid := range pids {
		before[i] = cpu(t, pid)
	}
	time.Sleep(d)
	for i, pid := range pids {
		if after := cpu(t, pid); after > before[i]+2 {
			t.Errorf("process %d used %d ticks of CPU in %v while frozen", pid, after-before[i], d)
		}
		if st := states(t, pid); strings.Trim(st, "t") != "" {
			t.Errorf("process %d: thread states %q, want all t (traced stop)", pid, st)
		}
	}
}

const settle = 10 * time.Second // the longest a freeze or thaw may take here, on a loaded machine

// TestFreezeThaw: busy tasks frozen use no CPU for 5 s; thawed, they run
// again.
func TestFreezeThaw(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	var pids []int
	for range 3 {
		p := busy(t)
		move(t, dir, p.pid)
		pids = append(pids, p.pid)
	}
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	took := waitState(t, dir, "FROZEN", settle)
	t.Logf("3 busy tasks FROZEN in %v", took)
	if got := testutil.ReadFile(t, filepath.Join(dir, "freezer.self_freezing")); got != "1\n" {
		t.Errorf("self_freezing: got %q, want 1", got)
	}
	quiet(t, 5*time.Second, pids...)

	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "THAWED")
	if got := testutil.ReadFile(t, filepath.Join(dir, "freezer.state")); got != "THAWED\n" {
		t.Errorf("state after thaw: got %q, want THAWED", got)
	}
	for _, pid := range pids {
		if !cpuGrows(t, pid, settle) {
			t.Errorf("process %d did not run again after thaw (states %q)", pid, states(t, pid))
		}
	}
}

// TestInvisibleAndSIGCONT: the parent of a frozen task sees no stop through
// waitpid(WUNTRACED|WCONTINUED), and a stray SIGCONT does not thaw it.
func TestInvisibleAndSIGCONT(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	p := busy(t) // our child
	move(t, dir, p.pid)
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle)

	notSeen := func(when string) {
		t.Helper()
		var ws unix.WaitStatus
		pid, err := unix.Wait4(p.pid, &ws, unix.WNOHANG|unix.WUNTRACED|unix.WCONTINUED, nil)
		if err != nil || pid != 0 {
			t.Errorf("%s: waitpid(WUNTRACED|WCONTINUED) of the frozen child: got pid %d status %#x (stopped %v), %v; want nothing to report",
				when, pid, uint32(ws), ws.Stopped(), err)
		}
	}
	notSeen("frozen")

	if err := syscall.Kill(p.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	quiet(t, time.Second, p.pid)
	if got := testutil.ReadFile(t, filepath.Join(dir, "freezer.state")); got != "FROZEN\n" {
		t.Errorf("state after SIGCONT: got %q, want FROZEN", got)
	}
	notSeen("after SIGCONT")

	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "THAWED")
	if !cpuGrows(t, p.pid, settle) {
		t.Fatalf("child did not run after thaw (states %q)", states(t, p.pid))
	}
	notSeen("thawed")
}

// TestSignalsWaitForThaw: a SIGTERM sent to a frozen task is delivered when
// it is thawed, as the kernel freezer delivers it; its parent then gets its
// exit status (so the tracer let go of it properly).
func TestSignalsWaitForThaw(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	p := busy(t)
	move(t, dir, p.pid)
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(p.pid, &ws, unix.WNOHANG, nil); pid != 0 || err != nil {
		t.Fatalf("frozen task ended on SIGTERM before thaw: pid %d status %#x, %v", pid, uint32(ws), err)
	}
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "THAWED")
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		p.waited = true
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("wait: got %v, want death by SIGTERM", err)
		}
		if st := ee.Sys().(syscall.WaitStatus); !st.Signaled() || st.Signal() != syscall.SIGTERM {
			t.Errorf("exit status: got %v, want killed by SIGTERM", st)
		}
	case <-time.After(settle):
		t.Fatalf("thawed task did not die of its pending SIGTERM within %v (states %q)", settle, states(t, p.pid))
	}
}

// TestKillWhileFrozen: SIGKILL ends a frozen task, and its parent reaps it:
// the tracer collected the exit it was told of first.
func TestKillWhileFrozen(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	p := busy(t)
	move(t, dir, p.pid)
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	syscall.Kill(p.pid, syscall.SIGKILL)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
		p.waited = true
	case <-time.After(settle):
		t.Fatalf("parent could not reap its frozen child killed with SIGKILL within %v", settle)
	}
	waitState(t, dir, "FROZEN", settle)
}

// TestAttachToFrozen: a busy process moved into a frozen container is
// frozen; the container reads FROZEN again once it is.
func TestAttachToFrozen(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle) // empty: at once
	p := busy(t)
	if !cpuGrows(t, p.pid, settle) {
		t.Fatal("busy process does not run")
	}
	move(t, dir, p.pid)
	waitState(t, dir, "FROZEN", settle)
	quiet(t, time.Second, p.pid)
	// Moved out to the root, it thaws.
	testutil.MustWrite(t, filepath.Join(filepath.Dir(dir), "cgroup.procs"), strconv.Itoa(p.pid))
	if !cpuGrows(t, p.pid, settle) {
		t.Errorf("process moved out of a frozen container does not run (states %q)", states(t, p.pid))
	}
}

// TestNestedFreeze: freezing a parent freezes the child container (FROZEN,
// parent_freezing 1); thawing the child alone keeps it frozen.
func TestNestedFreeze(t *testing.T) {
	testutil.Short(t)
	a := mkdir(t, filepath.Join(mount(t), "a"))
	b := mkdir(t, filepath.Join(a, "b"))
	p := busy(t)
	move(t, b, p.pid)
	testutil.MustWrite(t, filepath.Join(a, "freezer.state"), "FROZEN")
	waitState(t, a, "FROZEN", settle)
	if got := testutil.ReadFile(t, filepath.Join(b, "freezer.state")); got != "FROZEN\n" {
		t.Errorf("child state: got %q, want FROZEN", got)
	}
	if got := testutil.ReadFile(t, filepath.Join(b, "freezer.parent_freezing")); got != "1\n" {
		t.Errorf("child parent_freezing: got %q, want 1", got)
	}
	if got := testutil.ReadFile(t, filepath.Join(b, "freezer.self_freezing")); got != "0\n" {
		t.Errorf("child self_freezing: got %q, want 0", got)
	}
	testutil.MustWrite(t, filepath.Join(b, "freezer.state"), "THAWED")
	if got := testutil.ReadFile(t, filepath.Join(b, "freezer.state")); got != "FROZEN\n" {
		t.Errorf("child state after thawing it alone: got %q, want FROZEN", got)
	}
	quiet(t, time.Second, p.pid)
	testutil.MustWrite(t, filepath.Join(a, "freezer.state"), "THAWED")
	if got := testutil.ReadFile(t, filepath.Join(b, "freezer.state")); got != "THAWED\n" {
		t.Errorf("child state after thawing the parent: got %q, want THAWED", got)
	}
	if !cpuGrows(t, p.pid, settle) {
		t.Errorf("task of the child container does not run after the parent's thaw")
	}
}

// TestThreads: every thread of a multi-threaded process is frozen and
// thawed (this test binary, spinning on 4 threads).
func TestThreads(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	p := startProc(t, []string{"FREEZER_TEST_BUSY_THREADS=4"}, os.Args[0])
	deadline := time.Now().Add(settle)
	for len(states(t, p.pid)) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("helper has threads %q, want at least 5", states(t, p.pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	move(t, dir, p.pid)
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	n := len(states(t, p.pid))
	quiet(t, time.Second, p.pid)
	t.Logf("froze %d threads", n)
	if n < 5 {
		t.Errorf("froze %d threads, want at least 5", n)
	}
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "THAWED")
	if !cpuGrows(t, p.pid, settle) {
		t.Errorf("helper does not run after thaw (states %q)", states(t, p.pid))
	}
}

// TestAlreadyTraced: a task that already has a tracer (here a tiny
// strace-like tracer in this test) cannot be seized; the freezer falls back
// to SIGSTOP, which the tracer passes on, and SIGCONT on thaw.
func TestAlreadyTraced(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	// The busy loop is a grandchild, so that only the tracer waits for it.
	sh := exec.Command("/bin/sh", "-c", "while :; do :; done & echo $!; wait")
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		sh.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	tracerDone := miniStrace(t, pid)
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-tracerDone:
		case <-time.After(settle):
			t.Errorf("test tracer did not end")
		}
	})
	move(t, dir, pid)
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	stays := func(when string) {
		t.Helper()
		c0 := cpu(t, pid)
		time.Sleep(time.Second)
		if c1 := cpu(t, pid); c1 > c0+2 {
			t.Errorf("%s: traced task used %d ticks while frozen by the SIGSTOP fallback", when, c1-c0)
		}
	}
	stays("frozen")
	// A SIGCONT undoes a SIGSTOP; the freezer stops it again at its next
	// look.
	syscall.Kill(pid, syscall.SIGCONT)
	time.Sleep(time.Second)
	stays("after SIGCONT")
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "THAWED")
	if !cpuGrows(t, pid, settle) {
		t.Errorf("traced task does not run after thaw (states %q)", states(t, pid))
	}
}

// miniStrace traces pid as strace does, from a locked thread: signals are
// passed on, a group-stop is held with PTRACE_LISTEN (so SIGCONT ends it).
// The returned channel is closed when pid has exited.
func miniStrace(t *testing.T, pid int) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	seized := make(chan error, 1)
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the tracer
		if err := unix.PtraceSeize(pid); err != nil {
			seized <- err
			return
		}
		seized <- nil
		for {
			var ws unix.WaitStatus
			_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || ws.Exited() || ws.Signaled() {
				return
			}
			if !ws.Stopped() {
				continue
			}
			sig := ws.StopSignal()
			switch event := (uint32(ws) >> 16) & 0xff; {
			case event == unix.PTRACE_EVENT_STOP && (sig == unix.SIGSTOP || sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU):
				unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_LISTEN, uintptr(pid), 0, 0, 0, 0)
			case event != 0:
				unix.PtraceCont(pid, 0)
			default:
				unix.PtraceCont(pid, int(sig)) // pass the signal on
			}
		}
	}()
	if err := <-seized; err != nil {
		t.Fatalf("test tracer: seize %d: %v", pid, err)
	}
	return done
}

// TestDaemonExitThaws: if the daemon goes away, its tracer thread goes with
// it and the kernel detaches every tracee: frozen tasks run again, never
// stay stuck.
func TestDaemonExitThaws(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	dir := filepath.Join(d.Mount("freezer"), "c")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := busy(t)
	move(t, dir, p.pid)
	testutil.MustWrite(t, filepath.Join(dir, "freezer.state"), "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	quiet(t, 200*time.Millisecond, p.pid)
	if err := d.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !cpuGrows(t, p.pid, settle) {
		t.Errorf("frozen task does not run after the daemon was killed (states %q)", states(t, p.pid))
	}
}

// TestStoppedStaysStopped: group-stops survive a freeze. A task stopped by
// SIGSTOP before the freeze is still stopped after the thaw (the kernel
// reinstates the group-stop at detach); a SIGCONT sent while it is frozen
// does not run it, and takes effect at the thaw.
func TestStoppedStaysStopped(t *testing.T) {
	testutil.Short(t)
	dir := mkdir(t, filepath.Join(mount(t), "c"))
	state := filepath.Join(dir, "freezer.state")
	p := busy(t)
	move(t, dir, p.pid)
	syscall.Kill(p.pid, syscall.SIGSTOP)
	deadline := time.Now().Add(settle)
	for states(t, p.pid) != "T" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGSTOP did not stop the task: %q", states(t, p.pid))
		}
		time.Sleep(time.Millisecond)
	}
	testutil.MustWrite(t, state, "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	if st := states(t, p.pid); st != "t" {
		t.Errorf("frozen stopped task: state %q, want t", st)
	}
	testutil.MustWrite(t, state, "THAWED")
	time.Sleep(300 * time.Millisecond)
	if st := states(t, p.pid); st != "T" {
		t.Errorf("thawed task that was stopped before the freeze: state %q, want T", st)
	}

	testutil.MustWrite(t, state, "FROZEN")
	waitState(t, dir, "FROZEN", settle)
	syscall.Kill(p.pid, syscall.SIGCONT)
	quiet(t, 500*time.Millisecond, p.pid)
	testutil.MustWrite(t, state, "THAWED")
	if !cpuGrows(t, p.pid, settle) {
		t.Errorf("task sent SIGCONT while frozen does not run after the thaw (states %q)", states(t, p.pid))
	}
}

// TestFrozenAndThrottled: the freezer and the cpu subsystem hold tasks in
// one Stopper. A task both frozen and throttled by a cpu quota stays
// stopped through every throttling period while frozen (the quota's
// releases do not thaw it), and after the thaw runs at its quota.
func TestFrozenAndThrottled(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	fz := mkdir(t, filepath.Join(d.Mount("freezer"), "c"))
	cg := mkdir(t, filepath.Join(d.Mount("cpu"), "q"))
	testutil.MustWrite(t, filepath.Join(cg, "cpu.cfs_period_us"), "100000")
	testutil.MustWrite(t, filepath.Join(cg, "cpu.cfs_quota_us"), "20000")
	p := busy(t)
	move(t, fz, p.pid)
	move(t, cg, p.pid)
	if !cpuGrows(t, p.pid, settle) {
		t.Fatalf("throttled task does not run (states %q)", states(t, p.pid))
	}

	testutil.MustWrite(t, filepath.Join(fz, "freezer.state"), "FROZEN")
	waitState(t, fz, "FROZEN", settle)
	quiet(t, 2*time.Second, p.pid) // 20 throttling periods
	if got := testutil.ReadFile(t, filepath.Join(fz, "freezer.state")); got != "FROZEN\n" {
		t.Errorf("state after 2 s of throttling periods: got %q, want FROZEN", got)
	}

	testutil.MustWrite(t, filepath.Join(fz, "freezer.state"), "THAWED")
	if !cpuGrows(t, p.pid, settle) {
		t.Fatalf("task does not run after the thaw (states %q)", states(t, p.pid))
	}
	// Still throttled: well under a full CPU over 2 s (quota 20%).
	c0, t0 := cpu(t, p.pid), time.Now()
	time.Sleep(2 * time.Second)
	share := float64(cpu(t, p.pid)-c0) / 100 / time.Since(t0).Seconds()
	t.Logf("CPU share after the thaw: %.0f%% (quota 20%%)", 100*share)
	if share > 0.5 {
		t.Errorf("CPU share after the thaw: %.0f%%, want about 20%% (the quota still holds)", 100*share)
	}
}
