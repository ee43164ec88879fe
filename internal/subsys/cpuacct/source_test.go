package cpuacct

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/proc"
)

func TestParseProcStat(t *testing.T) {
	in := "cpu  17568 0 13637 120570 181 0 223 0 0 0\n" +
		"cpu0 8642 1 6740 60529 41 2 94 0 0 0\n" +
		"cpu1 8926 0 6896 60040 139 0 129 0 0 0\n" +
		"intr 1 2 3\nbtime 1795736000\n"
	got, err := parseProcStat([]byte(in), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []counters{
		{usage: (8643 + 6740 + 2 + 94) * nsPerTick, user: 8643 * nsPerTick, sys: (6740 + 2 + 94) * nsPerTick},
		{usage: (8926 + 6896 + 129) * nsPerTick, user: 8926 * nsPerTick, sys: (6896 + 129) * nsPerTick},
		{}, // possible but offline: /proc/stat has no line for it
	}
	for i := range want {
		if got.cpus[i] != want[i] {
			t.Errorf("cpu %d: got %+v, want %+v", i, got.cpus[i], want[i])
		}
	}
	if got.btime != 1795736000 {
		t.Errorf("btime: got %d, want 1795736000", got.btime)
	}
}

// TestProcSource samples this test's own thread from the real /proc, and
// refuses a task whose start time is not the one asked for (a reused TID).
func TestProcSource(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := syscall.Gettid()
	st, err := proc.ReadStat("", tid)
	if err != nil {
		t.Fatal(err)
	}
	// A task that started after the one recorded reused its TID; one that
	// started before it is the same (a start recorded from a fork event
	// is stamped late).
	if st.Start < 5 {
		t.Fatalf("thread start %d: too early to test", st.Start)
	}
	if _, err := openProc("/proc", tid, st.Start-5); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("open with a recorded start before the task's: got %v, want ESRCH", err)
	}
	if src, err := openProc("/proc", tid, st.Start+5); err != nil {
		t.Errorf("open with a recorded start after the task's (a late fork event): %v", err)
	} else {
		src.close()
	}
	src, err := openProc("/proc", tid, st.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	s1, err := src.read(^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	burn()
	s2, err := src.read(s1.run)
	if err != nil {
		t.Fatal(err)
	}
	if s2.run <= s1.run || s1.cpu < 0 {
		t.Errorf("samples %+v then %+v: want the run time to grow and a CPU", s1, s2)
	}
	// Past the fd budget, a source reads by path.
	old := fdBudget
	fdBudget = 0
	defer func() { fdBudget = old }()
	p, err := openProc("/proc", tid, st.Start)
	if err != nil {
		t.Fatal(err)
	}
	if p.(*procSource).sched >= 0 {
		t.Errorf("a source past the budget keeps files open")
	}
	if s3, err := p.read(0); err != nil || s3.run < s2.run {
		t.Errorf("path-mode sample: got %+v, %v, want run at least %d", s3, err, s2.run)
	}
	p.close()
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Fatal(err)
	}
}

func itoa(v int) string { return uintStr(uint64(v)) }
