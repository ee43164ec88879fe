package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
)

// fakeProc is a /proc tree holding the tasks a scan should find.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc { return &fakeProc{t: t, root: t.TempDir()} }

// add writes task tid of thread group tgid, whose process's parent is ppid,
// started at start (clock ticks).
func (p *fakeProc) add(tid, tgid, ppid int, start uint64) {
	stat := fmt.Sprintf("%d (t) S %d 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", tid, ppid, start)
	status := fmt.Sprintf("Name:\tt\nTgid:\t%d\nPid:\t%d\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", tgid, tid)
	// As in /proc, a thread is under its group's task/ and, hidden from
	// listings there, at the top level too.
	for _, dir := range []string{
		filepath.Join(p.root, fmt.Sprint(tgid), "task", fmt.Sprint(tid)),
		filepath.Join(p.root, fmt.Sprint(tid)),
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.t.Fatal(err)
		}
		for name, body := range map[string]string{"stat": stat, "status": status} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				p.t.Fatal(err)
			}
		}
	}
}

func (p *fakeProc) remove(tid, tgid int) {
	os.RemoveAll(filepath.Join(p.root, fmt.Sprint(tgid), "task", fmt.Sprint(tid)))
	os.RemoveAll(filepath.Join(p.root, fmt.Sprint(tid)))
}

// world is a registry with one hierarchy holding container /c, fed by a
// tracker over a fake /proc.
type world struct {
	t    *testing.T
	proc *fakeProc
	reg  *core.Registry
	h    *core.Hierarchy
	c    *core.Container
	tr   *tracker
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, proc: newFakeProc(t)}
	w.reg = core.NewRegistry(core.ProcFS{Root: w.proc.root})
	var err error
	if w.h, err = w.reg.Mount("none,name=track"); err != nil {
		t.Fatal(err)
	}
	if w.c, err = w.reg.Mkdir(w.h.Root(), "c", 0o755, core.Caller{}); err != nil {
		t.Fatal(err)
	}
	w.tr = &tracker{reg: w.reg, proc: w.proc.root, logf: t.Logf}
	return w
}

// ns converts clock ticks to a connector timestamp (boot offset 0).
func ns(ticks uint64) uint64 { return ticks * 1e7 }

func fork(parent, child, tgid int, start uint64) procevent.Event {
	return procevent.Event{What: procevent.Fork, ParentPID: parent, ParentTGID: parent, PID: child, TGID: tgid, Timestamp: ns(start)}
}

func exit(tid, tgid int, at uint64) procevent.Event {
	return procevent.Event{What: procevent.Exit, PID: tid, TGID: tgid, Timestamp: ns(at)}
}

// where is task tid's path in the hierarchy, or "" if unknown.
func (w *world) where(tid int) string {
	ws, ok := w.reg.Where(tid)
	if !ok {
		return ""
	}
	for _, x := range ws {
		if x.Hierarchy == w.h {
			return x.Path
		}
	}
	return "?"
}

// put moves task tid into /c through the model, as a tasks write does.
func (w *world) put(tid int) {
	w.t.Helper()
	if err := w.reg.Attach(w.c, core.Caller{}, tid, false); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) want(tid int, path string) {
	w.t.Helper()
	if got := w.where(tid); got != path {
		w.t.Errorf("task %d: got %q, want %q", tid, got, path)
	}
}

func TestTrackerEvents(t *testing.T) {
	w := newWorld(t)
	w.proc.add(100, 100, 1, 50) // a shell
	w.tr.resync()
	w.put(100)

	// fork: the child joins its parent's container.
	w.proc.add(101, 101, 100, 60)
	if w.tr.apply([]procevent.Event{fork(100, 101, 101, 60)}) {
		t.Error("fork of a known parent asked for a resync")
	}
	w.want(101, "/c")

	// thread clone: the event names the process's parent (1), yet the
	// thread joins its own group.
	w.proc.add(102, 101, 100, 61)
	w.tr.apply([]procevent.Event{fork(1, 102, 101, 61)})
	w.want(102, "/c")

	// exec changes nothing.
	w.tr.apply([]procevent.Event{{What: procevent.Exec, PID: 101, TGID: 101}})
	w.want(101, "/c")

	// exit, with parent fields 0 as the kernel sometimes sends them.
	w.tr.apply([]procevent.Event{exit(102, 101, 70), exit(101, 101, 71)})
	w.want(102, "")
	w.want(101, "")
	if got := w.c.NumTasks(); got != 1 {
		t.Errorf("tasks in /c: got %d, want 1", got)
	}
}

func TestTrackerPIDReuse(t *testing.T) {
	w := newWorld(t)
	w.proc.add(100, 100, 1, 50)
	w.proc.add(1, 1, 0, 1)
	w.tr.resync()
	w.put(100)
	w.tr.apply([]procevent.Event{fork(100, 200, 200, 60)})
	w.want(200, "/c")

	// 200's exit event was lost; PID 200 now belongs to a child of init.
	w.tr.apply([]procevent.Event{fork(1, 200, 200, 90)})
	w.want(200, "/")

	// A late exit of the old 200 must not remove the new one.
	w.tr.apply([]procevent.Event{exit(200, 200, 80)})
	w.want(200, "/")
	// Nor may a stale fork event of the old one bring it back.
	w.tr.apply([]procevent.Event{fork(100, 200, 200, 60)})
	w.want(200, "/")
}

func TestTrackerResyncAfterLoss(t *testing.T) {
	w := newWorld(t)
	w.proc.add(1, 1, 0, 1)
	w.proc.add(100, 100, 1, 50)
	w.proc.add(300, 300, 1, 55)
	w.tr.resync()
	w.put(100)
	w.put(300)

	// Events were lost meanwhile: 100 forked 101 (which forked 102 and
	// cloned a thread), and 300 exited.
	w.proc.add(101, 101, 100, 60)
	w.proc.add(102, 102, 101, 61)
	w.proc.add(103, 101, 100, 62)
	w.proc.remove(300, 300)
	src := procevent.NewFake()
	src.Fail(fmt.Errorf("overrun: %w", procevent.ErrLost))
	src.Close()
	w.tr.src = src
	w.tr.run()

	for _, tid := range []int{100, 101, 102, 103} {
		w.want(tid, "/c")
	}
	w.want(300, "")
	w.want(1, "/")
}

func TestTrackerOutOfOrder(t *testing.T) {
	w := newWorld(t)
	w.proc.add(1, 1, 0, 1)
	w.proc.add(100, 100, 1, 50)
	w.tr.resync()
	w.put(100)

	// The grandchild's fork arrives before its parent's.
	w.proc.add(101, 101, 100, 60)
	w.proc.add(102, 102, 101, 61)
	src := procevent.NewFake([]procevent.Event{fork(101, 102, 102, 61)}, []procevent.Event{fork(100, 101, 101, 60)})
	src.Close()
	w.tr.src = src
	w.tr.run()

	w.want(101, "/c")
	w.want(102, "/c")
}

// TestTrackerFixtures runs the recorded kernel messages through the tracker:
// the recorder's child and the child's thread join the recorder's
// container, and the child leaves on its exit. (The recorded thread exit is
// of another thread than the recorded clone.)
func TestTrackerFixtures(t *testing.T) {
	var evs []procevent.Event
	for _, name := range []string{"fork", "thread", "exec", "thread_exit", "exit"} {
		b, err := os.ReadFile(filepath.Join("..", "procevent", "testdata", name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		e, err := procevent.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		evs = append(evs, e...)
	}
	if len(evs) < 4 || evs[0].What != procevent.Fork {
		t.Fatalf("fixtures: got %v", evs)
	}
	w := newWorld(t)
	parent := evs[0].ParentPID
	w.proc.add(parent, evs[0].ParentTGID, 1, 1)
	w.tr.resync()
	w.put(parent)
	w.tr.apply(evs[:2]) // the fork and the thread clone
	for _, e := range evs[:2] {
		w.want(e.PID, "/c")
	}
	w.tr.apply(evs[2:])
	w.want(evs[0].PID, "")
}

// TestTrackerExecFromThread: when a non-leader thread execs, the kernel
// kills the leader (an exit event for the group's ID) and the thread takes
// over the ID without an exit event of its own; the process must stay in
// its container.
func TestTrackerExecFromThread(t *testing.T) {
	w := newWorld(t)
	w.proc.add(1, 1, 0, 1)
	w.proc.add(100, 100, 1, 50)
	w.proc.add(101, 100, 1, 52)
	w.tr.resync()
	w.put(100)
	w.put(101)

	w.proc.remove(101, 100) // after the exec, /proc shows only 100
	if w.tr.apply([]procevent.Event{
		exit(100, 100, 60),
		{What: procevent.Exec, PID: 100, TGID: 100, Timestamp: ns(60)},
	}) {
		t.Error("exec from a thread asked for a resync")
	}
	w.want(100, "/c")
	w.want(101, "")
	if got := w.c.NumTasks(); got != 1 {
		t.Errorf("tasks in /c: got %d, want 1", got)
	}
}
