package core

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// callLog is the log that several recording subsystems share, so that a test
// sees the order of their hooks across subsystems.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf(format, a...))
}

// take returns the calls logged since the last take and forgets them.
func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls := l.calls
	l.calls = nil
	return calls
}

// attachRecord is one TaskSet as a hook saw it.
type attachRecord struct {
	Dst  string
	TIDs []int
	Src  []string
}

// fakeSubsys is a recording subsystem: it implements Subsys and every
// optional hook, appends each call to log as "<name>: <hook> <path> [tids]",
// and can be told to refuse CanAttach or fail Create. Its hooks run with the
// registry lock held, so they read paths with PathLocked.
type fakeSubsys struct {
	name string
	log  *callLog

	// refuse, if not nil, is what CanAttach returns.
	refuse error
	// failCreate maps a container path to the error Create returns there.
	failCreate map[string]error
	// files is the control-file table.
	files []File

	attached []attachRecord // every TaskSet passed to Attach
}

var (
	_ Subsys         = (*fakeSubsys)(nil)
	_ CanAttacher    = (*fakeSubsys)(nil)
	_ AttachCanceler = (*fakeSubsys)(nil)
	_ Attacher       = (*fakeSubsys)(nil)
	_ Forker         = (*fakeSubsys)(nil)
	_ Exiter         = (*fakeSubsys)(nil)
)

func newFake(name string, log *callLog) *fakeSubsys {
	return &fakeSubsys{name: name, log: log}
}

func (f *fakeSubsys) Name() string { return f.name }

func (f *fakeSubsys) Create(c *Container) (any, error) {
	path := c.PathLocked()
	f.log.add("%s: create %s", f.name, path)
	if err := f.failCreate[path]; err != nil {
		return nil, err
	}
	return f.name + " state of " + path, nil
}

func (f *fakeSubsys) Destroy(c *Container) { f.log.add("%s: destroy %s", f.name, c.PathLocked()) }

func (f *fakeSubsys) Files() []File { return f.files }

func (f *fakeSubsys) CanAttach(ts *TaskSet) error {
	f.log.add("%s: can_attach %s %s", f.name, ts.Dst.PathLocked(), tidList(ts))
	return f.refuse
}

func (f *fakeSubsys) CancelAttach(ts *TaskSet) {
	f.log.add("%s: cancel_attach %s %s", f.name, ts.Dst.PathLocked(), tidList(ts))
}

func (f *fakeSubsys) Attach(ts *TaskSet) {
	f.log.add("%s: attach %s %s", f.name, ts.Dst.PathLocked(), tidList(ts))
	rec := attachRecord{Dst: ts.Dst.PathLocked()}
	for i, t := range ts.Tasks {
		rec.TIDs = append(rec.TIDs, t.TID)
		rec.Src = append(rec.Src, ts.Src[i].PathLocked())
		// Attach is told of a migration that has happened.
		if got := t.In(ts.Dst.Hierarchy()); got != ts.Dst {
			f.log.add("%s: attach: task %d is not in %s yet", f.name, t.TID, ts.Dst.PathLocked())
		}
	}
	f.attached = append(f.attached, rec)
}

func (f *fakeSubsys) Fork(c *Container, t *Task) {
	f.log.add("%s: fork %s %d", f.name, c.PathLocked(), t.TID)
}

func (f *fakeSubsys) Exit(c *Container, t *Task) {
	f.log.add("%s: exit %s %d", f.name, c.PathLocked(), t.TID)
	if t.In(c.Hierarchy()) == c {
		f.log.add("%s: exit: task %d is still a member of %s", f.name, t.TID, c.PathLocked())
	}
}

func tidList(ts *TaskSet) string {
	s := make([]string, len(ts.Tasks))
	for i, t := range ts.Tasks {
		s[i] = strconv.Itoa(t.TID)
	}
	return strings.Join(s, ",")
}

// plainSubsys implements only the required methods: the core must cope with
// a subsystem that has none of the optional hooks.
type plainSubsys struct{ name string }

func (p plainSubsys) Name() string                   { return p.name }
func (p plainSubsys) Create(*Container) (any, error) { return nil, nil }
func (p plainSubsys) Destroy(*Container)             {}
func (p plainSubsys) Files() []File                  { return nil }

// fakeProcs is the machine's task table, in memory.
type fakeProcs struct {
	mu    sync.Mutex
	tasks map[int]TaskInfo
}

var _ Procs = (*fakeProcs)(nil)

func newProcs(tasks ...TaskInfo) *fakeProcs {
	p := &fakeProcs{tasks: map[int]TaskInfo{}}
	p.set(tasks...)
	return p
}

// set adds or replaces tasks.
func (p *fakeProcs) set(tasks ...TaskInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ti := range tasks {
		p.tasks[ti.TID] = ti
	}
}

func (p *fakeProcs) remove(tid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tasks, tid)
}

func (p *fakeProcs) Task(tid int) (TaskInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ti, ok := p.tasks[tid]
	if !ok {
		return TaskInfo{}, fmt.Errorf("fake task %d: %w", tid, syscall.ESRCH)
	}
	return ti, nil
}

// Threads lists the group's TIDs in descending order, so that the leader
// (the lowest TID here) comes last and the core has to put it first.
func (p *fakeProcs) Threads(tgid int) ([]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var tids []int
	for tid, ti := range p.tasks {
		if ti.TGID == tgid {
			tids = append(tids, tid)
		}
	}
	if len(tids) == 0 {
		return nil, fmt.Errorf("fake thread group %d: %w", tgid, syscall.ESRCH)
	}
	slices.Sort(tids)
	slices.Reverse(tids)
	return tids, nil
}

// proc is a process's leader owned by uid, started at tick start.
func taskInfo(tid int, uid uint32, start uint64) TaskInfo {
	return TaskInfo{TID: tid, TGID: tid, Start: start, UID: uid, SUID: uid}
}

// thread is a thread of group tgid, owned by uid.
func thread(tid, tgid int, uid uint32, start uint64) TaskInfo {
	return TaskInfo{TID: tid, TGID: tgid, Start: start, UID: uid, SUID: uid}
}

// rootCaller is uid 0 writing from a thread the model does not know.
var rootCaller = Caller{PID: 1, UID: 0, GID: 0}

func mustMount(t *testing.T, r *Registry, opts string) *Hierarchy {
	t.Helper()
	h, err := r.Mount(opts)
	if err != nil {
		t.Fatalf("Mount(%q): got error %v, want nil", opts, err)
	}
	return h
}

func mustMkdir(t *testing.T, r *Registry, parent *Container, name string) *Container {
	t.Helper()
	c, err := r.Mkdir(parent, name, 0o755, rootCaller)
	if err != nil {
		t.Fatalf("Mkdir(%s, %q): got error %v, want nil", parent.Path(), name, err)
	}
	return c
}

// file finds control file name in c's directory.
func file(t *testing.T, c *Container, name string) *BoundFile {
	t.Helper()
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		t.Fatalf("Lookup(%s, %q): got %+v, %v, want a control file", c.Path(), name, e, ok)
	}
	return e.File
}

func mustRead(t *testing.T, r *Registry, c *Container, name string) string {
	t.Helper()
	s, err := r.ReadFile(c, file(t, c, name))
	if err != nil {
		t.Fatalf("ReadFile(%s, %s): got error %v, want nil", c.Path(), name, err)
	}
	return s
}

func mustWrite(t *testing.T, r *Registry, c *Container, name string, who Caller, data string) {
	t.Helper()
	if err := r.WriteFile(c, file(t, c, name), who, data); err != nil {
		t.Fatalf("WriteFile(%s, %s, %q): got error %v, want nil", c.Path(), name, data, err)
	}
}

// moveTo writes tid to dst's tasks file as root.
func moveTo(t *testing.T, r *Registry, dst *Container, tid int) {
	t.Helper()
	mustWrite(t, r, dst, "tasks", rootCaller, strconv.Itoa(tid))
}

// members lists c's TIDs, sorted.
func members(r *Registry, c *Container) []int {
	r.lock()
	defer r.unlock()
	var tids []int
	for _, t := range c.TasksLocked() {
		tids = append(tids, t.TID)
	}
	slices.Sort(tids)
	return tids
}

// pathOf is task tid's container path in h, or "" if it has none.
func pathOf(r *Registry, h *Hierarchy, tid int) string {
	ws, _ := r.Where(tid)
	for _, w := range ws {
		if w.Hierarchy == h {
			return w.Path
		}
	}
	return ""
}

// checkErrno fails t unless err is nil and want is 0, or err wraps want.
func checkErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s: got error %v, want nil", what, err)
		}
		return
	}
	var got syscall.Errno
	if !errors.As(err, &got) || got != want {
		t.Errorf("%s: got error %v (errno %d), want %v (errno %d)", what, err, got, want, want)
	}
}
