package stopper

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
)

// The test binary doubles as a parent process: with STOPPER_HELPER=parent it
// starts the shell commands given as arguments (each its own child), prints
// their PIDs, then reports every status change its waitpid(WUNTRACED |
// WCONTINUED) sees, as a shell running jobs would. The test process is the
// tracer and only the grandparent, so no wait of its own competes with the
// Stopper's.
func TestMain(m *testing.M) {
	if os.Getenv("STOPPER_HELPER") == "parent" {
		os.Exit(parentMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func parentMain(scripts []string) int {
	out := bufio.NewWriter(os.Stdout)
	left := 0
	for _, sc := range scripts {
		cmd := exec.Command("/bin/sh", "-c", sc)
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(out, "error %v\n", err)
			out.Flush()
			return 1
		}
		fmt.Fprintf(out, "child %d\n", cmd.Process.Pid)
		left++
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	for left > 0 {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WUNTRACED|unix.WCONTINUED, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(out, "error %v\n", err)
			out.Flush()
			return 1
		}
		switch {
		case ws.Exited():
			fmt.Fprintf(out, "%d exited %d\n", pid, ws.ExitStatus())
			left--
		case ws.Signaled():
			fmt.Fprintf(out, "%d signaled %d\n", pid, int(ws.Signal()))
			left--
		case ws.Stopped():
			fmt.Fprintf(out, "%d stopped %d\n", pid, int(ws.StopSignal()))
		case ws.Continued():
			fmt.Fprintf(out, "%d continued\n", pid)
		}
		out.Flush()
	}
	return 0
}

// family is a parent helper and its children, all ended when the test ends.
type family struct {
	t        testing.TB
	parent   *exec.Cmd
	children []int
	lines    chan string
}

const busy = "while :; do :; done"

// startFamily starts a parent with one child per script.
func startFamily(t *testing.T, scripts ...string) *family { return startFamilyTB(t, scripts...) }

func startFamilyTB(t testing.TB, scripts ...string) *family {
	t.Helper()
	cmd := exec.Command(os.Args[0], scripts...)
	// The race detector sleeps a second when a process exits, to report
	// late races: not in the helper, which every test ends.
	cmd.Env = append(os.Environ(), "STOPPER_HELPER=parent", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &family{t: t, parent: cmd, lines: make(chan string, 1000)}
	t.Cleanup(f.kill)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			break
		}
		var pid int
		if _, err := fmt.Sscanf(line, "child %d", &pid); err != nil {
			t.Fatalf("parent helper: %q", line)
		}
		f.children = append(f.children, pid)
	}
	go func() {
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		close(f.lines)
	}()
	return f
}

// kill ends the children and the parent, by PID.
func (f *family) kill() {
	for _, pid := range f.children {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	done := make(chan struct{})
	go func() { f.parent.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		f.parent.Process.Kill()
		<-done
	}
}

// seen drains what the parent reported so far.
func (f *family) seen() []string {
	var got []string
	for {
		select {
		case l, ok := <-f.lines:
			if !ok {
				return got
			}
			got = append(got, l)
		default:
			return got
		}
	}
}

// expect waits for the parent to report want.
func (f *family) expect(want string, within time.Duration) {
	f.t.Helper()
	deadline := time.After(within)
	var got []string
	for {
		select {
		case l, ok := <-f.lines:
			if !ok {
				f.t.Fatalf("parent exited; got %q, want %q", got, want)
			}
			if l == want {
				return
			}
			got = append(got, l)
		case <-deadline:
			f.t.Fatalf("parent reported %q, want %q within %v", got, want, within)
		}
	}
}

// runTime is a task's CPU time so far, from /proc/TID/schedstat.
func runTime(t *testing.T, tid int) time.Duration {
	t.Helper()
	var buf [256]byte
	b, err := proc.ReadSmall(proc.Path("", tid, "schedstat"), buf[:])
	if err != nil {
		t.Fatalf("schedstat of %d: %v", tid, err)
	}
	ss, err := proc.ParseSchedstat(b)
	if err != nil {
		t.Fatalf("schedstat of %d: %v", tid, err)
	}
	return time.Duration(ss.Run)
}

// procState is the state letter of /proc/TID/stat ("R", "S", "t", ...),
// or "gone".
func procState(tid int) string {
	var buf [proc.StatBufSize]byte
	b, err := proc.ReadSmall(proc.Path("", tid, "stat"), buf[:])
	if err != nil {
		return "gone"
	}
	st, ok := proc.StateOf(b)
	if !ok {
		return "gone"
	}
	return string(st)
}

func startOf(t *testing.T, tid int) uint64 {
	t.Helper()
	st, err := proc.ReadStat("", tid)
	if err != nil {
		t.Fatal(err)
	}
	return st.Start
}

func newStopper(t *testing.T) *Stopper {
	t.Helper()
	testutil.RequireRoot(t)
	s := New(Options{Logf: t.Logf, RetryInterval: 50 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	return s
}

// waitStopped waits for the batch, failing the test after d.
func waitStopped(t *testing.T, s *Stopper, d time.Duration, tids ...int) {
	t.Helper()
	select {
	case <-s.WaitStopped(tids):
	case <-time.After(d):
		for _, tid := range tids {
			st, err := s.Status(tid)
			t.Logf("task %d: %v %v (proc state %s)", tid, st, err, procState(tid))
		}
		t.Fatalf("tasks %v not stopped within %v", tids, d)
	}
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}
