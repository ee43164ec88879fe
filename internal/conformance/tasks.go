package conformance

// Membership: writes to tasks and cgroup.procs, threads, and the tracking
// of forks and exits that the kernel does on its own.

import (
	"fmt"
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
