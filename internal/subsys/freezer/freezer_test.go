package freezer

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
)

// fakeProcs is a core.Procs over a map.
type fakeProcs = testutil.Procs

// fixture is a registry with a freezer hierarchy whose tracer does not
// run: the test plays its part.
type fixture struct {
	t     *testing.T
	s     *Subsys
	r     *core.Registry
	h     *core.Hierarchy
	procs fakeProcs
	tr    *tracer
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, procs: fakeProcs{}}
	f.s = &Subsys{manual: true, logFn: t.Logf}
	f.r = core.NewRegistry(f.procs, f.s)
	h, err := f.r.Mount("freezer")
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	f.tr = f.s.tr
	return f
}

func (f *fixture) mkdir(parent *core.Container, name string) *core.Container {
	f.t.Helper()
	c, err := f.r.Mkdir(parent, name, 0o755, core.Caller{})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// task makes process pid known, in c.
func (f *fixture) task(c *core.Container, pid int) {
	f.t.Helper()
	ti := core.TaskInfo{TID: pid, TGID: pid, Start: 10}
	f.procs[pid] = ti
	f.r.AddTask(ti)
	if c != nil {
		if err := f.r.Attach(c, core.Caller{}, pid, false); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) file(c *core.Container, name string) *core.BoundFile {
	f.t.Helper()
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		f.t.Fatalf("%s has no file %s", c.Path(), name)
	}
	return e.File
}

func (f *fixture) read(c *core.Container, name string) string {
	f.t.Helper()
	s, err := f.r.ReadFile(c, f.file(c, name))
	if err != nil {
		f.t.Fatalf("read %s: %v", name, err)
	}
	return s
}

func (f *fixture) write(c *core.Container, data string) error {
	f.t.Helper()
	return f.r.WriteFile(c, f.file(c, "freezer.state"), core.Caller{}, data)
}

// files checks state, self_freezing and parent_freezing of c.
func (f *fixture) files(c *core.Container, state, self, parent string) {
	f.t.Helper()
	got := []string{f.read(c, "freezer.state"), f.read(c, "freezer.self_freezing"), f.read(c, "freezer.parent_freezing")}
	want := []string{state + "\n", self + "\n", parent + "\n"}
	if !slices.Equal(got, want) {
		f.t.Errorf("%s: state, self_freezing, parent_freezing: got %q, want %q", c.Path(), got, want)
	}
}

// wanted lists the TIDs the tracer is asked to hold, sorted.
func (f *fixture) wanted() []int {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	var tids []int
	for t := range f.tr.want {
		tids = append(tids, t.TID)
	}
	slices.Sort(tids)
	return tids
}

func (f *fixture) wantHeld(tids ...int) {
	f.t.Helper()
	if got := f.wanted(); !slices.Equal(got, tids) {
		f.t.Errorf("tasks to freeze: got %v, want %v", got, tids)
	}
}

// stopAll plays the tracer: every wanted task is reported stopped, and
// every other one let go.
func (f *fixture) stopAll() {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	clear(f.tr.stopped)
	for t := range f.tr.want {
		f.tr.stopped[t] = struct{}{}
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
	a := f.mkdir(root, "a")
	f.files(a, "THAWED", "0", "0")
	tests := []struct {
		write string
		err   error
		state string
	}{
		{write: "FREEZING", err: syscall.EINVAL, state: "THAWED"},
		{write: "frozen", err: syscall.EINVAL, state: "THAWED"},
		{write: "", err: syscall.EINVAL, state: "THAWED"},
		{write: "FROZEN THAWED", err: syscall.EINVAL, state: "THAWED"},
		{write: " FROZEN\n", state: "FROZEN"}, // empty: frozen at once
		{write: "1", err: syscall.EINVAL, state: "FROZEN"},
		{write: "THAWED\n", state: "THAWED"},
	}
	for _, tc := range tests {
		err := f.write(a, tc.write)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("write %q: got error %v, want %v", tc.write, err, tc.err)
		}
		if got := f.read(a, "freezer.state"); got != tc.state+"\n" {
			t.Errorf("after writing %q: got %q, want %q", tc.write, got, tc.state)
		}
	}
	for _, name := range []string{"freezer.self_freezing", "freezer.parent_freezing"} {
		if err := f.r.WriteFile(a, f.file(a, name), core.Caller{}, "1"); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("write %s: got %v, want EINVAL (read-only)", name, err)
		}
	}
}

func TestFreezeThawModel(t *testing.T) {
	f := newFixture(t)
	a := f.mkdir(f.h.Root(), "a")
	f.task(a, 100)
	f.task(a, 101)
	f.task(nil, 1) // in the root: never frozen
	if err := f.write(a, "FROZEN"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld(100, 101)
	f.files(a, "FREEZING", "1", "0")
	f.stopAll()
	f.files(a, "FROZEN", "1", "0")

	// A task moved in makes it FREEZING again until it is stopped.
	f.task(a, 102)
	f.wantHeld(100, 101, 102)
	f.files(a, "FREEZING", "1", "0")
	f.stopAll()
	f.files(a, "FROZEN", "1", "0")

	// A task born there (its parent forked before it was stopped).
	if !f.r.Fork(100, core.TaskInfo{TID: 103, TGID: 103, Start: 11}) {
		t.Fatal("fork")
	}
	f.wantHeld(100, 101, 102, 103)
	f.files(a, "FREEZING", "1", "0")
	f.stopAll()

	// A task moved out thaws; one that exits is forgotten.
	if err := f.r.Attach(f.h.Root(), core.Caller{}, 102, false); err != nil {
		t.Fatal(err)
	}
	f.r.Exit(103, 0)
	f.wantHeld(100, 101)
	f.files(a, "FROZEN", "1", "0")

	if err := f.write(a, "THAWED"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld()
	f.files(a, "THAWED", "0", "0")
	// Writing the same state again changes nothing.
	if err := f.write(a, "THAWED"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld()
}

func TestNested(t *testing.T) {
	f := newFixture(t)
	a := f.mkdir(f.h.Root(), "a")
	b := f.mkdir(a, "b")
	c := f.mkdir(b, "c")
	f.task(a, 100)
	f.task(b, 200)
	f.task(c, 300)

	if err := f.write(a, "FROZEN"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld(100, 200, 300)
	f.stopAll()
	f.files(a, "FROZEN", "1", "0")
	f.files(b, "FROZEN", "0", "1")
	f.files(c, "FROZEN", "0", "1")

	// Thawing a child cannot override a frozen parent.
	if err := f.write(b, "THAWED"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld(100, 200, 300)
	f.files(b, "FROZEN", "0", "1")

	// b frozen itself too: thawing a leaves b and c frozen.
	if err := f.write(b, "FROZEN"); err != nil {
		t.Fatal(err)
	}
	f.files(b, "FROZEN", "1", "1")
	if err := f.write(a, "THAWED"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld(200, 300)
	f.files(a, "THAWED", "0", "0")
	f.files(b, "FROZEN", "1", "0")
	f.files(c, "FROZEN", "0", "1")

	// A parent's state covers its children's tasks: a task of c not yet
	// stopped keeps b FREEZING.
	f.task(c, 301)
	f.files(b, "FREEZING", "1", "0")
	f.files(c, "FREEZING", "0", "1")
	f.stopAll()
	f.files(b, "FROZEN", "1", "0")

	if err := f.write(b, "THAWED"); err != nil {
		t.Fatal(err)
	}
	f.wantHeld()
	f.files(c, "THAWED", "0", "0")
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		line string
		want stat
		ok   bool
	}{
		{line: "42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 2000000 100\n", want: stat{state: 'S', flags: 4194560, start: 12345}, ok: true},
		{line: "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n", want: stat{state: 'S', flags: 2129984, start: 1}, ok: true},
		{line: "42 (a) t)) t 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 0 0\n", want: stat{state: 't', start: 7}, ok: true},
		{line: "42 (sh S 1", ok: false},
		{line: "42 (sh) S 1 2 3\n", ok: false},
	}
	for _, tc := range tests {
		got, err := parseStat([]byte(tc.line))
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseStat(%q): got %+v, %v, want %+v, ok=%v", tc.line, got, err, tc.want, tc.ok)
		}
	}
	if st, _ := parseStat([]byte(tests[1].line)); st.flags&pfKthread == 0 {
		t.Errorf("kthreadd's flags %#x lack PF_KTHREAD", st.flags)
	}
}
