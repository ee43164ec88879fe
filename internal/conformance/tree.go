package conformance

// The directory tree: the core files every container has, readdir, mkdir,
// rmdir, rename, and control files that cannot be made or removed.

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

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
