package cpuacct

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// statLine makes a /proc/TID/stat line as Linux 6.18 prints it (52
// fields), from a real one, with the fields the accounting reads set.
func statLine(comm string, utime, stime, start, cpu int) string {
	return statLineWith(comm, map[int]int{14: utime, 15: stime, 22: start, 39: cpu})
}

// statLineWith sets fields by number (1-based, as proc(5) counts them).
func statLineWith(comm string, set map[int]int) string {
	f := strings.Fields("24858 (cat) R 23723 23723 10796 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 175718 " +
		"3133440 393 18446744073709551615 94487268917248 94487268937129 140733459485472 0 0 0 0 0 0 0 0 0 " +
		"17 1 0 0 0 0 0 94487268953136 94487268954752 94487718227968 140733459491292 140733459491312 " +
		"140733459491312 140733459492843 0")
	f[1] = "(" + comm + ")"
	for n, v := range set {
		f[n-1] = itoa(v)
	}
	return strings.Join(f, " ") + "\n"
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     statFields
		bad      bool
	}{
		{
			name: "plain",
			in:   statLineWith("sh", map[int]int{4: 7, 14: 37, 15: 5, 16: 120, 17: 30, 22: 9876, 39: 1}),
			want: statFields{ppid: 7, utime: 37, stime: 5, cutime: 120, cstime: 30, start: 9876, cpu: 1},
		},
		{
			name: "comm with spaces and parentheses",
			in:   statLineWith("a) b (c", map[int]int{4: 1, 14: 1, 15: 2, 16: 0, 17: 0, 22: 55, 39: 0}),
			want: statFields{ppid: 1, utime: 1, stime: 2, start: 55, cpu: 0},
		},
		{name: "no comm", in: "42 sh R 1", bad: true},
		{name: "short", in: "42 (sh) R 1 42 42 0", bad: true},
		{name: "not a number", in: strings.Replace(statLine("sh", 37, 5, 9876, 1), " 37 ", " x ", 1), bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.bad {
				t.Fatalf("error: got %v, want error %v", err, tc.bad)
			}
			if !tc.bad && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"5565367 6780172 2\n", 5565367, false},
		{"0 0 0\n", 0, false},
		{"", 0, true},
		{"x 1 2\n", 0, true},
	}
	for _, tc := range tests {
		got, err := parseSchedstat([]byte(tc.in))
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseSchedstat(%q): got %d, %v, want %d, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

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
	var buf [2048]byte
	b, err := readAt(nil, "/proc/self/task/"+itoa(tid)+"/stat", buf[:])
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	// A task that started after the one recorded reused its TID; one that
	// started before it is the same (a start recorded from a fork event
	// is stamped late).
	if st.start < 5 {
		t.Fatalf("thread start %d: too early to test", st.start)
	}
	if _, err := openProc("/proc", tid, st.start-5); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("open with a recorded start before the task's: got %v, want ESRCH", err)
	}
	if src, err := openProc("/proc", tid, st.start+5); err != nil {
		t.Errorf("open with a recorded start after the task's (a late fork event): %v", err)
	} else {
		src.close()
	}
	src, err := openProc("/proc", tid, st.start)
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
	p, err := openProc("/proc", tid, st.start)
	if err != nil {
		t.Fatal(err)
	}
	if p.(*procSource).sched != nil {
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
