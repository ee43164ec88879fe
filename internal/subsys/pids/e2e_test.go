package pids

// End-to-end tests on a pids mount of a real daemon, with real processes.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

// container makes a container under a pids mount of a fresh daemon, and
// removes it when the test ends (after the test's processes are gone:
// cleanups run last-registered first).
func container(t *testing.T, name string) string {
	t.Helper()
	d := testutil.StartDaemon(t)
	mnt := d.Mount("pids")
	dir := filepath.Join(mnt, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond) // exits still on their way
		}
	})
	return dir
}

func readInt(path, prefix string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(b)), prefix))
}

// waitFor polls cond every 5 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs a command in its own process group, killed and reaped when
// the test ends.
func start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// TestAttachMayExceedForkIsKilled: moving tasks in is never refused, even
// over the limit; a fork over the limit is: the child dies of SIGKILL, the
// forking shell lives, and pids.events counts it.
func TestAttachMayExceedForkIsKilled(t *testing.T) {
	testutil.Short(t)
	dir := container(t, "c")
	testutil.MustWrite(t, filepath.Join(dir, "pids.max"), "2")
	var sleepers []*exec.Cmd
	for range 2 {
		sleepers = append(sleepers, start(t, "sleep", "60"))
	}
	sh := exec.Command("/bin/sh", "-c", `read x; sleep 60 & p=$!; wait $p; echo "$p $?"; read y; exit 0`)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, _ := sh.StdinPipe()
	stdout, _ := sh.StdoutPipe()
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		sh.Wait()
	})
	for _, c := range append(sleepers, sh) {
		testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(c.Process.Pid))
	}
	if n, err := readInt(filepath.Join(dir, "pids.current"), ""); err != nil || n != 3 {
		t.Fatalf("pids.current after moving 3 tasks in under pids.max 2: got %d, %v, want 3", n, err)
	}
	io.WriteString(stdin, "go\n")
	out := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		out <- strings.TrimSpace(s)
	}()
	var line string
	select {
	case line = <-out:
	case <-time.After(30 * time.Second):
		t.Fatal("the refused child was not killed within 30 s")
	}
	var pid, status int
	if _, err := fmt.Sscanf(line, "%d %d", &pid, &status); err != nil {
		t.Fatalf("shell said %q: %v", line, err)
	}
	if status != 128+int(syscall.SIGKILL) {
		t.Errorf("the refused child's exit status: got %d, want %d (SIGKILL)", status, 128+int(syscall.SIGKILL))
	}
	if n, err := readInt(filepath.Join(dir, "pids.events"), "max "); err != nil || n != 1 {
		t.Errorf("pids.events: got %d, %v, want 1", n, err)
	}
	if !waitFor(5*time.Second, func() bool {
		n, _ := readInt(filepath.Join(dir, "pids.current"), "")
		return n == 3
	}) {
		t.Errorf("pids.current did not settle at 3")
	}
	for _, c := range sleepers {
		if err := syscall.Kill(c.Process.Pid, 0); err != nil {
			t.Errorf("sleeper %d, moved in over the limit, was killed", c.Process.Pid)
		}
	}
	stdin.Close()
	if err := sh.Wait(); err != nil {
		t.Errorf("the forking shell: %v, want a clean exit", err)
	}
}

// Bounds for TestForkBomb. A refused child should die about one event round
// trip after its birth: tens of µs to a ms on a quiet machine. The bounds
// are loose because the machine is small and may be loaded by other work;
// the test logs the exact figures, and the event lag of its own connector
// socket at the same time, for comparison.
const (
	bombForks       = 2000
	bombMax         = 20
	maxMedianLife   = 50 * time.Millisecond
	maxKilledLife   = time.Second
	maxTimerLate    = 2 * time.Second
	maxSettleWithin = 10 * time.Second
)

// TestForkBomb runs a bounded fork bomb in a container with pids.max 20:
// never more than 20 live tasks for longer than an event round trip (give
// or take the machine's load), every refused fork counted in pids.events,
// and the machine responsive throughout.
func TestForkBomb(t *testing.T) {
	testutil.Short(t)
	dir := container(t, "bomb")
	testutil.MustWrite(t, filepath.Join(dir, "pids.max"), strconv.Itoa(bombMax))
	place := func(pid int) error {
		return testutil.WriteFile(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
	}
	current := func() (int, error) { return readInt(filepath.Join(dir, "pids.current"), "") }
	b, res := runBomb(t, bombForks, bombMax, place, current)
	t.Logf("containerfs: %v", res)
	t.Logf("containerfs: worst overshoot %d tasks over pids.max %d; a refused child lived at most %v (median %v)",
		max(0, res.MaxLive-bombMax), bombMax, res.MaxLife, res.MedianLife)

	if res.OK+res.Failed != bombForks {
		t.Errorf("bomb made %d+%d forks, want %d", res.OK, res.Failed, bombForks)
	}
	var sc procScanner
	var alive int
	if !waitFor(maxSettleWithin, func() bool {
		alive, _ = sc.count(b.pid, false)
		return alive <= bombMax
	}) {
		t.Fatalf("%d live tasks %v after the bomb, want at most %d", alive, maxSettleWithin, bombMax)
	}
	// The first 19 children live on (they sleep): with the bomb, 20.
	if alive != bombMax {
		t.Errorf("live tasks after the bomb: got %d, want %d (the bomb and %d children)", alive, bombMax, bombMax-1)
	}
	if n, err := current(); err != nil || n != alive {
		t.Errorf("pids.current: got %d, %v, want %d", n, err, alive)
	}
	events, err := readInt(filepath.Join(dir, "pids.events"), "max ")
	if want := res.OK - (alive - 1); err != nil || events != want {
		t.Errorf("pids.events: got %d, %v, want %d (forks %d, children alive %d)", events, err, want, res.OK, alive-1)
	}
	if res.MaxCurrent > bombMax {
		t.Errorf("pids.current read %d, over pids.max %d", res.MaxCurrent, bombMax)
	}
	if res.Lost == 0 {
		if res.Killed != events {
			t.Errorf("children killed: got %d, want %d (pids.events)", res.Killed, events)
		}
		if res.MedianLife > maxMedianLife || res.MaxLife > maxKilledLife {
			t.Errorf("refused children lived %v (median), %v (max), want at most %v and %v",
				res.MedianLife, res.MaxLife, maxMedianLife, maxKilledLife)
		}
	} else {
		t.Logf("the test's own connector lost events %d times: timeline figures are incomplete", res.Lost)
	}
	if res.MaxTimerDelay > maxTimerLate {
		t.Errorf("a 5 ms timer fired %v late during the bomb: the machine was not responsive", res.MaxTimerDelay)
	}
}

// threadHelper starts this test binary as a process that makes n new
// threads each time it is told to.
func threadHelper(t *testing.T, n int) (cmd *exec.Cmd, stdin io.Writer, out *bufio.Reader) {
	t.Helper()
	cmd = exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("PIDS_TEST_THREADS=%d", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	out = bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("thread helper: %q, %v", line, err)
	}
	return cmd, in, out
}

func threadCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitExit waits up to d for cmd to end and returns its wait status.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) (syscall.WaitStatus, bool) {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState.Sys().(syscall.WaitStatus), true
	case <-time.After(d):
		return 0, false
	}
}

// TestNewThreadOverLimitKillsProcess: a thread over the limit cannot be
// killed alone, so its whole process is (the kernel would fail its clone
// with EAGAIN; Go's runtime, like most, dies of that anyway).
func TestNewThreadOverLimitKillsProcess(t *testing.T) {
	testutil.Short(t)
	dir := container(t, "c")
	cmd, in, _ := threadHelper(t, 3)
	testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(cmd.Process.Pid))
	n := threadCount(t, cmd.Process.Pid)
	testutil.MustWrite(t, filepath.Join(dir, "pids.max"), strconv.Itoa(n+1))
	io.WriteString(in, "go\n")
	ws, ok := waitExit(t, cmd, 30*time.Second)
	if !ok {
		t.Fatalf("process over the limit by its threads was not killed (%d threads, pids.max %d)", threadCount(t, cmd.Process.Pid), n+1)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("process status: got %v, want killed by SIGKILL", ws)
	}
	if ev, err := readInt(filepath.Join(dir, "pids.events"), "max "); err != nil || ev < 1 {
		t.Errorf("pids.events: got %d, %v, want at least 1", ev, err)
	}
	if !waitFor(5*time.Second, func() bool {
		c, _ := readInt(filepath.Join(dir, "pids.current"), "")
		return c == 0
	}) {
		t.Errorf("pids.current did not return to 0")
	}
}

// TestThreadOfSplitProcessIsSpared: when only a process's leader thread
// was moved in (a write to tasks), its other threads are still in the
// root container; a new thread over the limit then is not killed, since
// that would kill threads of the root container too. It is charged.
func TestThreadOfSplitProcessIsSpared(t *testing.T) {
	testutil.Short(t)
	dir := container(t, "c")
	cmd, in, out := threadHelper(t, 2)
	before := threadCount(t, cmd.Process.Pid)
	if before < 2 {
		t.Fatalf("helper has %d threads, want several", before)
	}
	testutil.MustWrite(t, filepath.Join(dir, "tasks"), strconv.Itoa(cmd.Process.Pid)) // the leader only
	testutil.MustWrite(t, filepath.Join(dir, "pids.max"), "1")
	io.WriteString(in, "go\n")
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "started" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("a process with threads in the root container was killed")
	}
	if ev, err := readInt(filepath.Join(dir, "pids.events"), "max "); err != nil || ev < 1 {
		t.Errorf("pids.events: got %d, %v, want at least 1 (the limit was hit)", ev, err)
	}
	// Every spared thread is charged: the leader and at least one more.
	if c, err := readInt(filepath.Join(dir, "pids.current"), ""); err != nil || c < 2 {
		t.Errorf("pids.current: got %d, %v, want at least 2 (the leader and the spared threads)", c, err)
	}
}
