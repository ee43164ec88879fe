package conformance

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// Options describe the hierarchy under test.
type Options struct {
	// Subsys are the subsystems bound to the hierarchy ("debug", "cpuset",
	// ...). Each must show control files with its prefix in a child
	// container (the hierarchy is not expected to be mounted with
	// noprefix), except perf_event, which has none; a root may have none
	// (pids). With debug, debug.taskcount is checked against tasks.
	Subsys []string
	// NotRoot says that root is a cgroup below its hierarchy's root: the
	// root-only files are not expected in it, and the check that a new
	// process starts in the root is skipped.
	NotRoot bool
}

type suite struct {
	root string
	opts Options
}

// Run runs the whole suite against the hierarchy mounted at root.
func Run(t *testing.T, root string, opts Options) {
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		t.Fatalf("%s is not a directory", root)
	}
	s := &suite{root: root, opts: opts}
	tests := []struct {
		name string
		f    func(*testing.T, *suite)
	}{
		{"CoreFiles", testCoreFiles},
		{"ReaddirDots", testReaddirDots},
		{"Mkdir", testMkdir},
		{"Rmdir", testRmdir},
		{"ControlFilesAreFixed", testControlFilesAreFixed},
		{"Rename", testRename},
		{"TasksWrite", testTasksWrite},
		{"TasksWriteErrors", testTasksWriteErrors},
		{"WriteZeroMovesWriter", testWriteZero},
		{"Threads", testThreads},
		{"Flags", testFlags},
		{"FlagsNumberSyntax", testFlagsNumberSyntax},
		{"Permissions", testPermissions},
		{"Delegation", testDelegation},
		{"ChunkedReads", testChunkedReads},
		{"FreshReads", testFreshReads},
		{"Debug", testDebug},
		{"Tracking", testTracking},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, s) })
	}
}

func (s *suite) has(subsys string) bool { return slices.Contains(s.opts.Subsys, subsys) }

// Core files (kernel/cgroup/cgroup-v1.c, cgroup1_base_files): name and
// permission bits.
var (
	everywhere = map[string]uint32{
		"tasks":                 0o644,
		"cgroup.procs":          0o644,
		"notify_on_release":     0o644,
		"cgroup.clone_children": 0o644,
	}
	rootOnly = map[string]uint32{
		"release_agent":        0o644,
		"cgroup.sane_behavior": 0o444,
	}
)

func listDir(t *testing.T, dir string) map[string]os.FileMode {
	t.Helper()
	var ents []os.DirEntry
	if err := testutil.Do(t, "readdir "+dir, func() error {
		var err error
		ents, err = os.ReadDir(dir)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m := map[string]os.FileMode{}
	for _, e := range ents {
		m[e.Name()] = e.Type()
	}
	return m
}

func testCoreFiles(t *testing.T, s *suite) {
	e := s.newEnv(t)
	child := e.mkdir(s.root, name("core"))
	for _, tc := range []struct {
		dir    string
		isRoot bool
	}{{s.root, !s.opts.NotRoot}, {child, false}} {
		ls := listDir(t, tc.dir)
		check := func(files map[string]uint32, want bool) {
			for f, perm := range files {
				path := filepath.Join(tc.dir, f)
				typ, ok := ls[f]
				if ok != want {
					t.Errorf("%s listed: got %v, want %v", path, ok, want)
				}
				if !want {
					if exists(t, path) {
						t.Errorf("%s: exists, want ENOENT", path)
					}
					continue
				}
				if ok && !typ.IsRegular() {
					t.Errorf("%s: listed as type %v, want a regular file", path, typ)
				}
				st, err := stat(t, path)
				if err != nil {
					t.Errorf("stat %s: %v", path, err)
					continue
				}
				if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != perm {
					t.Errorf("%s: mode %#o, want regular file %#o", path, st.Mode, perm)
				}
			}
		}
		check(everywhere, true)
		check(rootOnly, tc.isRoot)
		for _, ss := range s.opts.Subsys {
			// perf_event has no files; some have none on the root (pids).
			if ss == "perf_event" || tc.isRoot {
				continue
			}
			if !slices.ContainsFunc(slices.Collect(maps.Keys(ls)), func(f string) bool { return strings.HasPrefix(f, ss+".") }) {
				t.Errorf("%s: no %s.* file among %v", tc.dir, ss, slices.Sorted(maps.Keys(ls)))
			}
		}
		if tc.isRoot {
			if got := testutil.ReadFile(t, filepath.Join(tc.dir, "cgroup.sane_behavior")); got != "0\n" {
				t.Errorf("cgroup.sane_behavior: got %q, want %q", got, "0\n")
			}
			if got := testutil.ReadFile(t, filepath.Join(tc.dir, "release_agent")); !strings.HasSuffix(got, "\n") {
				t.Errorf("release_agent: got %q, want a line", got)
			}
		}
	}
	st, err := stat(t, child)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("%s: mode %#o, want a directory", child, st.Mode)
	}
	if typ := listDir(t, s.root)[filepath.Base(child)]; !typ.IsDir() {
		t.Errorf("%s listed as type %v, want a directory", child, typ)
	}
}

// The kernel's cgroupfs lists "." and ".." (ls -a shows them).
func testReaddirDots(t *testing.T, s *suite) {
	var names []string
	err := testutil.Do(t, "getdents "+s.root, func() error {
		fd, err := unix.Open(s.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Getdents(fd, buf)
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			names = append(names, direntNames(buf[:n])...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".", ".."} {
		if !slices.Contains(names, want) {
			t.Errorf("getdents %s: no %q entry", s.root, want)
		}
	}
}

// direntNames lists every name in a getdents64 buffer, "." and ".." included.
func direntNames(buf []byte) []string {
	var names []string
	for len(buf) >= 19 {
		reclen := int(buf[16]) | int(buf[17])<<8
		if reclen == 0 || reclen > len(buf) {
			break
		}
		name := buf[19:reclen]
		if i := slices.Index(name, 0); i >= 0 {
			name = name[:i]
		}
		names = append(names, string(name))
		buf = buf[reclen:]
	}
	return names
}

func mkdirErr(t *testing.T, path string) error {
	t.Helper()
	return testutil.Do(t, "mkdir "+path, func() error { return unix.Mkdir(path, 0o755) })
}

func rmdirErr(t *testing.T, path string) error {
	t.Helper()
	return testutil.Do(t, "rmdir "+path, func() error { return unix.Rmdir(path) })
}

func testMkdir(t *testing.T, s *suite) {
	e := s.newEnv(t)
	a := e.mkdir(s.root, name("mkdir"))
	b := e.mkdir(a, "nested")
	for _, dir := range []string{a, b} {
		if !exists(t, filepath.Join(dir, "tasks")) {
			t.Errorf("%s has no tasks file", dir)
		}
	}
	wantErrno(t, "mkdir of an existing container", mkdirErr(t, a), unix.EEXIST)
	wantErrno(t, "mkdir of a control file's name", mkdirErr(t, filepath.Join(a, "tasks")), unix.EEXIST)
	bad := filepath.Join(s.root, name("new\nline"))
	err := mkdirErr(t, bad)
	if err == nil {
		e.dirs = append(e.dirs, bad)
	}
	wantErrno(t, "mkdir of a name with a newline", err, unix.EINVAL)
	if exists(t, bad) {
		t.Errorf("%q exists after a failed mkdir", bad)
	}
}

func testRmdir(t *testing.T, s *suite) {
	e := s.newEnv(t)
	withTask := e.mkdir(s.root, name("rmdir-task"))
	withChild := e.mkdir(s.root, name("rmdir-child"))
	grandchild := e.mkdir(withChild, "child")
	p := e.sleeper(nil)
	e.moveTo(filepath.Join(withTask, "tasks"), p.pid)

	wantErrno(t, "rmdir of a container with a task", rmdirErr(t, withTask), unix.EBUSY)
	wantErrno(t, "rmdir of a container with a child", rmdirErr(t, withChild), unix.EBUSY)
	wantErrno(t, "rmdir of a control file", rmdirErr(t, filepath.Join(withTask, "tasks")), unix.ENOTDIR)
	wantErrno(t, "rmdir of a missing container", rmdirErr(t, filepath.Join(s.root, name("missing"))), unix.ENOENT)

	e.moveTo(filepath.Join(s.root, "tasks"), p.pid)
	if err := rmdirErr(t, withTask); err != nil {
		t.Errorf("rmdir of a container emptied of its task: %v", errnoName(err))
	}
	if err := rmdirErr(t, grandchild); err != nil {
		t.Errorf("rmdir of an empty leaf: %v", errnoName(err))
	}
	if err := rmdirErr(t, withChild); err != nil {
		t.Errorf("rmdir of a container whose child was removed: %v", errnoName(err))
	}
	for _, dir := range []string{withTask, withChild} {
		if exists(t, dir) {
			t.Errorf("%s still exists after rmdir", dir)
		}
	}
}

func testControlFilesAreFixed(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("fixed"))
	tasks := filepath.Join(dir, "tasks")
	newFile := filepath.Join(dir, "by-hand")
	for _, tc := range []struct {
		name string
		op   func() error
		want syscall.Errno
	}{
		{"unlink tasks", func() error { return unix.Unlink(tasks) }, unix.EPERM},
		{"unlink root's tasks", func() error { return unix.Unlink(filepath.Join(s.root, "tasks")) }, unix.EPERM},
		{"create a file", func() error {
			fd, err := unix.Open(newFile, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, unix.EACCES},
		{"mknod", func() error { return unix.Mknod(newFile, unix.S_IFIFO|0o644, 0) }, unix.EPERM},
		{"symlink", func() error { return unix.Symlink("tasks", newFile) }, unix.EPERM},
		{"link", func() error { return unix.Link(tasks, newFile) }, unix.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErrno(t, tc.name, testutil.Do(t, tc.name, tc.op), tc.want)
		})
	}
	if !exists(t, tasks) {
		t.Errorf("%s is gone", tasks)
	}
	if exists(t, newFile) {
		t.Errorf("%s exists", newFile)
		testutil.Do(t, "unlink "+newFile, func() error { return unix.Unlink(newFile) })
	}
}

func renameErr(t *testing.T, from, to string) error {
	t.Helper()
	return testutil.Do(t, "rename "+from, func() error { return unix.Rename(from, to) })
}

func testRename(t *testing.T, s *suite) {
	e := s.newEnv(t)
	old := e.mkdir(s.root, name("rename-old"))
	other := e.mkdir(s.root, name("rename-other"))
	renamed := filepath.Join(s.root, name("rename-new"))
	p := e.sleeper(nil)
	e.moveTo(filepath.Join(old, "tasks"), p.pid)

	if err := renameErr(t, old, renamed); err != nil {
		t.Fatalf("rename within the parent: %v", errnoName(err))
	}
	e.dirs = append(e.dirs, renamed) // the cleanup removes it; old is gone
	if exists(t, old) {
		t.Errorf("%s still exists after the rename", old)
	}
	if ids := readIDs(t, filepath.Join(renamed, "tasks")); !slices.Contains(ids, p.pid) {
		t.Errorf("renamed container's tasks: got %v, want %d in it", ids, p.pid)
	}
	if typ := listDir(t, s.root)[filepath.Base(renamed)]; !typ.IsDir() {
		t.Errorf("%s not listed as a directory after the rename", renamed)
	}

	wantErrno(t, "rename across parents", renameErr(t, renamed, filepath.Join(other, "moved")), unix.EIO)
	wantErrno(t, "rename of a control file", renameErr(t, filepath.Join(other, "tasks"), filepath.Join(other, "tasks2")), unix.ENOTDIR)
	nl := filepath.Join(s.root, name("new\nline"))
	err := renameErr(t, other, nl)
	if err == nil {
		e.dirs = append(e.dirs, nl)
	}
	wantErrno(t, "rename to a name with a newline", err, unix.EINVAL)
	wantErrno(t, "rename onto an existing sibling", renameErr(t, renamed, other), unix.EEXIST)
	if !exists(t, renamed) || !exists(t, other) {
		t.Errorf("a failed rename changed the tree")
	}
}

func testTasksWrite(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("tasks"))
	p := e.sleeper(nil)
	rootTasks := filepath.Join(s.root, "tasks")
	// Into the root first, so that "gone from the root" means something
	// whether or not the implementation saw the process being born.
	e.moveTo(rootTasks, p.pid)
	if ids := readIDs(t, rootTasks); !slices.Contains(ids, p.pid) {
		t.Fatalf("root's tasks after writing %d to it: %d missing", p.pid, p.pid)
	}
	e.moveTo(filepath.Join(dir, "tasks"), p.pid)
	if ids := readIDs(t, filepath.Join(dir, "tasks")); !slices.Equal(ids, []int{p.pid}) {
		t.Errorf("%s/tasks: got %v, want [%d]", dir, ids, p.pid)
	}
	if ids := readIDs(t, filepath.Join(dir, "cgroup.procs")); !slices.Equal(ids, []int{p.pid}) {
		t.Errorf("%s/cgroup.procs: got %v, want [%d]", dir, ids, p.pid)
	}
	if ids := readIDs(t, rootTasks); slices.Contains(ids, p.pid) {
		t.Errorf("root's tasks still lists %d after it moved", p.pid)
	}
	if ids := readIDs(t, filepath.Join(s.root, "cgroup.procs")); slices.Contains(ids, p.pid) {
		t.Errorf("root's cgroup.procs still lists %d after it moved", p.pid)
	}
	// Moving a task where it already is succeeds and changes nothing.
	if err := testutil.WriteFile(t, filepath.Join(dir, "tasks"), strconv.Itoa(p.pid)+"\n"); err != nil {
		t.Errorf("writing %d to the tasks file it is in: %v", p.pid, errnoName(err))
	}
	// A second task, by cgroup.procs, with a trailing newline as echo writes.
	q := e.sleeper(nil)
	testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(q.pid)+"\n")
	want := []int{p.pid, q.pid}
	slices.Sort(want)
	got := readIDs(t, filepath.Join(dir, "tasks"))
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s/tasks: got %v, want %v", dir, got, want)
	}
	// And back.
	e.moveTo(rootTasks, p.pid)
	if ids := readIDs(t, filepath.Join(dir, "tasks")); !slices.Equal(ids, []int{q.pid}) {
		t.Errorf("%s/tasks after moving %d back: got %v, want [%d]", dir, p.pid, ids, q.pid)
	}
}

func testTasksWriteErrors(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("errors"))
	p := e.sleeper(nil)
	noSuch := strconv.Itoa(pidMax(t) + 1)
	for _, file := range []string{"tasks", "cgroup.procs"} {
		path := filepath.Join(dir, file)
		for _, tc := range []struct {
			name, data string
			want       syscall.Errno
		}{
			{"garbage", "garbage\n", unix.EINVAL},
			{"number then garbage", "12abc", unix.EINVAL},
			{"negative", "-1", unix.EINVAL},
			{"two PIDs in one write", fmt.Sprintf("%d %d\n", p.pid, p.pid), unix.EINVAL},
			{"no such PID", noSuch, unix.ESRCH},
		} {
			t.Run(file+"/"+tc.name, func(t *testing.T) {
				wantErrno(t, fmt.Sprintf("write %q to %s", tc.data, file), testutil.WriteFile(t, path, tc.data), tc.want)
			})
		}
	}
	if ids := readIDs(t, filepath.Join(dir, "tasks")); len(ids) != 0 {
		t.Errorf("%s/tasks after failed writes: got %v, want none", dir, ids)
	}
}

// Writing 0 moves the writer: its thread to tasks, its thread group to
// cgroup.procs. The writer is a shell, as in the seed's `echo 0 > tasks`,
// which then becomes a sleep (same PID) so that the cleanup can move it back.
func testWriteZero(t *testing.T, s *suite) {
	for _, file := range []string{"tasks", "cgroup.procs"} {
		t.Run(file, func(t *testing.T) {
			e := s.newEnv(t)
			dir := e.mkdir(s.root, name("zero"))
			path := filepath.Join(dir, file)
			p := e.start(nil, "/bin/sh", "-c", `echo 0 > "$1" || echo "write failed"; cat "$1"; echo END; exec sleep 600`, "sh", path)
			outText := p.out.waitLine(t, "END")
			if strings.Contains(outText, "write failed") {
				t.Fatalf("echo 0 > %s failed: %q", file, outText)
			}
			ids, err := parseIDs(outText)
			if err != nil {
				t.Fatalf("the shell's cat %s: %v", file, err)
			}
			if !slices.Contains(ids, p.pid) {
				t.Errorf("%s as the shell read it after echo 0: got %v, want its PID %d in it", file, ids, p.pid)
			}
			if ids := readIDs(t, filepath.Join(dir, "tasks")); !slices.Contains(ids, p.pid) {
				t.Errorf("%s/tasks: got %v, want %d in it", dir, ids, p.pid)
			}
			if ids := readIDs(t, filepath.Join(s.root, "tasks")); slices.Contains(ids, p.pid) {
				t.Errorf("root's tasks still lists the shell %d", p.pid)
			}
		})
	}
}

// startThreads starts the helper with n extra threads and returns it and its
// thread IDs, the leader first.
func (e *env) startThreads(n int) (*proc, []int) {
	e.t.Helper()
	p := e.start(nil, helperBin(e.t), "threads", strconv.Itoa(n))
	p.out.waitLine(e.t, "ready")
	tids, err := threadIDs(p.pid)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(tids) < n+1 {
		e.t.Fatalf("helper %d has threads %v, want at least %d", p.pid, tids, n+1)
	}
	return p, tids
}

func testThreads(t *testing.T, s *suite) {
	e := s.newEnv(t)
	one := e.mkdir(s.root, name("thread"))
	group := e.mkdir(s.root, name("group"))
	byTID := e.mkdir(s.root, name("group-by-tid"))
	p, tids := e.startThreads(4)
	e.moveTo(filepath.Join(s.root, "cgroup.procs"), p.pid)
	rootTasks := readIDs(t, filepath.Join(s.root, "tasks"))
	for _, tid := range tids {
		if !slices.Contains(rootTasks, tid) {
			t.Errorf("root's tasks after writing %d to its cgroup.procs: thread %d missing", p.pid, tid)
		}
	}

	// tasks moves one thread.
	var other int
	for _, tid := range tids {
		if tid != p.pid {
			other = tid
			break
		}
	}
	e.moveTo(filepath.Join(one, "tasks"), other)
	if ids := readIDs(t, filepath.Join(one, "tasks")); !slices.Equal(ids, []int{other}) {
		t.Errorf("%s/tasks after writing thread %d: got %v, want [%d]", one, other, ids, other)
	}
	if ids := readIDs(t, filepath.Join(one, "cgroup.procs")); !slices.Equal(ids, []int{p.pid}) {
		t.Errorf("%s/cgroup.procs holding thread %d: got %v, want its group [%d]", one, other, ids, p.pid)
	}
	if ids := readIDs(t, filepath.Join(s.root, "tasks")); !slices.Contains(ids, p.pid) || slices.Contains(ids, other) {
		t.Errorf("root's tasks after moving thread %d: leader %d listed %v, thread listed %v",
			other, p.pid, slices.Contains(ids, p.pid), slices.Contains(ids, other))
	}

	// cgroup.procs moves every thread of the group, wherever each one is.
	e.moveTo(filepath.Join(group, "cgroup.procs"), p.pid)
	checkGroupIn := func(dir string) {
		t.Helper()
		got := readIDs(t, filepath.Join(dir, "tasks"))
		for _, tid := range tids {
			if !slices.Contains(got, tid) {
				t.Errorf("%s/tasks: thread %d of %d missing (got %v, want all of %v)", dir, tid, p.pid, got, tids)
			}
		}
		if ids := readIDs(t, filepath.Join(dir, "cgroup.procs")); !slices.Equal(ids, []int{p.pid}) {
			t.Errorf("%s/cgroup.procs: got %v, want [%d]", dir, ids, p.pid)
		}
	}
	checkGroupIn(group)
	if ids := readIDs(t, filepath.Join(one, "tasks")); len(ids) != 0 {
		t.Errorf("%s/tasks after the group moved: got %v, want none", one, ids)
	}
	rootTasks = readIDs(t, filepath.Join(s.root, "tasks"))
	for _, tid := range tids {
		if slices.Contains(rootTasks, tid) {
			t.Errorf("root's tasks still lists thread %d after its group moved", tid)
		}
	}

	// cgroup.procs given a thread's ID moves that thread's whole group.
	e.moveTo(filepath.Join(byTID, "cgroup.procs"), other)
	checkGroupIn(byTID)
	if ids := readIDs(t, filepath.Join(group, "tasks")); len(ids) != 0 {
		t.Errorf("%s/tasks after the group moved by a thread's ID: got %v, want none", group, ids)
	}
}

func testFlags(t *testing.T, s *suite) {
	e := s.newEnv(t)
	flags := []string{"notify_on_release", "cgroup.clone_children"}
	parent := e.mkdir(s.root, name("flags"))
	for _, f := range flags {
		// A child copies its parent's flags at mkdir: here the root's.
		if got, want := testutil.ReadFile(t, filepath.Join(parent, f)), testutil.ReadFile(t, filepath.Join(s.root, f)); got != want {
			t.Errorf("%s of a new child of the root: got %q, want the root's %q", f, got, want)
		}
	}
	for _, f := range flags {
		path := filepath.Join(parent, f)
		for _, tc := range []struct{ write, want string }{
			{"1", "1\n"}, {"0\n", "0\n"}, {"5", "1\n"}, {"0x10", "1\n"},
		} {
			if err := testutil.WriteFile(t, path, tc.write); err != nil {
				t.Errorf("write %q to %s: %v", tc.write, f, errnoName(err))
				continue
			}
			if got := testutil.ReadFile(t, path); got != tc.want {
				t.Errorf("%s after writing %q: got %q, want %q", f, tc.write, got, tc.want)
			}
		}
		wantErrno(t, "write garbage to "+f, testutil.WriteFile(t, path, "yes\n"), unix.EINVAL)
		if got := testutil.ReadFile(t, path); got != "1\n" {
			t.Errorf("%s after a rejected write: got %q, want %q", f, got, "1\n")
		}
	}
	// Set to 1 in parent: a new child inherits 1; set back to 0: the next
	// child inherits 0, and the first keeps its own.
	set := e.mkdir(parent, "set")
	for _, f := range flags {
		testutil.MustWrite(t, filepath.Join(parent, f), "0")
	}
	unset := e.mkdir(parent, "unset")
	for _, f := range flags {
		if got := testutil.ReadFile(t, filepath.Join(set, f)); got != "1\n" {
			t.Errorf("%s of a child made while the parent had 1: got %q, want %q", f, got, "1\n")
		}
		if got := testutil.ReadFile(t, filepath.Join(unset, f)); got != "0\n" {
			t.Errorf("%s of a child made while the parent had 0: got %q, want %q", f, got, "0\n")
		}
	}
}

// The flag files are write_u64 files: the kernel parses them with
// kstrtoull(buf, 0) and does not strip the buffer, so a leading '+' is
// accepted and whitespace other than one final newline is not.
func testFlagsNumberSyntax(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("u64"))
	path := filepath.Join(dir, "notify_on_release")
	for _, tc := range []struct {
		data string
		want syscall.Errno // 0: accepted as 1
	}{
		{"+5", 0},
		{"010\n", 0},
		{" 1", unix.EINVAL},
		{"1 ", unix.EINVAL},
		{"1\n\n", unix.EINVAL},
	} {
		testutil.MustWrite(t, path, "0")
		err := testutil.WriteFile(t, path, tc.data)
		if tc.want != 0 {
			wantErrno(t, fmt.Sprintf("write %q to notify_on_release", tc.data), err, tc.want)
			continue
		}
		if err != nil {
			t.Errorf("write %q to notify_on_release: got %v, want success", tc.data, errnoName(err))
		} else if got := testutil.ReadFile(t, path); got != "1\n" {
			t.Errorf("notify_on_release after writing %q: got %q, want %q", tc.data, got, "1\n")
		}
	}
}

// cgroup v1: a writer that is not root may move only tasks whose real or
// saved uid is its euid, whatever the file's mode lets it open.
func testPermissions(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("perm"))
	tasks := filepath.Join(dir, "tasks")
	if err := testutil.Do(t, "chmod "+tasks, func() error { return unix.Chmod(tasks, 0o666) }); err != nil {
		t.Fatalf("chmod 0666 %s: %v", tasks, errnoName(err))
	}
	st, err := stat(t, tasks)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o666 {
		t.Errorf("%s after chmod 0666: mode %#o", tasks, st.Mode&0o7777)
	}

	rootOwned := e.sleeper(nil)
	e.moveTo(filepath.Join(s.root, "tasks"), rootOwned.pid)
	if got := runHelper(t, nobody, "write", tasks, strconv.Itoa(rootOwned.pid)); got != fmt.Sprintf("write %d", unix.EACCES) {
		t.Errorf("uid 65534 writing root's task %d to a 0666 tasks file: got %q, want %q", rootOwned.pid, got, fmt.Sprintf("write %d (EACCES)", unix.EACCES))
	}
	if ids := readIDs(t, tasks); slices.Contains(ids, rootOwned.pid) {
		t.Errorf("root's task %d moved by uid 65534", rootOwned.pid)
	}

	own := e.sleeper(nobody)
	e.moveTo(filepath.Join(s.root, "tasks"), own.pid)
	if got := runHelper(t, nobody, "write", tasks, strconv.Itoa(own.pid)); got != "ok" {
		t.Errorf("uid 65534 writing its own task %d: got %q, want ok", own.pid, got)
	}
	if ids := readIDs(t, tasks); !slices.Contains(ids, own.pid) {
		t.Errorf("%s: got %v, want uid 65534's task %d in it", tasks, ids, own.pid)
	}

	// Without the chmod the file's mode refuses the open.
	closed := e.mkdir(s.root, name("perm-closed"))
	if got := runHelper(t, nobody, "write", filepath.Join(closed, "tasks"), strconv.Itoa(own.pid)); got != fmt.Sprintf("open %d", unix.EACCES) {
		t.Errorf("uid 65534 opening a 0644 root-owned tasks file: got %q, want %q", got, fmt.Sprintf("open %d (EACCES)", unix.EACCES))
	}
}

// chmod and chown of a container directory are how a subtree is delegated.
func testDelegation(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("delegated"))
	err := testutil.Do(t, "chown "+dir, func() error { return unix.Lchown(dir, int(nobody.Uid), int(nobody.Gid)) })
	if err != nil {
		t.Fatalf("chown %s: %v", dir, errnoName(err))
	}
	if err := testutil.Do(t, "chmod "+dir, func() error { return unix.Chmod(dir, 0o750) }); err != nil {
		t.Fatalf("chmod %s: %v", dir, errnoName(err))
	}
	st, err := stat(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != nobody.Uid || st.Gid != nobody.Gid || st.Mode != unix.S_IFDIR|0o750 {
		t.Errorf("%s after chown 65534:65534 and chmod 0750: uid %d gid %d mode %#o", dir, st.Uid, st.Gid, st.Mode)
	}
	// The files inside keep their owner: a delegate gets the files it is
	// given (tasks, cgroup.procs), not its own container's limits.
	for _, f := range []string{"tasks", "notify_on_release", "cgroup.clone_children"} {
		path := filepath.Join(dir, f)
		if st, err := stat(t, path); err != nil || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s after chown of its directory to 65534:65534: owner %d:%d (err %v), want 0:0 as before", path, st.Uid, st.Gid, err)
		}
	}
	tasks := filepath.Join(dir, "tasks")
	if err := testutil.Do(t, "chown "+tasks, func() error { return unix.Lchown(tasks, int(nobody.Uid), -1) }); err != nil {
		t.Fatalf("chown %s: %v", tasks, errnoName(err))
	}
	if st, err := stat(t, tasks); err != nil || st.Uid != nobody.Uid || st.Gid != 0 {
		t.Errorf("%s after chown 65534: uid %d gid %d (err %v), want 65534 0", tasks, st.Uid, st.Gid, err)
	}

	if got := runHelper(t, nobody, "write", filepath.Join(dir, "notify_on_release"), "1"); got != fmt.Sprintf("open %d", unix.EACCES) {
		t.Errorf("uid 65534 writing notify_on_release of the directory it was given: got %q, want %q", got, fmt.Sprintf("open %d (EACCES)", unix.EACCES))
	}

	// The delegate makes and removes its own sub-containers, which it owns.
	sub := filepath.Join(dir, "sub")
	if got := runHelper(t, nobody, "mkdir", sub); got != "ok" {
		t.Fatalf("uid 65534 mkdir in a container it owns: got %q, want ok", got)
	}
	e.dirs = append(e.dirs, sub)
	e.prepare(sub)
	for _, path := range []string{sub, filepath.Join(sub, "tasks")} {
		if st, err := stat(t, path); err != nil || st.Uid != nobody.Uid || st.Gid != nobody.Gid {
			t.Errorf("%s made by uid 65534: owner %d:%d (err %v), want 65534:65534", path, st.Uid, st.Gid, err)
		}
	}
	own := e.sleeper(nobody)
	e.moveTo(filepath.Join(s.root, "tasks"), own.pid)
	if got := runHelper(t, nobody, "write", filepath.Join(sub, "tasks"), strconv.Itoa(own.pid)); got != "ok" {
		t.Errorf("uid 65534 moving its own task into its sub-container: got %q, want ok", got)
	}
	e.moveTo(filepath.Join(s.root, "tasks"), own.pid)
	if got := runHelper(t, nobody, "rmdir", sub); got != "ok" {
		t.Errorf("uid 65534 rmdir of its sub-container: got %q, want ok", got)
	}
	// Not in a container it does not own.
	closed := e.mkdir(s.root, name("not-delegated"))
	if got := runHelper(t, nobody, "mkdir", filepath.Join(closed, "sub")); got != fmt.Sprintf("mkdir %d", unix.EACCES) {
		e.dirs = append(e.dirs, filepath.Join(closed, "sub"))
		t.Errorf("uid 65534 mkdir in root's container: got %q, want %q", got, fmt.Sprintf("mkdir %d (EACCES)", unix.EACCES))
	}
}

// readChunks reads path through one open file, first n bytes, then the rest
// in reads of size chunk.
func readChunks(t *testing.T, path string, first, chunk int) string {
	t.Helper()
	var b []byte
	err := testutil.Do(t, "read "+path, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, max(first, chunk))
		for size := first; ; size = chunk {
			n, err := f.Read(buf[:size])
			b = append(b, buf[:n]...)
			if errors.Is(err, io.EOF) || (err == nil && n == 0) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testChunkedReads(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("chunks"))
	p, q := e.sleeper(nil), e.sleeper(nil)
	e.moveTo(filepath.Join(dir, "tasks"), p.pid)
	e.moveTo(filepath.Join(dir, "tasks"), q.pid)
	testutil.MustWrite(t, filepath.Join(dir, "notify_on_release"), "1")
	for _, f := range []string{"tasks", "cgroup.procs", "notify_on_release"} {
		path := filepath.Join(dir, f)
		whole := testutil.ReadFile(t, path)
		if got := readChunks(t, path, 3, 1<<16); got != whole {
			t.Errorf("%s read as 3 bytes then the rest: got %q, want %q as one read gives", f, got, whole)
		}
		if got := readChunks(t, path, 1, 1); got != whole {
			t.Errorf("%s read a byte at a time: got %q, want %q", f, got, whole)
		}
	}
	// The root's files are long and change as the machine runs: read in
	// small chunks, they must still be whole lines of unique IDs.
	for _, f := range []string{"tasks", "cgroup.procs"} {
		got := readChunks(t, filepath.Join(s.root, f), 3, 7)
		ids, err := parseIDs(got)
		if err != nil {
			t.Errorf("root's %s read in 7-byte chunks: %v", f, err)
			continue
		}
		sorted := slices.Clone(ids)
		slices.Sort(sorted)
		if len(slices.Compact(sorted)) != len(ids) {
			t.Errorf("root's %s read in 7-byte chunks has duplicates: %v", f, ids)
		}
	}
}

func testFreshReads(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("fresh"))
	tasks := filepath.Join(dir, "tasks")
	p := e.sleeper(nil)

	// One open file, read before and after a move made through another.
	var f *os.File
	if err := testutil.Do(t, "open "+tasks, func() error {
		var err error
		f, err = os.Open(tasks)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer testutil.Do(t, "close "+tasks, f.Close)
	pread := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		var n int
		if err := testutil.Do(t, "pread "+tasks, func() error {
			var err error
			n, err = f.ReadAt(buf, 0)
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := pread(); got != "" {
		t.Fatalf("%s of a new container: got %q, want it empty", tasks, got)
	}
	e.moveTo(tasks, p.pid)
	want := strconv.Itoa(p.pid) + "\n"
	if got := testutil.ReadFile(t, tasks); got != want {
		t.Errorf("%s opened after the move: got %q, want %q", tasks, got, want)
	}
	// The kernel keeps a tasks file's PID list for up to a second after
	// a read (CGROUP_PIDLIST_DESTROY_DELAY), so allow for that.
	start := time.Now()
	if err := eventually(3*time.Second, func() error {
		if got := pread(); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	}); err != nil {
		t.Errorf("%s read again at offset 0 through the file opened before the move: %v", tasks, err)
	} else {
		t.Logf("the open tasks file showed the move after %v", time.Since(start).Round(time.Millisecond))
	}

	// A flag file is formatted afresh at every read from offset 0.
	nor := filepath.Join(dir, "notify_on_release")
	var g *os.File
	if err := testutil.Do(t, "open "+nor, func() error {
		var err error
		g, err = os.Open(nor)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer testutil.Do(t, "close "+nor, g.Close)
	for _, v := range []string{"1", "0", "1"} {
		testutil.MustWrite(t, nor, v)
		buf := make([]byte, 16)
		var n int
		if err := testutil.Do(t, "pread "+nor, func() error {
			var err error
			n, err = g.ReadAt(buf, 0)
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != v+"\n" {
			t.Errorf("%s read again through one open file after writing %s: got %q, want %q", nor, v, got, v+"\n")
		}
	}
}

func testDebug(t *testing.T, s *suite) {
	if !s.has("debug") {
		t.Skip("no debug subsystem on this hierarchy")
	}
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("debug"))
	count := filepath.Join(dir, "debug.taskcount")
	if got := testutil.ReadFile(t, count); got != "0\n" {
		t.Errorf("debug.taskcount of a new container: got %q, want %q", got, "0\n")
	}
	p, tids := e.startThreads(2)
	e.moveTo(filepath.Join(dir, "cgroup.procs"), p.pid)
	// The helper's runtime may start a thread between two reads: compare
	// until they agree.
	if err := eventually(2*time.Second, func() error {
		n := len(readIDs(t, filepath.Join(dir, "tasks")))
		if n < len(tids) {
			return fmt.Errorf("%s/tasks lists %d threads, want at least %d", dir, n, len(tids))
		}
		if got := testutil.ReadFile(t, count); got != fmt.Sprintf("%d\n", n) {
			return fmt.Errorf("debug.taskcount: got %q, want %q (the lines of tasks)", got, fmt.Sprintf("%d\n", n))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// testTracking checks what needs the implementation to learn of forks and
// exits on its own, as the kernel does.
func testTracking(t *testing.T, s *suite) {
	t.Run("NewProcessInRoot", func(t *testing.T) {
		if s.opts.NotRoot {
			t.Skip("root is not the hierarchy's root")
		}
		e := s.newEnv(t)
		p := e.sleeper(nil)
		if err := eventually(2*time.Second, func() error {
			if !slices.Contains(readIDs(t, filepath.Join(s.root, "tasks")), p.pid) {
				return fmt.Errorf("new process %d is not in the root's tasks", p.pid)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})
	t.Run("ForkFollowsParent", func(t *testing.T) {
		e := s.newEnv(t)
		dir := e.mkdir(s.root, name("fork"))
		tasks := filepath.Join(dir, "tasks")
		// The shell moves itself, then forks a job: the job starts where
		// its parent is.
		sh := e.start(nil, "/bin/sh", "-c", `echo 0 > "$1" || echo "write failed"; sleep 600 & echo "$!"; echo END; exec sleep 600`, "sh", tasks)
		out := sh.out.waitLine(t, "END")
		bg, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("shell printed %q, want its job's PID", out)
		}
		e.adopt(bg)
		if err := eventually(2*time.Second, func() error {
			ids := readIDs(t, tasks)
			if !slices.Contains(ids, sh.pid) || !slices.Contains(ids, bg) {
				return fmt.Errorf("%s: got %v, want the shell %d and its job %d forked there", tasks, ids, sh.pid, bg)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	})
	t.Run("ExitedTaskLeaves", func(t *testing.T) {
		e := s.newEnv(t)
		dir := e.mkdir(s.root, name("exit"))
		tasks := filepath.Join(dir, "tasks")
		p := e.sleeper(nil)
		e.moveTo(tasks, p.pid)
		if err := p.kill(); err != nil {
			t.Fatal(err)
		}
		if err := eventually(2*time.Second, func() error {
			if ids := readIDs(t, tasks); len(ids) != 0 {
				return fmt.Errorf("%s lists %v after its only task exited and was reaped", tasks, ids)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		if err := rmdirErr(t, dir); err != nil {
			t.Errorf("rmdir of a container whose only task exited: %v", errnoName(err))
		}
	})
}
