package core

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fileNames(files []BoundFile) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return names
}

func TestFileTables(t *testing.T) {
	tests := []struct {
		name      string
		mount     string
		wantRoot  []string
		wantChild []string
	}{
		{
			name:  "prefixed",
			mount: "cpuset,cpu",
			wantRoot: []string{
				"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children", "release_agent", "cgroup.sane_behavior",
				"cpuset.stat", "cpuset.root_only", "cpu.stat", "cpu.root_only",
			},
			wantChild: []string{
				"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children",
				"cpuset.stat", "cpuset.child_only", "cpu.stat", "cpu.child_only",
			},
		},
		{
			name:  "noprefix",
			mount: "cpuset,noprefix",
			wantRoot: []string{
				"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children", "release_agent", "cgroup.sane_behavior",
				"stat", "root_only",
			},
			wantChild: []string{
				"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children",
				"stat", "child_only",
			},
		},
		{
			name:      "no subsystems",
			mount:     "none,name=x",
			wantRoot:  []string{"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children", "release_agent", "cgroup.sane_behavior"},
			wantChild: []string{"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			cpuset, cpu := newFake("cpuset", log), newFake("cpu", log)
			cpuset.files, cpu.files = fakeFiles(), fakeFiles()
			r := NewRegistry(newProcs(), cpuset, cpu)
			h := mustMount(t, r, tc.mount)
			c := mustMkdir(t, r, h.Root(), "c")
			if diff := cmp.Diff(tc.wantRoot, fileNames(h.Files(h.Root()))); diff != "" {
				t.Errorf("root files mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantChild, fileNames(h.Files(c))); diff != "" {
				t.Errorf("child files mismatch (-want +got):\n%s", diff)
			}
			// Lookup and List agree with the tables.
			for _, x := range []struct {
				c    *Container
				want []string
			}{{h.Root(), tc.wantRoot}, {c, tc.wantChild}} {
				var listed []string
				for _, e := range x.c.List() {
					if e.File != nil {
						listed = append(listed, e.File.Name)
					}
				}
				if diff := cmp.Diff(x.want, listed); diff != "" {
					t.Errorf("List(%s) files mismatch (-want +got):\n%s", x.c.Path(), diff)
				}
				for _, name := range x.want {
					if e, ok := x.c.Lookup(name); !ok || e.File == nil || e.File.Name != name {
						t.Errorf("Lookup(%s, %q): got %+v, %v, want the file", x.c.Path(), name, e, ok)
					}
				}
			}
			for _, name := range []string{"release_agent", "cgroup.sane_behavior"} {
				if _, ok := c.Lookup(name); ok {
					t.Errorf("Lookup(/c, %q): found, want it only on the root", name)
				}
			}
		})
	}
}

func TestCoreFileModes(t *testing.T) {
	r := NewRegistry(newProcs(), newFake("s", &callLog{}))
	h := mustMount(t, r, "s")
	want := map[string]uint32{
		"tasks": 0o644, "cgroup.procs": 0o644, "notify_on_release": 0o644,
		"cgroup.clone_children": 0o644, "release_agent": 0o644, "cgroup.sane_behavior": 0o444,
	}
	got := map[string]uint32{}
	for _, f := range h.Files(h.Root()) {
		got[f.Name] = f.Perm()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modes mismatch (-want +got):\n%s", diff)
	}
	err := r.WriteFile(h.Root(), file(t, h.Root(), "cgroup.sane_behavior"), rootCaller, "1")
	checkErrno(t, "write to cgroup.sane_behavior", err, syscall.EINVAL)
}

func TestReadTasksAndProcs(t *testing.T) {
	tests := []struct {
		name      string
		tasks     []TaskInfo
		wantTasks string
		wantProcs string
	}{
		{name: "empty", wantTasks: "", wantProcs: ""},
		{name: "one", tasks: []TaskInfo{taskInfo(42, 0, 1)}, wantTasks: "42\n", wantProcs: "42\n"},
		{
			name: "sorted numerically, procs unique",
			tasks: []TaskInfo{
				thread(1002, 100, 0, 1), taskInfo(100, 0, 1), taskInfo(9, 0, 1), thread(101, 100, 0, 1),
				thread(31, 30, 0, 1), // a thread whose leader is elsewhere
			},
			wantTasks: "9\n31\n100\n101\n1002\n",
			wantProcs: "9\n30\n100\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(newProcs(tc.tasks...), newFake("s", &callLog{}))
			h := mustMount(t, r, "s")
			c := mustMkdir(t, r, h.Root(), "c")
			for _, ti := range tc.tasks {
				moveTo(t, r, c, ti.TID)
			}
			if got := mustRead(t, r, c, "tasks"); got != tc.wantTasks {
				t.Errorf("tasks: got %q, want %q", got, tc.wantTasks)
			}
			if got := mustRead(t, r, c, "cgroup.procs"); got != tc.wantProcs {
				t.Errorf("cgroup.procs: got %q, want %q", got, tc.wantProcs)
			}
		})
	}
}

func TestBoolFiles(t *testing.T) {
	tests := []struct {
		data      string
		want      string
		wantErrno syscall.Errno
	}{
		{data: "1", want: "1\n"},
		{data: "0", want: "0\n"},
		{data: "1\n", want: "1\n"},
		// write_u64 files get the buffer unstripped: kstrtoull allows one
		// trailing newline and nothing else.
		{data: " 0 \n", wantErrno: syscall.EINVAL},
		{data: "1\n\n", wantErrno: syscall.EINVAL},
		{data: "+1", want: "1\n"},
		{data: "5", want: "1\n"},
		{data: "18446744073709551615", want: "1\n"},
		{data: "0x10", want: "1\n"},
		{data: "00", want: "0\n"},
		{data: "\n", wantErrno: syscall.EINVAL},
		{data: "yes", wantErrno: syscall.EINVAL},
		{data: "-1", wantErrno: syscall.EINVAL},
		{data: "1 1", wantErrno: syscall.EINVAL},
		{data: "18446744073709551616", wantErrno: syscall.ERANGE}, // kstrtoull checks overflow first
		{data: " 1", wantErrno: syscall.EINVAL},                   // write_u64 strips nothing
		{data: "1\n\n", wantErrno: syscall.EINVAL},
		{data: "1\x00junk", want: "1\n"}, // the handler sees a C string
		{data: strings.Repeat("0", MaxWrite+1), wantErrno: syscall.E2BIG},
	}
	for _, name := range []string{"notify_on_release", "cgroup.clone_children"} {
		for _, onRoot := range []bool{true, false} {
			for _, tc := range tests {
				where := "child"
				if onRoot {
					where = "root"
				}
				t.Run(name+" "+where+" "+strconv.Quote(tc.data), func(t *testing.T) {
					r := NewRegistry(newProcs(), newFake("s", &callLog{}))
					h := mustMount(t, r, "s")
					c := h.Root()
					if !onRoot {
						c = mustMkdir(t, r, c, "c")
					}
					// Start from the opposite of what the write should give,
					// so a write that does nothing is caught; after a
					// refused write the old value stays.
					old := "1"
					if tc.want == "1\n" {
						old = "0"
					}
					mustWrite(t, r, c, name, rootCaller, old)
					err := r.WriteFile(c, file(t, c, name), rootCaller, tc.data)
					checkErrno(t, "write "+strconv.Quote(tc.data), err, tc.wantErrno)
					want := tc.want
					if tc.wantErrno != 0 {
						want = old + "\n"
					}
					if got := mustRead(t, r, c, name); got != want {
						t.Errorf("read after writing %q: got %q, want %q", tc.data, got, want)
					}
				})
			}
		}
	}
}

func TestReleaseAgentFile(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxWrite-1)
	tests := []struct {
		name      string
		mount     string
		who       Caller
		data      string // "" writes nothing
		wantErrno syscall.Errno
		want      string
	}{
		{name: "default empty", mount: "s", want: "\n"},
		{name: "from the mount option", mount: "s,release_agent=/sbin/agent", want: "/sbin/agent\n"},
		{name: "root writes", mount: "s", who: rootCaller, data: "/bin/agent", want: "/bin/agent\n"},
		{name: "whitespace stripped", mount: "s", who: rootCaller, data: " \t/bin/agent \n", want: "/bin/agent\n"},
		{name: "overrides the mount option", mount: "s,release_agent=/sbin/agent", who: rootCaller, data: "/bin/other\n",
			want: "/bin/other\n"},
		{name: "cleared", mount: "s,release_agent=/sbin/agent", who: rootCaller, data: "\n", want: "\n"},
		{name: "at most PATH_MAX-1", mount: "s", who: rootCaller, data: long, want: long[:4095] + "\n"},
		{name: "a write over a page", mount: "s,release_agent=/sbin/agent", who: rootCaller, data: long + "a",
			wantErrno: syscall.E2BIG, want: "/sbin/agent\n"},
		{name: "non-root writer", mount: "s,release_agent=/sbin/agent", who: Caller{PID: 5, UID: 1000}, data: "/tmp/evil",
			wantErrno: syscall.EPERM, want: "/sbin/agent\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(newProcs(), newFake("s", &callLog{}))
			h := mustMount(t, r, tc.mount)
			root := h.Root()
			if tc.data != "" {
				err := r.WriteFile(root, file(t, root, "release_agent"), tc.who, tc.data)
				checkErrno(t, "write release_agent", err, tc.wantErrno)
			}
			if got := mustRead(t, r, root, "release_agent"); got != tc.want {
				t.Errorf("release_agent: got %q, want %q", got, tc.want)
			}
			if got, want := h.Options().ReleaseAgent, strings.TrimSuffix(tc.want, "\n"); got != want {
				t.Errorf("Options().ReleaseAgent: got %q, want %q", got, want)
			}
		})
	}
}

func TestSaneBehavior(t *testing.T) {
	r := NewRegistry(newProcs(), newFake("s", &callLog{}))
	h := mustMount(t, r, "s")
	if got := mustRead(t, r, h.Root(), "cgroup.sane_behavior"); got != "0\n" {
		t.Errorf("cgroup.sane_behavior: got %q, want %q", got, "0\n")
	}
}

// Subsystem files are served with the subsystem's own handlers and the
// container they are read in.
func TestSubsystemFileHandlers(t *testing.T) {
	s := newFake("s", &callLog{})
	var wrote []string
	s.files = []File{{
		Name: "echo",
		Read: func(c *Container) (string, error) { return c.PathLocked() + " " + c.State(s).(string) + "\n", nil },
		Write: func(c *Container, who Caller, data string) error {
			if data == "bad" {
				return syscall.ERANGE
			}
			wrote = append(wrote, c.PathLocked()+" "+data)
			return nil
		},
	}}
	r := NewRegistry(newProcs(), s)
	h := mustMount(t, r, "s")
	c := mustMkdir(t, r, h.Root(), "c")
	if got, want := mustRead(t, r, c, "s.echo"), "/c s state of /c\n"; got != want {
		t.Errorf("s.echo: got %q, want %q", got, want)
	}
	mustWrite(t, r, c, "s.echo", rootCaller, "hello")
	checkErrno(t, "write bad", r.WriteFile(c, file(t, c, "s.echo"), rootCaller, "bad"), syscall.ERANGE)
	if diff := cmp.Diff([]string{"/c hello"}, wrote); diff != "" {
		t.Errorf("writes mismatch (-want +got):\n%s", diff)
	}
	f := file(t, c, "s.echo")
	if err := r.Rmdir(h.Root(), "c", rootCaller); err != nil {
		t.Fatalf("Rmdir(c): got error %v, want nil", err)
	}
	checkErrno(t, "write to a removed container", r.WriteFile(c, f, rootCaller, "x"), syscall.ENODEV)
	_, err := r.ReadFile(c, f)
	checkErrno(t, "read of a removed container", err, syscall.ENODEV)
}

// A file declares one read form and at most one write form; anything else
// is refused when the subsystem is registered.
func TestFileDeclarations(t *testing.T) {
	read := func(*Container) (string, error) { return "", nil }
	readU := func(*Container) uint64 { return 0 }
	write := func(*Container, Caller, string) error { return nil }
	writeU := func(*Container, Caller, uint64) error { return nil }
	bad := []File{
		{Name: "none"},
		{Read: read},
		{Name: "two reads", Read: read, ReadU64: readU},
		{Name: "two writes", Write: write, WriteU64: writeU},
		{Name: "locked and not", Read: read, Write: write, WriteUnlocked: write},
	}
	for _, f := range bad {
		if err := f.check(); err == nil {
			t.Errorf("file %q: declaration accepted", f.Name)
		}
	}
	good := []File{
		{Name: "r", Read: read},
		{Name: "u", ReadU64: readU, WriteU64: writeU},
		{Name: "w", WriteUnlocked: write},
	}
	for _, f := range good {
		if err := f.check(); err != nil {
			t.Errorf("file %q: %v", f.Name, err)
		}
	}
	if got := good[1].Perm(); got != 0o644 {
		t.Errorf("u64 file mode %o, want 644", got)
	}
	if got := good[2].Perm(); got != 0o200 {
		t.Errorf("unlocked write-only file mode %o, want 200", got)
	}
}

// A write of nothing is no write: the kernel's VFS answers it (0 bytes
// written) before any cgroup handler runs, so nothing changes.
func TestEmptyWrite(t *testing.T) {
	r := NewRegistry(newProcs(), newFake("s", &callLog{}))
	h := mustMount(t, r, "s")
	c := mustMkdir(t, r, h.Root(), "c")
	mustWrite(t, r, c, "notify_on_release", rootCaller, "1")
	if err := r.WriteFile(c, file(t, c, "notify_on_release"), rootCaller, ""); err != nil {
		t.Errorf("empty write: %v", err)
	}
	if got := mustRead(t, r, c, "notify_on_release"); got != "1\n" {
		t.Errorf("notify_on_release after an empty write: %q, want 1", got)
	}
}

// A file may raise its max_write_len, as cpuset's lists do; the default is
// a page.
func TestFileMaxWrite(t *testing.T) {
	long := strings.Repeat("0", 5000)
	f := File{Name: "x", Write: func(*Container, Caller, string) error { return nil }}
	bf := &BoundFile{Name: "x", File: &f}
	r := NewRegistry(newProcs(), newFake("s", &callLog{}))
	h := mustMount(t, r, "s")
	if err := r.WriteFile(h.Root(), bf, rootCaller, long); !errors.Is(err, syscall.E2BIG) {
		t.Errorf("5000 bytes to a default file: %v, want E2BIG", err)
	}
	f.MaxWrite = 6244
	if err := r.WriteFile(h.Root(), bf, rootCaller, long); err != nil {
		t.Errorf("5000 bytes to a file of max_write_len 6244: %v", err)
	}
	if err := r.WriteFile(h.Root(), bf, rootCaller, long+strings.Repeat("0", 1245)); !errors.Is(err, syscall.E2BIG) {
		t.Errorf("6245 bytes to a file of max_write_len 6244: %v, want E2BIG", err)
	}
}
