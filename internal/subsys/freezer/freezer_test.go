package freezer

// Unit tests on an in-process registry over a fake Stopper: the files, the
// hooks and the holder's SIGSTOP fallback.

import (
	"errors"
	"fmt"
	"github.com/containerfs/containerfs/internal/proc"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// fakeStopper is a Stopper whose tasks stop when the test says so.
type fakeStopper struct {
	mu     sync.Mutex
	held   map[int]bool
	status map[int]stopper.State // of held tasks; Stopping if absent
	errs   map[int]error
	waited [][]int // the batches WaitStopped was asked for
	stuck  bool    // WaitStopped's channels stay open
}

func newFakeStopper() *fakeStopper {
	return &fakeStopper{held: map[int]bool{}, status: map[int]stopper.State{}, errs: map[int]error{}}
}

func (s *fakeStopper) Stop(tid int, _ uint64, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason != holdReason {
		panic("reason " + reason)
	}
	s.held[tid] = true
}

func (s *fakeStopper) Resume(tid int, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, tid)
	delete(s.status, tid)
}

func (s *fakeStopper) Forget(tid int, reason string) { s.Resume(tid, reason) }

// WaitStopped implements Stopper: the test confirms stops itself. It
// records what it was asked; the channel is closed unless stuck is set.
func (s *fakeStopper) WaitStopped(tids []int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waited = append(s.waited, slices.Sorted(slices.Values(tids)))
	ch := make(chan struct{})
	if !s.stuck {
		close(ch)
	}
	return ch
}

func (s *fakeStopper) Status(tid int) (stopper.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held[tid] {
		return stopper.Running, nil
	}
	if st, ok := s.status[tid]; ok {
		return st, s.errs[tid]
	}
	return stopper.Stopping, nil
}

// fixture is a model with a freezer hierarchy over a fake Stopper, whose
// holder goroutine does not run: the test calls check. The signals the
// holder would send are recorded.
type fixture struct {
	*testutil.Model
	s    *Subsys
	h    *core.Hierarchy
	sp   *fakeStopper
	sigs []string // signals sent, "TGID/TID SIGNAME"
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{sp: newFakeStopper()}
	f.s = &Subsys{Stopper: f.sp, manual: true, Logf: t.Logf, procRoot: t.TempDir(),
		signal: func(tgid, tid int, sig syscall.Signal) error {
			f.sigs = append(f.sigs, fmt.Sprintf("%d/%d %s", tgid, tid, unix.SignalName(sig)))
			return nil
		}}
	f.Model = testutil.NewModel(t, f.s)
	f.h = f.Mount("freezer")
	return f
}

// holder is the hierarchy's holder, in the root's state.
func (f *fixture) holder() *holder { return f.s.state(f.h.Root()).h }

// process makes process pid (started at 10) known and moves it into c,
// unless c is nil: then it stays in the root.
func (f *fixture) process(c *core.Container, pid int) {
	f.T.Helper()
	f.Task(pid, pid, 10)
	if c != nil {
		f.Attach(c, pid)
	}
}

// set writes state to c's freezer.state; the test fails on an error.
func (f *fixture) set(c *core.Container, state string) {
	f.T.Helper()
	f.MustWrite(c, "freezer.state", state)
}

// files checks state, self_freezing and parent_freezing of c.
func (f *fixture) files(c *core.Container, state, self, parent string) {
	f.T.Helper()
	got := []string{f.Read(c, "freezer.state"), f.Read(c, "freezer.self_freezing"), f.Read(c, "freezer.parent_freezing")}
	want := []string{state + "\n", self + "\n", parent + "\n"}
	if !slices.Equal(got, want) {
		f.T.Errorf("%s: state, self_freezing, parent_freezing: got %q, want %q", c.Path(), got, want)
	}
}

// wanted lists the TIDs held in the Stopper, sorted.
func (f *fixture) wanted() []int {
	f.sp.mu.Lock()
	defer f.sp.mu.Unlock()
	var tids []int
	for tid := range f.sp.held {
		tids = append(tids, tid)
	}
	slices.Sort(tids)
	return tids
}

func (f *fixture) wantHeld(tids ...int) {
	f.T.Helper()
	if got := f.wanted(); !slices.Equal(got, tids) {
		f.T.Errorf("tasks to freeze: got %v, want %v", got, tids)
	}
}

// stopAll plays the Stopper: every held task is reported stopped.
func (f *fixture) stopAll() { f.stopped(f.wanted()...) }

// stopped plays the Stopper: tids are reported stopped.
func (f *fixture) stopped(tids ...int) {
	f.sp.mu.Lock()
	defer f.sp.mu.Unlock()
	for _, tid := range tids {
		f.sp.status[tid] = stopper.Stopped
	}
}

func TestFiles(t *testing.T) {
	f := newFixture(t)
	root := f.h.Root()
	for _, bf := range f.h.Files(root) {
		if strings.HasPrefix(bf.Name, "freezer.") {
			t.Errorf("root has %s; cgroup v1 has no freezer files in the root", bf.Name)
		}
	}
	a := f.Mkdir(root, "a")
	f.files(a, "THAWED", "0", "0")
	tests := []struct {
		write string
		err   error
		state string
	}{
		{write: "FREEZING", err: syscall.EINVAL, state: "THAWED"},
		{write: "frozen", err: syscall.EINVAL, state: "THAWED"},
		{write: "", state: "THAWED"}, // a write of nothing reaches no handler: no error, nothing changes
		{write: "\n", err: syscall.EINVAL, state: "THAWED"},
		{write: "FROZEN\xc2\xa0", err: syscall.EINVAL, state: "THAWED"}, // UTF-8 U+00A0 is no kernel space
		{write: "FROZEN\x00junk", state: "FROZEN"},                      // the handler sees a C string
		{write: "THAWED", state: "THAWED"},
		{write: "FROZEN THAWED", err: syscall.EINVAL, state: "THAWED"},
		{write: " FROZEN\n", state: "FROZEN"}, // empty: frozen at once
		{write: "1", err: syscall.EINVAL, state: "FROZEN"},
		{write: "THAWED\n", state: "THAWED"},
	}
	for _, tc := range tests {
		err := f.Write(a, "freezer.state", tc.write)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("write %q: got error %v, want %v", tc.write, err, tc.err)
		}
		if got := f.Read(a, "freezer.state"); got != tc.state+"\n" {
			t.Errorf("after writing %q: got %q, want %q", tc.write, got, tc.state)
		}
	}
	for _, name := range []string{"freezer.self_freezing", "freezer.parent_freezing"} {
		if err := f.Write(a, name, "1"); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("write %s: got %v, want EINVAL (read-only)", name, err)
		}
	}
}

func TestFreezeThawModel(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.process(a, 100)
	f.process(a, 101)
	f.process(nil, 1) // in the root: never frozen
	f.set(a, "FROZEN")
	f.wantHeld(100, 101)
	f.files(a, "FREEZING", "1", "0")
	f.stopAll()
	f.files(a, "FROZEN", "1", "0")

	// A task moved in makes it FREEZING again until it is stopped.
	f.process(a, 102)
	f.wantHeld(100, 101, 102)
	f.files(a, "FREEZING", "1", "0")
	f.stopAll()
	f.files(a, "FROZEN", "1", "0")

	// A task born there (its parent forked before it was stopped).
	f.Fork(100, 103, 103, 11)
	f.wantHeld(100, 101, 102, 103)
	f.files(a, "FREEZING", "1", "0")
	f.stopAll()

	// A task moved out thaws; one that exits is forgotten.
	f.Attach(f.h.Root(), 102)
	f.Exit(103)
	f.wantHeld(100, 101)
	f.files(a, "FROZEN", "1", "0")

	f.set(a, "THAWED")
	f.wantHeld()
	f.files(a, "THAWED", "0", "0")
	// Writing the same state again changes nothing.
	f.set(a, "THAWED")
	f.wantHeld()
}

func TestNested(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	b := f.Mkdir(a, "b")
	c := f.Mkdir(b, "c")
	f.process(a, 100)
	f.process(b, 200)
	f.process(c, 300)

	f.set(a, "FROZEN")
	f.wantHeld(100, 200, 300)
	f.stopAll()
	f.files(a, "FROZEN", "1", "0")
	f.files(b, "FROZEN", "0", "1")
	f.files(c, "FROZEN", "0", "1")

	// Thawing a child cannot override a frozen parent.
	f.set(b, "THAWED")
	f.wantHeld(100, 200, 300)
	f.files(b, "FROZEN", "0", "1")

	// b frozen itself too: thawing a leaves b and c frozen.
	f.set(b, "FROZEN")
	f.files(b, "FROZEN", "1", "1")
	f.set(a, "THAWED")
	f.wantHeld(200, 300)
	f.files(a, "THAWED", "0", "0")
	f.files(b, "FROZEN", "1", "0")
	f.files(c, "FROZEN", "0", "1")

	// A parent's state covers its children's tasks: a task of c not yet
	// stopped keeps b FREEZING.
	f.process(c, 301)
	f.files(b, "FREEZING", "1", "0")
	f.files(c, "FREEZING", "0", "1")
	f.stopAll()
	f.files(b, "FROZEN", "1", "0")

	f.set(b, "THAWED")
	f.wantHeld()
	f.files(c, "THAWED", "0", "0")
}

// TestReadStat: the holder reads a thread's state within its thread group.
func TestReadStat(t *testing.T) {
	f := newFixture(t)
	f.procTask(100, 101, 't')
	if st, err := readStat(f.s.procRoot, 100, 101); err != nil || st.State != 't' || st.TID != 101 {
		t.Errorf("readStat: got %+v, %v, want thread 101 in state t", st, err)
	}
	if _, err := readStat(f.s.procRoot, 200, 101); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("readStat of a thread of another group: got %v, want ENOENT", err)
	}
	if tids, err := proc.Threads(f.s.procRoot, 100); err != nil || !slices.Equal(tids, []int{101}) {
		t.Errorf("threads: got %v, %v, want [101]", tids, err)
	}
}

// procTask writes a fake /proc/TGID/task/TID/stat in state st.
func (f *fixture) procTask(tgid, tid int, st byte) {
	f.T.Helper()
	dir := filepath.Join(f.s.procRoot, fmt.Sprint(tgid), "task", fmt.Sprint(tid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.T.Fatal(err)
	}
	line := fmt.Sprintf("%d (traced) %c 1 %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 10 0 0\n", tid, st, tgid, tgid)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
		f.T.Fatal(err)
	}
}

// failTraced makes the Stopper report tid as held by another tracer.
func (f *fixture) failTraced(tid int) {
	f.sp.mu.Lock()
	defer f.sp.mu.Unlock()
	f.sp.status[tid] = stopper.Failed
	f.sp.errs[tid] = fmt.Errorf("PTRACE_SEIZE: %w (traced by another process?)", syscall.EPERM)
}

func (f *fixture) signals(want ...string) {
	f.T.Helper()
	if !slices.Equal(f.sigs, want) {
		f.T.Errorf("signals sent: got %q, want %q", f.sigs, want)
	}
	f.sigs = nil
}

// TestSigstopFallback: a process the Stopper cannot seize (another tracer
// holds it) is stopped with SIGSTOP, only when every thread of it is to be
// frozen; a SIGCONT that resumed it is undone at the next look; the thaw
// sends one SIGCONT.
func TestSigstopFallback(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.process(a, 100)
	f.Fork(100, 101, 100, 11) // a thread of 100
	f.procTask(100, 100, 'R')
	f.procTask(100, 101, 'R')
	f.process(a, 200) // an ordinary task, which the Stopper stops
	// Thread 101 stays in the root: SIGSTOP would stop it too.
	f.Attach(f.h.Root(), 101)
	f.set(a, "FROZEN")
	f.wantHeld(100, 200)
	f.failTraced(100)
	f.stopped(200)
	if next, _ := f.holder().check(); next == 0 {
		t.Errorf("check: nothing to look at again, with a task not stopped")
	}
	f.signals()
	f.files(a, "FREEZING", "1", "0")

	// With thread 101 in the container too, the process may be stopped.
	f.Attach(a, 101)
	f.failTraced(101)
	f.holder().check()
	f.oneSignal(100, "SIGSTOP")
	f.files(a, "FREEZING", "1", "0") // not seen stopped yet
	f.procTask(100, 100, 't')
	f.procTask(100, 101, 't')
	if next, _ := f.holder().check(); next == 0 {
		t.Errorf("check: nothing to look at again, with a SIGSTOP to watch")
	}
	f.signals()
	f.files(a, "FROZEN", "1", "0")

	// Someone sends SIGCONT: stopped again at the next look.
	f.procTask(100, 101, 'R')
	f.holder().check()
	f.signals("100/101 SIGSTOP")
	f.files(a, "FREEZING", "1", "0")
	f.procTask(100, 101, 't')
	f.holder().check()
	f.files(a, "FROZEN", "1", "0")

	// Thaw: one SIGCONT for the process, and nothing left to watch.
	f.set(a, "THAWED")
	f.wantHeld()
	if next, _ := f.holder().check(); next != 0 {
		t.Errorf("check after thaw: look again in %v, want only when woken", next)
	}
	f.oneSignal(100, "SIGCONT")
}

// oneSignal checks that one signal, sig, was sent, to a thread of process
// tgid.
func (f *fixture) oneSignal(tgid int, sig string) {
	f.T.Helper()
	if len(f.sigs) != 1 || !strings.HasPrefix(f.sigs[0], fmt.Sprintf("%d/", tgid)) || !strings.HasSuffix(f.sigs[0], " "+sig) {
		f.T.Errorf("signals sent: got %q, want one %s to process %d", f.sigs, sig, tgid)
	}
	f.sigs = nil
}

// TestCheckSleeps: with every frozen task stopped, the holder has nothing
// to look at until woken (no polling while frozen).
func TestCheckSleeps(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.process(a, 100)
	f.set(a, "FROZEN")
	if next, _ := f.holder().check(); next != fastLook {
		t.Errorf("check while stopping: look again in %v, want %v", next, fastLook)
	}
	f.stopAll()
	if next, _ := f.holder().check(); next != 0 {
		t.Errorf("check while frozen: look again in %v, want only when woken", next)
	}
	f.files(a, "FROZEN", "1", "0")
	f.signals()
}

// TestUnmountLetsGo: the root's Destroy drops every hold.
func TestUnmountLetsGo(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.process(a, 100)
	f.set(a, "FROZEN")
	f.wantHeld(100)
	h := f.holder()
	f.s.Destroy(f.h.Root())
	f.wantHeld()
	if _, closed := h.check(); !closed {
		t.Errorf("holder not closed after the root's Destroy")
	}
}

// TestWriteWaitsForStops: a write of FROZEN waits for the subtree's tasks
// to stop, for at most freezeWait; a write of THAWED does not wait.
func TestWriteWaitsForStops(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	b := f.Mkdir(a, "b")
	f.process(a, 100)
	f.process(b, 200)
	f.process(nil, 1)
	f.set(a, "FROZEN")
	if want := [][]int{{100, 200}}; !slices.EqualFunc(f.sp.waited, want, slices.Equal) {
		t.Errorf("WaitStopped asked for %v, want %v", f.sp.waited, want)
	}
	f.set(a, "THAWED")
	if len(f.sp.waited) != 1 {
		t.Errorf("THAWED waited for stops: %v", f.sp.waited)
	}

	f.sp.stuck = true
	start := time.Now()
	f.set(b, "FROZEN")
	if took := time.Since(start); took < freezeWait {
		t.Errorf("write of FROZEN with tasks not stopping returned after %v, want at least %v", took, freezeWait)
	}
	f.files(b, "FREEZING", "1", "0")
}

// TestWorkerLetsGoOnClose: the holder's worker, stopped by the root's
// Destroy, looks a last time: a process it stopped with SIGSTOP gets its
// SIGCONT, and the loop ends.
func TestWorkerLetsGoOnClose(t *testing.T) {
	var mu sync.Mutex
	var sigs []string
	h := newHolder(newFakeStopper(), t.TempDir(), t.Logf, func(tgid, tid int, sig syscall.Signal) error {
		mu.Lock()
		defer mu.Unlock()
		sigs = append(sigs, fmt.Sprintf("%d/%d %s", tgid, tid, unix.SignalName(sig)))
		return nil
	})
	task := &core.Task{TID: 100, TGID: 100, Start: 10}
	h.mu.Lock()
	h.want[task] = struct{}{}
	h.sigstopped[task] = true
	h.mu.Unlock()
	h.w.Start(h.run)
	h.close()
	select {
	case <-h.w.Stop():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder's worker did not end after close")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"100/100 SIGCONT"}; !slices.Equal(sigs, want) {
		t.Errorf("signals at close: got %q, want %q", sigs, want)
	}
}
