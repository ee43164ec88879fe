package procevent

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// TestTaskOf checks what a scan makes of a thread's stat and status, comm
// names made to trip parsers included.
func TestTaskOf(t *testing.T) {
	const tail = " S 7 1 1 0 -1 4194560 10 0 0 0 1 2 0 0 20 0 1 0 4242 3133440 406 18446744073709551615 0 0\n"
	const ids = "Uid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\n"
	const status = "Name:\tx\nTgid:\t9\nPid:\t12\n" + ids + "FDSize:\t64\n"
	const stat = "12 (bash)" + tail
	tests := []struct {
		name         string
		stat, status string
		want         Task
		wantErr      bool
	}{
		{"plain", stat, status, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: "bash"}, false},
		{"spaces", "12 (a b c)" + tail, status, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: "a b c"}, false},
		{"parentheses", "12 ((sd-pam))" + tail, status, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: "(sd-pam)"}, false},
		{"fake fields", "12 (x) S 1 (y)" + tail, status, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: "x) S 1 (y"}, false},
		{"newline", "12 (a\nb)" + tail, status, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: "a\nb"}, false},
		{"empty comm", "12 ()" + tail, status, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: ""}, false},
		{"escaped name", stat, "Name:\ta\\nUid:\t0\nTgid:\t9\n" + ids, Task{TID: 12, TGID: 9, PPID: 7, Start: 4242, UID: 1, EUID: 2, GID: 5, EGID: 6, Comm: "bash"}, false},
		{"no comm", "12 bash S 1", status, Task{}, true},
		{"bad tid", "x (bash)" + tail, status, Task{}, true},
		{"short", "12 (bash) S 7 1 1", status, Task{}, true},
		{"bad start", "12 (bash) S 7 1 1 0 -1 4 1 0 0 0 1 2 0 0 20 0 1 0 -5 0\n", status, Task{}, true},
		{"no gid", stat, "Tgid:\t9\nUid:\t1\t2\t3\t4\n", Task{}, true},
		{"bad uid", stat, "Tgid:\t9\nUid:\tx\t2\t3\t4\nGid:\t5\t6\t7\t8\n", Task{}, true},
		{"one uid", stat, "Tgid:\t9\nUid:\t1\nGid:\t5\t6\t7\t8\n", Task{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := proc.ParseStat([]byte(tc.stat))
			var got Task
			if err == nil {
				var ps proc.Status
				if ps, err = proc.ParseStatus([]byte(tc.status)); err == nil {
					got = taskOf(st, ps)
				}
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// testdata/proc has process 42 with threads 42 and 43 named to trip
// parsers, 77 whose task directory is gone, and entries that are not
// processes.
func TestScanFakeRoot(t *testing.T) {
	got, err := Scan("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Task) int { return cmp.Compare(a.TID, b.TID) })
	want := []Task{
		{TID: 42, TGID: 42, PPID: 1, Start: 123456, Comm: "x) S 1 (y"},
		{TID: 43, TGID: 42, PPID: 1, Start: 123460, UID: 1000, EUID: 1001, GID: 100, EGID: 101, Comm: "two\nlines"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if task, err := ReadTask("testdata/proc", 42); err != nil || task != want[0] {
		t.Errorf("ReadTask(42): got %+v, %v, want %+v", task, err, want[0])
	}
	if _, err := ReadTask("testdata/proc", 77); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ReadTask(77): got %v, want ESRCH", err)
	}
	if _, err := Scan("testdata/nonexistent"); err == nil {
		t.Error("Scan of a missing root: got no error")
	}
}

// lockedThread starts a goroutine on a thread of its own and returns the
// thread's ID and a function that ends the thread.
func lockedThread(t *testing.T) (tid int, stop func()) {
	ids, done := make(chan int), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ids <- unix.Gettid()
		<-done
	}()
	return <-ids, func() { close(done) }
}

// statStart is field 22 of a stat file, read and parsed apart from Scan's
// own reading (one open of the path given, internal/proc's parser, which
// its own tests check against the real /proc).
func statStart(t *testing.T, path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := proc.ParseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	return st.Start
}

func TestScanSelf(t *testing.T) {
	tid, stop := lockedThread(t)
	defer stop()
	tasks, err := Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	want := map[int]Task{
		pid: {TID: pid, TGID: pid, PPID: os.Getppid(), Start: statStart(t, "/proc/self/stat"),
			UID: uint32(os.Getuid()), EUID: uint32(os.Geteuid()), GID: uint32(os.Getgid()), EGID: uint32(os.Getegid())},
		tid: {TID: tid, TGID: pid, PPID: os.Getppid(), Start: statStart(t, fmt.Sprintf("/proc/self/task/%d/stat", tid)),
			UID: uint32(os.Getuid()), EUID: uint32(os.Geteuid()), GID: uint32(os.Getgid()), EGID: uint32(os.Getegid())},
	}
	found := 0
	for _, task := range tasks {
		w, ok := want[task.TID]
		if !ok {
			continue
		}
		found++
		task.Comm = "" // the test binary's name, truncated
		if task != w {
			t.Errorf("got %+v, want %+v", task, w)
		}
		if rt, err := ReadTask("/proc", task.TID); err != nil || rt.Start != w.Start || rt.TGID != pid {
			t.Errorf("ReadTask(%d): got %+v, %v, want %+v", task.TID, rt, err, w)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the tasks %v among %d", found, want, len(tasks))
	}
	t.Logf("%d tasks", len(tasks))
}

func TestReadTaskGone(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if task, err := ReadTask("/proc", cmd.Process.Pid); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ReadTask of reaped %d: got %+v, %v, want ESRCH", cmd.Process.Pid, task, err)
	}
}

// BenchmarkScan scans /proc with at least 500 threads on the machine
// (this process adds what is missing), with this package and with
// prometheus/procfs.
func BenchmarkScan(b *testing.B) {
	tasks, err := Scan("/proc")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	for range 500 - len(tasks) {
		started := make(chan struct{})
		go func() { runtime.LockOSThread(); close(started); <-done }()
		<-started
	}
	time.Sleep(10 * time.Millisecond)
	for _, bc := range []struct {
		name string
		scan func(string) ([]Task, error)
	}{{"own", Scan}, {"procfs", scanProcfs}} {
		b.Run(bc.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				tasks, err := bc.scan("/proc")
				if err != nil {
					b.Fatal(err)
				}
				n = len(tasks)
			}
			b.ReportMetric(float64(n), "threads")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/thread")
		})
	}
}

// scanProcfs is Scan written with prometheus/procfs, for comparison.
func scanProcfs(root string) ([]Task, error) {
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, err
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, err
	}
	var tasks []Task
	for _, p := range procs {
		threads, err := fs.AllThreads(p.PID)
		if err != nil {
			continue
		}
		for _, th := range threads {
			st, err := th.Stat()
			if err != nil {
				continue
			}
			status, err := th.NewStatus()
			if err != nil {
				continue
			}
			tasks = append(tasks, Task{TID: st.PID, TGID: status.TGID, PPID: st.PPID, Start: st.Starttime,
				UID: uint32(status.UIDs[0]), EUID: uint32(status.UIDs[1]), GID: uint32(status.GIDs[0]), EGID: uint32(status.GIDs[1]), Comm: st.Comm})
		}
	}
	return tasks, nil
}
