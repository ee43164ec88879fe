package core

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeFiles is a control-file table with one file of each placement.
func fakeFiles() []File {
	read := func(*Container) (string, error) { return "x\n", nil }
	write := func(*Container, Caller, string) error { return nil }
	return []File{
		{Name: "stat", Read: read},
		{Name: "root_only", Flags: OnlyOnRoot, Read: read},
		{Name: "child_only", Flags: NotOnRoot, Read: read, Write: write},
	}
}

func containersOf(r *Registry, h *Hierarchy) int {
	for _, st := range r.Stats() {
		if st.Hierarchy == h.ID() {
			return st.Containers
		}
	}
	return -1
}

func TestMkdirErrors(t *testing.T) {
	tests := []struct {
		name      string
		parent    string // "/" or "/a"
		child     string
		wantErrno syscall.Errno
	}{
		{name: "existing child", parent: "/", child: "a", wantErrno: syscall.EEXIST},
		{name: "core file", parent: "/", child: "tasks", wantErrno: syscall.EEXIST},
		{name: "core file procs", parent: "/a", child: "cgroup.procs", wantErrno: syscall.EEXIST},
		{name: "root-only core file on root", parent: "/", child: "release_agent", wantErrno: syscall.EEXIST},
		{name: "root-only core file name in a child", parent: "/a", child: "release_agent"},
		{name: "subsystem file", parent: "/", child: "s.stat", wantErrno: syscall.EEXIST},
		{name: "child-only subsystem file", parent: "/a", child: "s.child_only", wantErrno: syscall.EEXIST},
		{name: "child-only subsystem file name on root", parent: "/", child: "s.child_only"},
		{name: "unprefixed name is free", parent: "/", child: "stat"},
		{name: "newline", parent: "/", child: "bad\nname", wantErrno: syscall.EINVAL},
		{name: "trailing newline", parent: "/", child: "b\n", wantErrno: syscall.EINVAL},
		{name: "nested existing", parent: "/a", child: "b", wantErrno: syscall.EEXIST},
		{name: "nested new", parent: "/a", child: "c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			s := newFake("s", log)
			s.files = fakeFiles()
			r := NewRegistry(newProcs(), s)
			h := mustMount(t, r, "s")
			a := mustMkdir(t, r, h.Root(), "a")
			mustMkdir(t, r, a, "b")
			parent := h.Root()
			if tc.parent == "/a" {
				parent = a
			}
			log.take()
			before := containersOf(r, h)

			c, err := r.Mkdir(parent, tc.child, 0o755, rootCaller)
			checkErrno(t, "Mkdir", err, tc.wantErrno)
			if tc.wantErrno == 0 {
				if err == nil {
					if e, ok := parent.Lookup(tc.child); !ok || e.Child != c {
						t.Errorf("Lookup(%q): got %+v, %v, want the new child", tc.child, e, ok)
					}
				}
				return
			}
			if c != nil {
				t.Errorf("Mkdir: got a container with the error, want nil")
			}
			if got := log.take(); len(got) != 0 {
				t.Errorf("hooks: got %q, want none", got)
			}
			if got := containersOf(r, h); got != before {
				t.Errorf("containers: got %d, want %d", got, before)
			}
		})
	}
}

func TestMkdirRemovedParent(t *testing.T) {
	r := NewRegistry(newProcs(), newFake("s", &callLog{}))
	h := mustMount(t, r, "s")
	a := mustMkdir(t, r, h.Root(), "a")
	if err := r.Rmdir(h.Root(), "a", rootCaller); err != nil {
		t.Fatalf("Rmdir(a): got error %v, want nil", err)
	}
	_, err := r.Mkdir(a, "b", 0o755, rootCaller)
	checkErrno(t, "Mkdir under a removed parent", err, syscall.ENODEV)

	// The root of a torn-down hierarchy is removed too.
	r.Unmount(h)
	_, err = r.Mkdir(h.Root(), "b", 0o755, rootCaller)
	checkErrno(t, "Mkdir in a torn-down hierarchy", err, syscall.ENODEV)
}

// A new container copies notify_on_release and cgroup.clone_children from its
// parent at mkdir; later changes to the parent do not reach it.
func TestMkdirInherits(t *testing.T) {
	tests := []struct {
		name          string
		mount         string
		notify, clone string // written to the parent; "" leaves it
		want          [2]string
	}{
		{name: "defaults", mount: "s", want: [2]string{"0\n", "0\n"}},
		{name: "notify_on_release", mount: "s", notify: "1", want: [2]string{"1\n", "0\n"}},
		{name: "clone_children", mount: "s", clone: "1", want: [2]string{"0\n", "1\n"}},
		{name: "both", mount: "s", notify: "1", clone: "1", want: [2]string{"1\n", "1\n"}},
		{name: "clone_children mount option", mount: "s,clone_children", want: [2]string{"0\n", "1\n"}},
		{name: "mount option cleared", mount: "s,clone_children", clone: "0", want: [2]string{"0\n", "0\n"}},
	}
	for _, tc := range tests {
		for _, nested := range []bool{false, true} {
			name := tc.name
			if nested {
				name += " nested"
			}
			t.Run(name, func(t *testing.T) {
				r := NewRegistry(newProcs(), newFake("s", &callLog{}))
				h := mustMount(t, r, tc.mount)
				parent := h.Root()
				if nested {
					parent = mustMkdir(t, r, parent, "p")
				}
				if tc.notify != "" {
					mustWrite(t, r, parent, "notify_on_release", rootCaller, tc.notify)
				}
				if tc.clone != "" {
					mustWrite(t, r, parent, "cgroup.clone_children", rootCaller, tc.clone)
				}
				c := mustMkdir(t, r, parent, "c")
				got := [2]string{mustRead(t, r, c, "notify_on_release"), mustRead(t, r, c, "cgroup.clone_children")}
				if got != tc.want {
					t.Errorf("child notify_on_release, clone_children: got %q, want %q", got, tc.want)
				}
				// Copied, not shared.
				mustWrite(t, r, parent, "notify_on_release", rootCaller, "1")
				mustWrite(t, r, parent, "cgroup.clone_children", rootCaller, "1")
				got = [2]string{mustRead(t, r, c, "notify_on_release"), mustRead(t, r, c, "cgroup.clone_children")}
				if got != tc.want {
					t.Errorf("after changing the parent: got %q, want %q", got, tc.want)
				}
			})
		}
	}
}

// A Create failure aborts the mkdir: the subsystems created before it are
// destroyed in reverse order and no child is left.
func TestMkdirCreateFailureRollsBack(t *testing.T) {
	tests := []struct {
		name    string
		failing string
		wantLog []string
	}{
		{name: "first fails", failing: "a", wantLog: []string{"a: create /x"}},
		{name: "second fails", failing: "b", wantLog: []string{"a: create /x", "b: create /x", "a: destroy /x"}},
		{name: "last fails", failing: "c", wantLog: []string{
			"a: create /x", "b: create /x", "c: create /x", "b: destroy /x", "a: destroy /x",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			fakes := map[string]*fakeSubsys{"a": newFake("a", log), "b": newFake("b", log), "c": newFake("c", log)}
			r := NewRegistry(newProcs(), fakes["a"], fakes["b"], fakes["c"])
			h := mustMount(t, r, "a,b,c")
			fakes[tc.failing].failCreate = map[string]error{"/x": syscall.ENOMEM}
			log.take()

			c, err := r.Mkdir(h.Root(), "x", 0o755, rootCaller)
			checkErrno(t, "Mkdir(x)", err, syscall.ENOMEM)
			if c != nil {
				t.Errorf("Mkdir(x): got a container with the error, want nil")
			}
			if diff := cmp.Diff(tc.wantLog, log.take()); diff != "" {
				t.Errorf("hooks mismatch (-want +got):\n%s", diff)
			}
			if e, ok := h.Root().Lookup("x"); ok {
				t.Errorf("Lookup(x) after a failed mkdir: got %+v, want nothing", e)
			}
			for _, e := range h.Root().List() {
				if e.Child != nil {
					t.Errorf("List() after a failed mkdir: got child %q, want none", e.Child.Path())
				}
			}
			if got := containersOf(r, h); got != 1 {
				t.Errorf("containers: got %d, want 1", got)
			}

			// The name is free for the next try.
			fakes[tc.failing].failCreate = nil
			mustMkdir(t, r, h.Root(), "x")
		})
	}
}

func TestRmdir(t *testing.T) {
	tests := []struct {
		name      string
		target    string
		wantErrno syscall.Errno
	}{
		{name: "empty", target: "empty"},
		{name: "with a task", target: "busy", wantErrno: syscall.EBUSY},
		{name: "with a child", target: "parent", wantErrno: syscall.EBUSY},
		{name: "missing", target: "missing", wantErrno: syscall.ENOENT},
		{name: "control file", target: "tasks", wantErrno: syscall.ENOTDIR},
		{name: "subsystem file", target: "s.stat", wantErrno: syscall.ENOTDIR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			s := newFake("s", log)
			s.files = fakeFiles()
			r := NewRegistry(newProcs(taskInfo(100, 0, 1)), s)
			h := mustMount(t, r, "s")
			root := h.Root()
			mustMkdir(t, r, root, "empty")
			moveTo(t, r, mustMkdir(t, r, root, "busy"), 100)
			mustMkdir(t, r, mustMkdir(t, r, root, "parent"), "child")
			before := containersOf(r, h)
			e, _ := root.Lookup(tc.target)
			log.take()

			err := r.Rmdir(root, tc.target, rootCaller)
			checkErrno(t, "Rmdir("+tc.target+")", err, tc.wantErrno)
			if tc.wantErrno != 0 {
				if got := log.take(); len(got) != 0 {
					t.Errorf("hooks: got %q, want none", got)
				}
				if got := containersOf(r, h); got != before {
					t.Errorf("containers: got %d, want %d", got, before)
				}
				if e.Child != nil {
					if e2, ok := root.Lookup(tc.target); !ok || e2.Child != e.Child {
						t.Errorf("Lookup(%q) after a failed rmdir: got %+v, %v, want the same child", tc.target, e2, ok)
					}
				}
				return
			}
			if diff := cmp.Diff([]string{"s: destroy /" + tc.target}, log.take()); diff != "" {
				t.Errorf("hooks mismatch (-want +got):\n%s", diff)
			}
			if _, ok := root.Lookup(tc.target); ok {
				t.Errorf("Lookup(%q) after rmdir: found, want nothing", tc.target)
			}
			r.lock()
			removed := e.Child.Removed()
			r.unlock()
			if !removed {
				t.Errorf("Removed() after rmdir: got false, want true")
			}
			if got := containersOf(r, h); got != before-1 {
				t.Errorf("containers: got %d, want %d", got, before-1)
			}
			// Gone is gone: a second rmdir finds nothing.
			checkErrno(t, "second Rmdir", r.Rmdir(root, tc.target, rootCaller), syscall.ENOENT)
		})
	}
}

func TestRename(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		wantErrno syscall.Errno
		wantPath  string // of the task in a/sub afterwards
	}{
		{name: "within parent", old: "a", new: "renamed", wantPath: "/renamed/sub"},
		{name: "same name", old: "a", new: "a", wantPath: "/a/sub"},
		{name: "onto a sibling", old: "a", new: "b", wantErrno: syscall.EEXIST, wantPath: "/a/sub"},
		{name: "onto a control file", old: "a", new: "tasks", wantErrno: syscall.EEXIST, wantPath: "/a/sub"},
		{name: "onto a subsystem file", old: "a", new: "s.stat", wantErrno: syscall.EEXIST, wantPath: "/a/sub"},
		{name: "newline", old: "a", new: "x\ny", wantErrno: syscall.EINVAL, wantPath: "/a/sub"},
		{name: "a control file", old: "tasks", new: "z", wantErrno: syscall.ENOTDIR, wantPath: "/a/sub"},
		{name: "missing", old: "missing", new: "z", wantErrno: syscall.ENOENT, wantPath: "/a/sub"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake("s", &callLog{})
			s.files = fakeFiles()
			r := NewRegistry(newProcs(taskInfo(100, 0, 1)), s)
			h := mustMount(t, r, "s")
			a := mustMkdir(t, r, h.Root(), "a")
			b := mustMkdir(t, r, h.Root(), "b")
			moveTo(t, r, mustMkdir(t, r, a, "sub"), 100)

			err := r.Rename(h.Root(), tc.old, tc.new, rootCaller)
			checkErrno(t, "Rename("+tc.old+", "+tc.new+")", err, tc.wantErrno)
			if got := pathOf(r, h, 100); got != tc.wantPath {
				t.Errorf("task 100: got %q, want %q", got, tc.wantPath)
			}
			if e, ok := h.Root().Lookup("b"); !ok || e.Child != b {
				t.Errorf("Lookup(b): got %+v, %v, want the sibling unchanged", e, ok)
			}
			if tc.wantErrno != 0 || tc.old == tc.new {
				if e, ok := h.Root().Lookup("a"); !ok || e.Child != a {
					t.Errorf("Lookup(a): got %+v, %v, want a unchanged", e, ok)
				}
				return
			}
			if _, ok := h.Root().Lookup(tc.old); ok {
				t.Errorf("Lookup(%q) after rename: found, want nothing", tc.old)
			}
			if e, ok := h.Root().Lookup(tc.new); !ok || e.Child != a {
				t.Errorf("Lookup(%q) after rename: got %+v, %v, want the renamed container", tc.new, e, ok)
			}
			if got := a.Path(); got != "/"+tc.new {
				t.Errorf("Path(): got %q, want %q", got, "/"+tc.new)
			}
		})
	}
}

// A new hierarchy takes every task the model knows into its root; no hook
// runs for them.
func TestNewHierarchyTakesEveryTask(t *testing.T) {
	log := &callLog{}
	tasks := []TaskInfo{taskInfo(30, 0, 1), taskInfo(10, 0, 1), thread(11, 10, 0, 2)}
	r := NewRegistry(newProcs(tasks...), newFake("a", log), newFake("b", log))
	for _, ti := range tasks {
		r.AddTask(ti)
	}
	ha := mustMount(t, r, "a")
	moveTo(t, r, mustMkdir(t, r, ha.Root(), "x"), 10)
	log.take()

	hb := mustMount(t, r, "b")
	if diff := cmp.Diff([]string{"b: create /"}, log.take()); diff != "" {
		t.Errorf("hooks mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{10, 11, 30}, members(r, hb.Root())); diff != "" {
		t.Errorf("members of the new root mismatch (-want +got):\n%s", diff)
	}
	if got := mustRead(t, r, hb.Root(), "tasks"); got != "10\n11\n30\n" {
		t.Errorf("tasks: got %q, want %q", got, "10\n11\n30\n")
	}
	if got := pathOf(r, ha, 10); got != "/x" {
		t.Errorf("task 10 in the old hierarchy: got %q, want %q", got, "/x")
	}
}

// forkRig has hierarchies a and b, with task 100 in a:/x and b:/, task 150
// in a:/y and b:/z, and task 300 in both roots.
type forkRig struct {
	r      *Registry
	log    *callLog
	ha, hb *Hierarchy
}

func newForkRig(t *testing.T) *forkRig {
	t.Helper()
	g := &forkRig{log: &callLog{}}
	g.r = NewRegistry(newProcs(taskInfo(100, 0, 10), taskInfo(150, 0, 50), taskInfo(300, 0, 30)),
		newFake("a", g.log), newFake("b", g.log))
	g.ha = mustMount(t, g.r, "a")
	g.hb = mustMount(t, g.r, "b")
	moveTo(t, g.r, mustMkdir(t, g.r, g.ha.Root(), "x"), 100)
	moveTo(t, g.r, mustMkdir(t, g.r, g.ha.Root(), "y"), 150)
	moveTo(t, g.r, mustMkdir(t, g.r, g.hb.Root(), "z"), 150)
	moveTo(t, g.r, g.ha.Root(), 300)
	g.log.take()
	return g
}

func TestFork(t *testing.T) {
	tests := []struct {
		name         string
		parent       int
		child        TaskInfo
		wantA, wantB string
		wantLog      []string
	}{
		{name: "child of a task in a container", parent: 100, child: taskInfo(200, 0, 200),
			wantA: "/x", wantB: "/", wantLog: []string{"a: fork /x 200"}},
		{name: "child of a task in containers of both", parent: 150, child: taskInfo(200, 0, 200),
			wantA: "/y", wantB: "/z", wantLog: []string{"a: fork /y 200", "b: fork /z 200"}},
		{name: "child of a task in the roots", parent: 300, child: taskInfo(200, 0, 200),
			wantA: "/", wantB: "/"},
		{name: "thread joins its leader, not its cloner", parent: 150, child: thread(101, 100, 0, 200),
			wantA: "/x", wantB: "/", wantLog: []string{"a: fork /x 101"}},
		{name: "task already known from a scan", parent: 100, child: taskInfo(150, 0, 50),
			wantA: "/y", wantB: "/z"},
		{name: "reused TID", parent: 100, child: taskInfo(150, 0, 9000),
			wantA: "/x", wantB: "/", wantLog: []string{"a: exit /y 150", "b: exit /z 150", "a: fork /x 150"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newForkRig(t)
			g.r.Fork(tc.parent, tc.child)
			if diff := cmp.Diff(tc.wantLog, g.log.take()); diff != "" {
				t.Errorf("hooks mismatch (-want +got):\n%s", diff)
			}
			if got := pathOf(g.r, g.ha, tc.child.TID); got != tc.wantA {
				t.Errorf("task %d in a: got %q, want %q", tc.child.TID, got, tc.wantA)
			}
			if got := pathOf(g.r, g.hb, tc.child.TID); got != tc.wantB {
				t.Errorf("task %d in b: got %q, want %q", tc.child.TID, got, tc.wantB)
			}
		})
	}
}

// AddTask (a /proc scan) puts a thread with its leader, and a process the
// model has no relative of in the roots; a known task stays where it is.
func TestAddTask(t *testing.T) {
	g := newForkRig(t)
	g.r.AddTask(thread(101, 100, 0, 11))
	g.r.AddTask(taskInfo(400, 0, 40))
	g.r.AddTask(taskInfo(150, 0, 50))
	want := []string{"a: fork /x 101"}
	if diff := cmp.Diff(want, g.log.take()); diff != "" {
		t.Errorf("hooks mismatch (-want +got):\n%s", diff)
	}
	for _, w := range []struct {
		tid          int
		wantA, wantB string
	}{{101, "/x", "/"}, {400, "/", "/"}, {150, "/y", "/z"}} {
		if got := pathOf(g.r, g.ha, w.tid); got != w.wantA {
			t.Errorf("task %d in a: got %q, want %q", w.tid, got, w.wantA)
		}
		if got := pathOf(g.r, g.hb, w.tid); got != w.wantB {
			t.Errorf("task %d in b: got %q, want %q", w.tid, got, w.wantB)
		}
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		name     string
		tid      int
		at       uint64
		wantGone bool
		wantLog  []string
	}{
		{name: "unknown time", tid: 150, at: 0, wantGone: true,
			wantLog: []string{"a: exit /y 150", "b: exit /z 150"}},
		{name: "at its start time", tid: 150, at: 50, wantGone: true,
			wantLog: []string{"a: exit /y 150", "b: exit /z 150"}},
		{name: "one hierarchy outside the root", tid: 100, at: 0, wantGone: true,
			wantLog: []string{"a: exit /x 100"}},
		{name: "late exit of an older holder of the TID", tid: 150, at: 5},
		{name: "unknown TID", tid: 999, at: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newForkRig(t)
			g.r.Exit(tc.tid, tc.at)
			got := g.log.take()
			// Exit hooks for a root membership are not this test's business.
			got = slices.DeleteFunc(got, func(s string) bool { return s == "b: exit / 100" })
			if diff := cmp.Diff(tc.wantLog, got); diff != "" {
				t.Errorf("hooks mismatch (-want +got):\n%s", diff)
			}
			_, known := g.r.Where(tc.tid)
			if _, inTasks := g.r.Tasks()[tc.tid]; inTasks != known {
				t.Errorf("Tasks() and Where() disagree on %d: %v, %v", tc.tid, inTasks, known)
			}
			if tc.tid == 999 {
				return
			}
			if known == tc.wantGone {
				t.Errorf("task %d known after Exit: got %v, want %v", tc.tid, known, !tc.wantGone)
			}
			for _, h := range []*Hierarchy{g.ha, g.hb} {
				for _, c := range allContainers(g.r, h) {
					inC := false
					for _, tid := range members(g.r, c) {
						inC = inC || tid == tc.tid
					}
					if tc.wantGone && inC {
						t.Errorf("task %d still a member of %s after Exit", tc.tid, c.Path())
					}
				}
			}
		})
	}
}

func allContainers(r *Registry, h *Hierarchy) []*Container {
	r.lock()
	defer r.unlock()
	var all []*Container
	var walk func(c *Container)
	walk = func(c *Container) {
		all = append(all, c)
		for _, ch := range c.ChildrenLocked() {
			walk(ch)
		}
	}
	walk(h.Root())
	return all
}

func TestContainerAt(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		create    bool
		wantErrno syscall.Errno
		want      string // the container's path
	}{
		{name: "root", path: "/", want: "/"},
		{name: "empty is the root", path: "", want: "/"},
		{name: "existing", path: "/a/b", want: "/a/b"},
		{name: "without leading slash", path: "a/b", want: "/a/b"},
		{name: "trailing and double slashes, dots", path: "//a/./b/", want: "/a/b"},
		{name: "missing", path: "/a/c", wantErrno: syscall.ENOENT},
		{name: "missing parent", path: "/x/y", wantErrno: syscall.ENOENT},
		{name: "create one", path: "/a/c", create: true, want: "/a/c"},
		{name: "create a chain", path: "/x/y/z", create: true, want: "/x/y/z"},
		{name: "create existing", path: "/a/b", create: true, want: "/a/b"},
		{name: "control file", path: "/a/tasks", wantErrno: syscall.ENOTDIR},
		{name: "through a control file", path: "/tasks/x", create: true, wantErrno: syscall.ENOTDIR},
		{name: "create with newline", path: "/a/b\nc", create: true, wantErrno: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(newProcs(), newFake("s", &callLog{}))
			h := mustMount(t, r, "s")
			mustMkdir(t, r, mustMkdir(t, r, h.Root(), "a"), "b")
			before := containersOf(r, h)

			c, err := r.ContainerAt(h, tc.path, tc.create)
			checkErrno(t, "ContainerAt("+tc.path+")", err, tc.wantErrno)
			if tc.wantErrno != 0 {
				if c != nil {
					t.Errorf("ContainerAt(%q): got %s with the error, want nil", tc.path, c.Path())
				}
				if !tc.create {
					if got := containersOf(r, h); got != before {
						t.Errorf("containers: got %d, want %d", got, before)
					}
				}
				return
			}
			if err != nil {
				return
			}
			if got := c.Path(); got != tc.want {
				t.Errorf("ContainerAt(%q): got %q, want %q", tc.path, got, tc.want)
			}
			if !tc.create && containersOf(r, h) != before {
				t.Errorf("ContainerAt without create made containers: got %d, want %d", containersOf(r, h), before)
			}
		})
	}
}

// ".." in a path must never become a directory named "..": the FUSE layer
// could not serve it, and /proc/PID/cgroup would show "/a/..". Resolving it
// to the parent or refusing the path are both fine.
func TestContainerAtDotDot(t *testing.T) {
	for _, path := range []string{"/a/../b", "/..", "a/.."} {
		t.Run(path, func(t *testing.T) {
			r := NewRegistry(newProcs(), newFake("s", &callLog{}))
			h := mustMount(t, r, "s")
			mustMkdir(t, r, h.Root(), "a")
			c, err := r.ContainerAt(h, path, true)
			if err == nil && strings.Contains(c.Path(), "..") {
				t.Errorf("ContainerAt(%q, create): got %q, want no container named \"..\"", path, c.Path())
			}
			for _, c := range allContainers(r, h) {
				r.lock()
				name := c.NameLocked()
				r.unlock()
				if name == ".." || name == "." {
					t.Errorf("container %q exists after ContainerAt(%q, create)", c.Path(), path)
				}
			}
		})
	}
}

// TestRmdirLateExit: a task that has exited (gone, or a zombie) while its
// exit event is still on its way does not keep rmdir from succeeding.
func TestRmdirLateExit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint64 // the task's start as the model records it; 0 is 1
		after func(p *fakeProcs)
		want  syscall.Errno
	}{
		{name: "reaped", after: func(p *fakeProcs) { p.remove(100) }},
		{name: "zombie", after: func(p *fakeProcs) { z := taskInfo(100, 0, 1); z.Exited = true; p.set(z) }},
		{name: "pid reused", after: func(p *fakeProcs) { p.set(taskInfo(100, 0, 9)) }},
		{name: "alive", after: func(*fakeProcs) {}, want: syscall.EBUSY},
		// The model's start came from a fork event stamped a few ticks
		// after the kernel took the task's start: the same task.
		{name: "alive, recorded late", start: 10, after: func(p *fakeProcs) { p.set(taskInfo(100, 0, 5)) }, want: syscall.EBUSY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := newProcs(taskInfo(100, 0, max(tc.start, 1)))
			r := NewRegistry(procs, newFake("s", &callLog{}))
			h := mustMount(t, r, "s")
			moveTo(t, r, mustMkdir(t, r, h.Root(), "c"), 100)
			tc.after(procs)
			checkErrno(t, "Rmdir(c)", r.Rmdir(h.Root(), "c", rootCaller), tc.want)
		})
	}
}

// GroupAlive follows a thread group through the ways it ends or lives on:
// the leader's exit ends a single-threaded process; a zombie leader's
// process lives while another thread does; a thread that execs takes
// over the group's ID; a scan removes threads that are gone.
func TestGroupAlive(t *testing.T) {
	type step struct {
		do        func(r *Registry)
		wantAlive bool
	}
	exit := func(tid int) func(*Registry) { return func(r *Registry) { r.Exit(tid, 0) } }
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "single-threaded process", steps: []step{
			{func(*Registry) {}, true},
			{exit(200), false},
		}},
		{name: "zombie leader, then its last thread", steps: []step{
			{func(r *Registry) { r.Fork(200, thread(201, 200, 0, 61)) }, true},
			{func(r *Registry) { r.Fork(200, thread(202, 200, 0, 62)) }, true},
			{exit(200), true},
			{exit(201), true},
			{exit(202), false},
		}},
		{name: "a thread execs and takes over the group's ID", steps: []step{
			{func(r *Registry) { r.Fork(200, thread(201, 200, 0, 61)) }, true},
			{exit(200), true},
			{func(r *Registry) {
				if !r.Exec(200, 60) {
					t.Error("Exec(200): got false, want true")
				}
			}, true},
			{exit(200), false},
		}},
		{name: "a reused thread TID counts once", steps: []step{
			{func(r *Registry) { r.Fork(200, thread(201, 200, 0, 61)) }, true},
			{func(r *Registry) { r.Fork(200, thread(201, 200, 0, 70)) }, true},
			{exit(201), true},
			{exit(200), false},
		}},
		{name: "a scan removes what is gone", steps: []step{
			{func(r *Registry) { r.Fork(200, thread(201, 200, 0, 61)) }, true},
			{func(r *Registry) { r.Resync([]ScanTask{{TaskInfo: taskInfo(100, 0, 10)}}) }, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newForkRig(t)
			if !g.r.Fork(100, taskInfo(200, 0, 60)) {
				t.Fatal("Fork(100, 200): parent unknown")
			}
			for i, s := range tc.steps {
				s.do(g.r)
				if got := g.r.GroupAlive(200); got != s.wantAlive {
					t.Errorf("step %d: GroupAlive(200): got %v, want %v", i, got, s.wantAlive)
				}
			}
			if got := g.r.Exec(999, 1); got {
				t.Error("Exec of a group the model never knew: got true, want false")
			}
		})
	}
}

// TestResyncKeepsLateStampedTask: a task whose start the model took from a
// fork event stamped ticks after the kernel's start (the forking task was
// preempted in between) is the same task when a scan shows the earlier
// start: it stays where it is, with no exit and no new fork.
func TestResyncKeepsLateStampedTask(t *testing.T) {
	procs := newProcs(taskInfo(100, 0, 50))
	log := &callLog{}
	r := NewRegistry(procs, newFake("s", log))
	h := mustMount(t, r, "s")
	c := mustMkdir(t, r, h.Root(), "c")
	moveTo(t, r, c, 100)
	log.take()
	added, removed := r.Resync([]ScanTask{{TaskInfo: taskInfo(100, 0, 45)}})
	if added != 0 || removed != 0 {
		t.Errorf("Resync: added %d, removed %d; want 0, 0", added, removed)
	}
	if got := pathOf(r, h, 100); got != "/c" {
		t.Errorf("task 100 after the resync: in %q, want /c", got)
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("hooks called: %q", got)
	}
}
