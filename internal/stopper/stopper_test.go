package stopper

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

func TestStopUsesNoCPUAndResumeRuns(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, startOf(t, pid), "cpu")
	waitStopped(t, s, 2*time.Second, pid)
	if got := procState(pid); got != "t" {
		t.Errorf("state of a stopped task: got %q, want %q", got, "t")
	}
	before := runTime(t, pid)
	time.Sleep(300 * time.Millisecond)
	if d := runTime(t, pid) - before; d > time.Millisecond {
		t.Errorf("CPU used while stopped: got %v, want at most 1ms", d)
	}
	s.Resume(pid, "cpu")
	if !eventually(2*time.Second, func() bool { return runTime(t, pid)-before > 5*time.Millisecond }) {
		t.Errorf("CPU used after resume: got %v, want more than 5ms", runTime(t, pid)-before)
	}
	if st, _ := s.Status(pid); st != Running {
		t.Errorf("status after resume: got %v, want %v", st, Running)
	}
	if got := f.seen(); len(got) != 0 {
		t.Errorf("parent saw %q, want nothing", got)
	}
}

func TestParentSeesNoStop(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	start := startOf(t, pid)
	for i := 0; i < 20; i++ {
		s.Stop(pid, start, "cpu")
		waitStopped(t, s, 2*time.Second, pid)
		s.Resume(pid, "cpu")
		if !eventually(2*time.Second, func() bool { return procState(pid) != "t" }) {
			t.Fatalf("cycle %d: still %q after resume", i, procState(pid))
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := f.seen(); len(got) != 0 {
		t.Errorf("parent's waitpid(WUNTRACED|WCONTINUED) saw %q, want nothing", got)
	}
	// The helper does report a real stop: the check above can fail.
	syscall.Kill(pid, syscall.SIGSTOP)
	f.expect(fmt.Sprintf("%d stopped %d", pid, syscall.SIGSTOP), 2*time.Second)
	syscall.Kill(pid, syscall.SIGCONT)
	f.expect(fmt.Sprintf("%d continued", pid), 2*time.Second)
}

func TestSIGCONTDoesNotResume(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, 0, "freezer")
	waitStopped(t, s, 2*time.Second, pid)
	before := runTime(t, pid)
	syscall.Kill(pid, syscall.SIGCONT)
	time.Sleep(200 * time.Millisecond)
	if d := runTime(t, pid) - before; d > time.Millisecond || procState(pid) != "t" {
		t.Errorf("after SIGCONT: ran %v, state %q; want no CPU, state t", d, procState(pid))
	}
	if !s.Stopped(pid) {
		t.Errorf("Stopped after SIGCONT: got false, want true")
	}
}

func TestSignalWhileStoppedIsDelivered(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, "trap 'echo TERM; exit 7' TERM; "+busy)
	pid := f.children[0]
	time.Sleep(50 * time.Millisecond) // let the shell set its trap
	s.Stop(pid, 0, "cpu")
	waitStopped(t, s, 2*time.Second, pid)
	syscall.Kill(pid, syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	if got := f.seen(); len(got) != 0 {
		t.Fatalf("held task reacted to SIGTERM: parent saw %q, want nothing yet", got)
	}
	s.Resume(pid, "cpu")
	f.expect(fmt.Sprintf("%d exited 7", pid), 3*time.Second)
}

func TestDefaultActionWhileStopped(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, 0, "cpu")
	waitStopped(t, s, 2*time.Second, pid)
	syscall.Kill(pid, syscall.SIGTERM)
	s.Resume(pid, "cpu")
	f.expect(fmt.Sprintf("%d signaled %d", pid, syscall.SIGTERM), 3*time.Second)
}

func TestExitWhileStoppedIsReaped(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, 0, "cpu")
	waitStopped(t, s, 2*time.Second, pid)
	syscall.Kill(pid, syscall.SIGKILL)
	// The parent hears of the death only once the tracer reaped it.
	f.expect(fmt.Sprintf("%d signaled %d", pid, syscall.SIGKILL), 3*time.Second)
	if !eventually(2*time.Second, func() bool { st, _ := s.Status(pid); return st == Gone }) {
		st, _ := s.Status(pid)
		t.Errorf("status after exit: got %v, want %v", st, Gone)
	}
	s.Forget(pid, "cpu")
	if !eventually(2*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tasks[pid] == nil
	}) {
		t.Errorf("a forgotten, exited task is still remembered")
	}
}

func TestGroupStopWhileHeld(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, 0, "cpu")
	waitStopped(t, s, 2*time.Second, pid)
	// Ctrl-Z while held: the job stops for real once we let go.
	syscall.Kill(pid, syscall.SIGSTOP)
	time.Sleep(50 * time.Millisecond)
	s.Resume(pid, "cpu")
	f.expect(fmt.Sprintf("%d stopped %d", pid, syscall.SIGSTOP), 3*time.Second)
	if !eventually(time.Second, func() bool { return procState(pid) == "T" }) {
		t.Errorf("state after resume into a group-stop: got %q, want T", procState(pid))
	}
	// A stop of a group-stopped task, and job control afterwards.
	s.Stop(pid, 0, "freezer")
	waitStopped(t, s, 2*time.Second, pid)
	s.Resume(pid, "freezer")
	if !eventually(time.Second, func() bool { return procState(pid) == "T" }) {
		t.Errorf("state after stop and resume of a group-stopped task: got %q, want T", procState(pid))
	}
	syscall.Kill(pid, syscall.SIGCONT)
	f.expect(fmt.Sprintf("%d continued", pid), 3*time.Second)
	before := runTime(t, pid)
	if !eventually(2*time.Second, func() bool { return runTime(t, pid)-before > 5*time.Millisecond }) {
		t.Errorf("task does not run after SIGCONT")
	}
}

func TestReasons(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, 0, "cpu")
	s.Stop(pid, 0, "freezer")
	waitStopped(t, s, 2*time.Second, pid)
	s.Resume(pid, "cpu")
	time.Sleep(100 * time.Millisecond)
	if !s.Stopped(pid) || procState(pid) != "t" {
		t.Errorf("after cpu lets go, freezer holds: got Stopped=%v state %q, want true, t", s.Stopped(pid), procState(pid))
	}
	if got := s.Held(pid); len(got) != 1 || got[0] != "freezer" {
		t.Errorf("Held: got %q, want [freezer]", got)
	}
	s.Resume(pid, "freezer")
	if !eventually(2*time.Second, func() bool { return procState(pid) != "t" }) {
		t.Errorf("after both let go: state %q, want running", procState(pid))
	}
}

func TestWrongStartIsNotStopped(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	// Recorded as starting before the task now holding the TID did: an
	// earlier task's record, so another task reused the TID.
	s.Stop(pid, startOf(t, pid)-50, "cpu")
	waitStopped(t, s, 2*time.Second, pid) // settles as Gone
	if st, _ := s.Status(pid); st != Gone {
		t.Errorf("status of a TID whose task started after the one recorded: got %v, want %v", st, Gone)
	}
	if procState(pid) == "t" {
		t.Errorf("the task now holding the TID was stopped")
	}
}

func TestRefusesDaemonAndItsChildren(t *testing.T) {
	s := newStopper(t)
	tid := syscall.Gettid()
	s.Stop(tid, 0, "cpu")
	s.Stop(os.Getpid(), 0, "cpu")
	if !eventually(2*time.Second, func() bool {
		a, _ := s.Status(tid)
		b, _ := s.Status(os.Getpid())
		return a == Failed && b == Failed
	}) {
		a, ea := s.Status(tid)
		b, eb := s.Status(os.Getpid())
		t.Fatalf("own threads: got %v (%v), %v (%v), want %v", a, ea, b, eb, Failed)
	}
	s.Forget(tid, "cpu")
	s.Forget(os.Getpid(), "cpu")
}

func TestManyTasks(t *testing.T) {
	testutil.Short(t) // three rounds of 40 tasks: about 2 s under -race
	s := newStopper(t)
	const n = 40
	scripts := make([]string, n)
	for i := range scripts {
		scripts[i] = busy
		if i%2 == 1 {
			scripts[i] = "while :; do sleep 0.01; done" // sleeping tasks stop too
		}
	}
	f := startFamily(t, scripts...)
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		for _, pid := range f.children {
			s.Stop(pid, 0, "freezer")
		}
		waitStopped(t, s, 5*time.Second, f.children...)
		stopTook := time.Since(t0)
		for _, pid := range f.children {
			if st := procState(pid); st != "t" {
				t.Errorf("round %d: task %d state %q, want t", round, pid, st)
			}
		}
		t0 = time.Now()
		for _, pid := range f.children {
			s.Resume(pid, "freezer")
		}
		if !eventually(5*time.Second, func() bool {
			for _, pid := range f.children {
				if procState(pid) == "t" {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("round %d: tasks still stopped after resume", round)
		}
		t.Logf("round %d: %d tasks stopped in %v, resumed in %v", round, n, stopTook, time.Since(t0))
	}
	if got := f.seen(); len(got) != 0 {
		t.Errorf("parent saw %q, want nothing", got[:min(len(got), 5)])
	}
	t.Logf("stats %+v", s.Stats())
}

func TestConcurrentCallers(t *testing.T) {
	s := newStopper(t)
	const n = 8
	scripts := make([]string, n)
	for i := range scripts {
		scripts[i] = busy
	}
	f := startFamily(t, scripts...)
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			reason := []string{"cpu", "freezer"}[g%2]
			for i := 0; i < 300; i++ {
				pid := f.children[r.Intn(n)]
				switch r.Intn(4) {
				case 0, 1:
					s.Stop(pid, 0, reason)
				case 2:
					s.Resume(pid, reason)
				case 3:
					s.Status(pid)
					select {
					case <-s.WaitStopped([]int{pid}):
					case <-time.After(time.Millisecond):
					}
				}
			}
			for _, pid := range f.children {
				s.Resume(pid, reason)
			}
		}(g)
	}
	wg.Wait()
	if !eventually(5*time.Second, func() bool {
		for _, pid := range f.children {
			if procState(pid) == "t" {
				return false
			}
		}
		return true
	}) {
		var states []string
		for _, pid := range f.children {
			st, _ := s.Status(pid)
			states = append(states, fmt.Sprintf("%d:%s/%v", pid, procState(pid), st))
		}
		t.Fatalf("tasks still stopped after every reason let go: %s", strings.Join(states, " "))
	}
	if got := f.seen(); len(got) != 0 {
		t.Errorf("parent saw %q, want nothing", got[:min(len(got), 5)])
	}
}

func TestCloseResumes(t *testing.T) {
	testutil.RequireRoot(t)
	s := New(Options{Logf: t.Logf})
	f := startFamily(t, busy, busy)
	for _, pid := range f.children {
		s.Stop(pid, 0, "cpu")
	}
	waitStopped(t, s, 2*time.Second, f.children...)
	s.Close()
	for _, pid := range f.children {
		if st := procState(pid); st == "t" {
			t.Errorf("task %d still stopped after Close", pid)
		}
	}
	s.Stop(f.children[0], 0, "cpu") // after Close: nothing
	time.Sleep(50 * time.Millisecond)
	if st := procState(f.children[0]); st == "t" {
		t.Errorf("Stop after Close stopped the task")
	}
}

// BenchmarkStopResume100 stops and resumes 100 busy tasks per iteration and
// reports the CPU time this process (the Stopper) spent per task and cycle.
func BenchmarkStopResume100(b *testing.B) {
	testutil.RequireRoot(b)
	s := New(Options{Logf: b.Logf})
	defer s.Close()
	const n = 100
	scripts := make([]string, n)
	for i := range scripts {
		scripts[i] = busy
	}
	f := startFamilyTB(b, scripts...)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, pid := range f.children {
			s.Stop(pid, 0, "cpu")
		}
		<-s.WaitStopped(f.children)
		for _, pid := range f.children {
			s.Resume(pid, "cpu")
		}
		for {
			running := true
			for _, pid := range f.children {
				if st, _ := s.Status(pid); st != Running {
					running = false
					break
				}
			}
			if running {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) -
		syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/task-cycle")
}

func TestStatusReachesStoppedWithoutWaiting(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy, busy)
	for _, pid := range f.children {
		s.Stop(pid, 0, "freezer")
	}
	// No WaitStopped: asking is enough for the news to come.
	if !eventually(3*time.Second, func() bool {
		for _, pid := range f.children {
			if !s.Stopped(pid) {
				return false
			}
		}
		return true
	}) {
		for _, pid := range f.children {
			st, err := s.Status(pid)
			t.Errorf("task %d: got %v (%v), want %v", pid, st, err, Stopped)
		}
	}
}

func TestZombieLeaderCountsAsStopped(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs python3 to make a process whose leader exits first")
	}
	s := newStopper(t)
	// The main thread leaves with SYS_exit (not exit_group): the leader is
	// a zombie while its other thread spins.
	f := startFamily(t, `exec /usr/bin/python3 -c '
import threading, ctypes
def spin():
    while True: pass
threading.Thread(target=spin).start()
ctypes.CDLL(None).syscall(60, 0)'`)
	pid := f.children[0]
	var thread int
	if !eventually(5*time.Second, func() bool {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, e := range ents {
			var tid int
			fmt.Sscan(e.Name(), &tid)
			if tid != pid {
				thread = tid
			}
		}
		return thread != 0 && procState(pid) == "Z"
	}) {
		t.Fatalf("no zombie leader with a live thread: leader %q", procState(pid))
	}
	s.Stop(pid, 0, "freezer")
	s.Stop(thread, 0, "freezer")
	waitStopped(t, s, 3*time.Second, pid, thread)
	if st, _ := s.Status(pid); st != Stopped {
		t.Errorf("zombie leader: got %v, want %v", st, Stopped)
	}
	if got := procState(thread); got != "t" {
		t.Errorf("its thread: state %q, want t", got)
	}
	s.Resume(thread, "freezer")
	s.Resume(pid, "freezer")
	if !eventually(2*time.Second, func() bool { return procState(thread) != "t" }) {
		t.Errorf("thread still stopped after resume")
	}
}

// TestLateStampedStartIsStopped: a start recorded from a fork event is
// stamped after the kernel's (ticks later under load): the task is the same
// and is stopped.
func TestLateStampedStartIsStopped(t *testing.T) {
	s := newStopper(t)
	f := startFamily(t, busy)
	pid := f.children[0]
	s.Stop(pid, startOf(t, pid)+5, "freezer")
	waitStopped(t, s, 2*time.Second, pid)
	if st, _ := s.Status(pid); st != Stopped {
		t.Errorf("status: got %v, want %v", st, Stopped)
	}
	s.Resume(pid, "freezer")
}
