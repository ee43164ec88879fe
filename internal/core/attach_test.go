package core

import (
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The machine the attach tests run on.
var (
	userProc   = taskInfo(100, 1000, 10) // threads 101 and 102
	userThread = []TaskInfo{thread(101, 100, 1000, 11), thread(102, 100, 1000, 12)}
	rootProc   = taskInfo(200, 0, 20)
	setuidProc = TaskInfo{TID: 300, TGID: 300, Start: 30, UID: 2000, SUID: 1000}
	kthread    = TaskInfo{TID: 2, TGID: 2, Start: 1, NoSetAffinity: true}
	daemonProc = taskInfo(500, 0, 5) // thread 501
	daemonThr  = thread(501, 500, 0, 6)
)

func attachProcs() *fakeProcs {
	p := newProcs(userProc, rootProc, setuidProc, kthread, daemonProc, daemonThr)
	p.set(userThread...)
	return p
}

func TestParsePID(t *testing.T) {
	tests := []struct {
		data    string
		want    int
		wantErr syscall.Errno
	}{
		{data: "123", want: 123},
		{data: "123\n", want: 123},
		{data: "  123 \n", want: 123},
		{data: "0", want: 0},
		{data: "0x7b", want: 123}, // kstrtoint(buf, 0): hex
		{data: "0173", want: 123}, // and octal
		{data: "2147483647", want: 2147483647},
		{data: "", wantErr: syscall.EINVAL},
		{data: "\n", wantErr: syscall.EINVAL},
		{data: "abc", wantErr: syscall.EINVAL},
		{data: "12abc", wantErr: syscall.EINVAL},
		{data: "-1", wantErr: syscall.EINVAL},
		{data: "1 2", wantErr: syscall.EINVAL},
		{data: "1\n2", wantErr: syscall.EINVAL},
		{data: "1.0", wantErr: syscall.EINVAL},
		{data: "2147483648", wantErr: syscall.EINVAL}, // out of int range
		{data: "099", wantErr: syscall.EINVAL},        // not octal
		{data: "1\xa0", want: 1},                      // Latin-1 no-break space: the kernel's isspace
		{data: "1\xc2\xa0", wantErr: syscall.EINVAL},  // UTF-8 U+00A0 is not
		{data: "\v\f1\r", want: 1},
		{data: "1_00", wantErr: syscall.EINVAL},
		{data: "0b11", wantErr: syscall.EINVAL},
		{data: "+7", want: 7},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.data), func(t *testing.T) {
			got, err := ParsePID(tc.data)
			checkErrno(t, "ParsePID("+strconv.Quote(tc.data)+")", err, tc.wantErr)
			if tc.wantErr == 0 && got != tc.want {
				t.Errorf("ParsePID(%q): got %d, want %d", tc.data, got, tc.want)
			}
		})
	}
}

func TestAttachWrite(t *testing.T) {
	root := Caller{PID: 1, UID: 0}
	user := Caller{PID: 101, UID: 1000, GID: 1000}
	other := Caller{PID: 101, UID: 1001, GID: 1001}
	tests := []struct {
		name      string
		file      string
		who       Caller
		data      string
		wantErrno syscall.Errno
		wantMoved []int // TIDs in /dst afterwards
	}{
		{name: "root moves a thread", file: "tasks", who: root, data: "101", wantMoved: []int{101}},
		{name: "whitespace", file: "tasks", who: root, data: " 102\n", wantMoved: []int{102}},
		{name: "hex", file: "tasks", who: root, data: "0x64", wantMoved: []int{100}},
		{name: "tasks moves only the leader", file: "tasks", who: root, data: "100", wantMoved: []int{100}},
		{name: "procs moves every thread", file: "cgroup.procs", who: root, data: "100", wantMoved: []int{100, 101, 102}},
		{name: "procs with a thread's TID moves its group", file: "cgroup.procs", who: root, data: "102",
			wantMoved: []int{100, 101, 102}},
		{name: "tasks 0 is the writing thread", file: "tasks", who: user, data: "0", wantMoved: []int{101}},
		{name: "procs 0 is the writer's group", file: "cgroup.procs", who: user, data: "0\n",
			wantMoved: []int{100, 101, 102}},
		{name: "0 from an unknown thread", file: "tasks", who: Caller{PID: 999}, data: "0", wantErrno: syscall.ESRCH},
		{name: "garbage", file: "tasks", who: root, data: "abc", wantErrno: syscall.EINVAL},
		{name: "empty", file: "tasks", who: root, data: ""}, // a write of nothing reaches no kernel handler: no error, no move
		{name: "only a newline", file: "tasks", who: root, data: "\n", wantErrno: syscall.EINVAL},
		{name: "negative", file: "tasks", who: root, data: "-1", wantErrno: syscall.EINVAL},
		{name: "negative procs", file: "cgroup.procs", who: root, data: "-100", wantErrno: syscall.EINVAL},
		{name: "two pids", file: "tasks", who: root, data: "1 2", wantErrno: syscall.EINVAL},
		{name: "two pids procs", file: "cgroup.procs", who: root, data: "100 200", wantErrno: syscall.EINVAL},
		{name: "unknown pid", file: "tasks", who: root, data: "999", wantErrno: syscall.ESRCH},
		{name: "unknown pid procs", file: "cgroup.procs", who: root, data: "999", wantErrno: syscall.ESRCH},
		{name: "same uid", file: "tasks", who: user, data: "100", wantMoved: []int{100}},
		{name: "same uid procs", file: "cgroup.procs", who: user, data: "100", wantMoved: []int{100, 101, 102}},
		{name: "uid matches suid", file: "tasks", who: user, data: "300", wantMoved: []int{300}},
		{name: "other uid", file: "tasks", who: other, data: "100", wantErrno: syscall.EACCES},
		{name: "other uid procs", file: "cgroup.procs", who: other, data: "100", wantErrno: syscall.EACCES},
		{name: "user moves root's task", file: "tasks", who: user, data: "200", wantErrno: syscall.EACCES},
		{name: "gid does not count", file: "tasks", who: Caller{PID: 1, UID: 1001, GID: 1000}, data: "100",
			wantErrno: syscall.EACCES},
		{name: "root moves anyone", file: "tasks", who: root, data: "300", wantMoved: []int{300}},
		{name: "kernel thread", file: "tasks", who: root, data: "2", wantErrno: syscall.EINVAL},
		{name: "kernel thread procs", file: "cgroup.procs", who: root, data: "2", wantErrno: syscall.EINVAL},
		{name: "daemon leader", file: "tasks", who: root, data: "500", wantErrno: syscall.EPERM},
		{name: "daemon thread", file: "tasks", who: root, data: "501", wantErrno: syscall.EPERM},
		{name: "daemon group", file: "cgroup.procs", who: root, data: "501", wantErrno: syscall.EPERM},
		{name: "daemon moves itself", file: "cgroup.procs", who: Caller{PID: 501}, data: "0", wantErrno: syscall.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &callLog{}
			r := NewRegistry(attachProcs(), newFake("a", log))
			r.SetSelf(500)
			h := mustMount(t, r, "a")
			dst := mustMkdir(t, r, h.Root(), "dst")
			log.take()

			err := r.WriteFile(dst, file(t, dst, tc.file), tc.who, tc.data)
			checkErrno(t, "write "+strconv.Quote(tc.data)+" to "+tc.file, err, tc.wantErrno)
			if diff := cmp.Diff(tc.wantMoved, members(r, dst)); diff != "" {
				t.Errorf("members of /dst mismatch (-want +got):\n%s", diff)
			}
			if tc.wantErrno != 0 {
				if got := log.take(); len(got) != 0 {
					t.Errorf("hooks after a refused write: got %q, want none", got)
				}
			}
		})
	}
}

// A write to the tasks file of a removed container is ENODEV, as is Attach.
func TestAttachRemovedDestination(t *testing.T) {
	r := NewRegistry(attachProcs(), newFake("a", &callLog{}))
	h := mustMount(t, r, "a")
	gone := mustMkdir(t, r, h.Root(), "gone")
	r.AddTask(userProc)
	tasks, procs := file(t, gone, "tasks"), file(t, gone, "cgroup.procs")
	if err := r.Rmdir(h.Root(), "gone", rootCaller); err != nil {
		t.Fatalf("Rmdir(gone): got error %v, want nil", err)
	}
	checkErrno(t, "write to tasks", r.WriteFile(gone, tasks, rootCaller, "100"), syscall.ENODEV)
	checkErrno(t, "write to cgroup.procs", r.WriteFile(gone, procs, rootCaller, "100"), syscall.ENODEV)
	checkErrno(t, "Attach", r.Attach(gone, rootCaller, 100, false), syscall.ENODEV)
	_, err := r.ReadFile(gone, tasks)
	checkErrno(t, "read tasks", err, syscall.ENODEV)
	if got := pathOf(r, h, 100); got != "/" {
		t.Errorf("task 100: got %q, want %q", got, "/")
	}
}

// A thread-group move hands the subsystems one TaskSet: every thread, the
// leader first, each with the container it came from.
func TestAttachGroupTaskSet(t *testing.T) {
	log := &callLog{}
	a := newFake("a", log)
	r := NewRegistry(attachProcs(), a)
	h := mustMount(t, r, "a")
	x := mustMkdir(t, r, h.Root(), "x")
	dst := mustMkdir(t, r, h.Root(), "dst")
	moveTo(t, r, x, 101)
	a.attached = nil

	mustWrite(t, r, dst, "cgroup.procs", rootCaller, "102")
	if len(a.attached) != 1 {
		t.Fatalf("Attach calls: got %d, want 1", len(a.attached))
	}
	rec := a.attached[0]
	if rec.Dst != "/dst" {
		t.Errorf("TaskSet.Dst: got %q, want %q", rec.Dst, "/dst")
	}
	if len(rec.TIDs) == 0 || rec.TIDs[0] != 100 {
		t.Errorf("TaskSet.Tasks: got %v, want the leader 100 first", rec.TIDs)
	}
	src := map[int]string{}
	for i, tid := range rec.TIDs {
		src[tid] = rec.Src[i]
	}
	want := map[int]string{100: "/", 101: "/x", 102: "/"}
	if diff := cmp.Diff(want, src); diff != "" {
		t.Errorf("TaskSet sources by TID mismatch (-want +got):\n%s", diff)
	}
	if got := log.take(); slices.Contains(got, "a: attach: task 100 is not in /dst yet") {
		t.Errorf("Attach ran before the tasks moved: %q", got)
	}

	// Threads already in the destination are left out of the next TaskSet.
	moveTo(t, r, x, 100)
	a.attached = nil
	mustWrite(t, r, x, "cgroup.procs", rootCaller, "100")
	if len(a.attached) != 1 {
		t.Fatalf("Attach calls: got %d, want 1", len(a.attached))
	}
	if diff := cmp.Diff([]int{101, 102}, sortedInts(a.attached[0].TIDs)); diff != "" {
		t.Errorf("TaskSet TIDs mismatch (-want +got):\n%s", diff)
	}
}

// A thread the model has not seen yet joins its leader's containers (and the
// Fork hooks run there) before it is moved.
func TestAttachUnknownThreadJoinsLeader(t *testing.T) {
	log := &callLog{}
	r := NewRegistry(attachProcs(), newFake("a", log), newFake("b", log))
	ha := mustMount(t, r, "a")
	hb := mustMount(t, r, "b")
	xa := mustMkdir(t, r, ha.Root(), "x")
	xb := mustMkdir(t, r, hb.Root(), "x")
	dst := mustMkdir(t, r, ha.Root(), "dst")
	r.AddTask(userProc) // the leader only
	moveTo(t, r, xa, 100)
	moveTo(t, r, xb, 100)
	log.take()

	moveTo(t, r, dst, 101)
	want := []string{
		"a: fork /x 101", "b: fork /x 101",
		"a: can_attach /dst 101", "a: attach /dst 101",
	}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("hooks mismatch (-want +got):\n%s", diff)
	}
	if got := pathOf(r, hb, 101); got != "/x" {
		t.Errorf("thread 101 in hierarchy b: got %q, want %q", got, "/x")
	}
}

// A TID that /proc now shows with another start time belongs to a new task:
// the old one exits (its Exit hooks run) and the new one starts in the root
// containers before it is moved.
func TestAttachReusedTID(t *testing.T) {
	log := &callLog{}
	p := attachProcs()
	r := NewRegistry(p, newFake("a", log), newFake("b", log))
	ha := mustMount(t, r, "a")
	hb := mustMount(t, r, "b")
	xa := mustMkdir(t, r, ha.Root(), "x")
	xb := mustMkdir(t, r, hb.Root(), "x")
	ya := mustMkdir(t, r, ha.Root(), "y")
	moveTo(t, r, xa, 200)
	moveTo(t, r, xb, 200)
	log.take()

	p.set(taskInfo(200, 0, 5000)) // 200 exited unseen; a new 200 started
	moveTo(t, r, ya, 200)

	want := []string{
		"a: exit /x 200", "b: exit /x 200",
		"a: can_attach /y 200", "a: attach /y 200",
	}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("hooks mismatch (-want +got):\n%s", diff)
	}
	if got := r.Tasks()[200]; got != 5000 {
		t.Errorf("start time of task 200: got %d, want 5000", got)
	}
	if got := pathOf(r, hb, 200); got != "/" {
		t.Errorf("new task 200 in hierarchy b: got %q, want %q", got, "/")
	}
	if got := pathOf(r, ha, 200); got != "/y" {
		t.Errorf("new task 200 in hierarchy a: got %q, want %q", got, "/y")
	}
	if got := members(r, xb); len(got) != 0 {
		t.Errorf("members of b:/x: got %v, want none", got)
	}
}

// The daemon's own threads are refused before any hook runs.
func TestAttachSelf(t *testing.T) {
	r := NewRegistry(attachProcs(), newFake("a", &callLog{}))
	h := mustMount(t, r, "a")
	dst := mustMkdir(t, r, h.Root(), "dst")
	for _, group := range []bool{false, true} {
		r.SetSelf(0)
		checkErrno(t, "Attach(501) before SetSelf", r.Attach(dst, rootCaller, 501, group), 0)
		checkErrno(t, "Attach(500) back to the root", r.Attach(h.Root(), rootCaller, 500, true), 0)
		r.SetSelf(500)
		checkErrno(t, "Attach(501) after SetSelf", r.Attach(dst, rootCaller, 501, group), syscall.EPERM)
		checkErrno(t, "Attach(500) after SetSelf", r.Attach(dst, rootCaller, 500, group), syscall.EPERM)
	}
	if got := members(r, dst); len(got) != 0 {
		t.Errorf("members of /dst: got %v, want none", got)
	}
}

func sortedInts(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
