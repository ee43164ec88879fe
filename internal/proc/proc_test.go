package proc

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStatComm(t *testing.T) {
	// A comm may hold spaces and parentheses, even ") R 1": the fields
	// start after the last ')'.
	tail := " 1 2 3 4 5 4194560 7 0 8 0 10 11 12 13 20 0 3 0 222 1000 20 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 5 2 0 0 0\n"
	line := "42 (a) R 1 (b)) S" + tail
	s, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{TID: 42, Comm: "a) R 1 (b)", State: 'S', PPID: 1, Flags: 4194560, MinFlt: 7, MajFlt: 8,
		UTime: 10, STime: 11, CUTime: 12, CSTime: 13, NumThreads: 3, Start: 222, Processor: 1, RTPriority: 5,
		Policy: SchedRR, fieldsFound: 41}
	if s != want {
		t.Errorf("ParseStat:\n got %+v\nwant %+v", s, want)
	}
	if !s.RealTime() || s.Zombie() || s.Kernel() || !s.HasPolicy() {
		t.Errorf("predicates of %+v", s)
	}
	if st, ok := StateOf([]byte(line)); !ok || st != 'S' {
		t.Errorf("StateOf = %c, %v", st, ok)
	}
}

func TestParseStatMalformed(t *testing.T) {
	for _, line := range []string{
		"",
		"42 no comm R 1",
		"(comm) R 1",                             // no pid
		"x1 (c) R 1",                             // bad pid
		"42 (c) RR 1 2 3",                        // state of two letters
		"42 (c) R 1 2 3",                         // too few fields
		"42 (c) R -1" + strings.Repeat(" 0", 20), // negative ppid
	} {
		if _, err := ParseStat([]byte(line)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStat(%q): %v, want ErrMalformed", line, err)
		}
	}
	// 22 fields are enough; the later ones read as zero.
	s, err := ParseStat([]byte("7 (c) Z 1" + strings.Repeat(" 0", 17) + " 99\n"))
	if err != nil || s.Start != 99 || !s.Zombie() || s.HasPolicy() {
		t.Errorf("short line: %+v, %v", s, err)
	}
}

// The real thing: this process and a child it started.
func TestReadStatAndStatus(t *testing.T) {
	self, err := ReadStat("", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.TID != os.Getpid() || self.PPID != os.Getppid() || self.NumThreads < 1 || self.Start == 0 {
		t.Errorf("own stat: %+v", self)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	child, err := ReadStat(Root, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if child.PPID != os.Getpid() || child.Start < self.Start {
		t.Errorf("child stat: %+v (parent %+v)", child, self)
	}
	st, err := ReadStatus("", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.TGID != cmd.Process.Pid || st.UID[Effective] != uint32(os.Geteuid()) || st.GID[Real] != uint32(os.Getgid()) || st.CPUsAllowed == "" {
		t.Errorf("child status: %+v", st)
	}
	// Identity: the same task read twice Is itself; once it is reaped,
	// ReadStat fails with ENOENT (or ESRCH), never with ErrMalformed.
	again, err := ReadStat("", cmd.Process.Pid)
	if err != nil || !child.ID().Is(again.ID()) || !child.ID().Holds(again.ID()) {
		t.Errorf("second read %+v, %v", again, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := ReadStat("", cmd.Process.Pid); !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
		t.Errorf("reaped child: %v", err)
	}
}

func TestIdentity(t *testing.T) {
	a := ID{TID: 5, Start: 100}
	tests := []struct {
		b         ID
		is, holds bool
	}{
		{ID{5, 100}, true, true},
		{ID{5, 101}, true, true}, // a tick of rounding either way
		{ID{5, 99}, true, true},
		{ID{5, 98}, false, true}, // a fork event's start is late, never early
		{ID{5, 3}, false, true},
		{ID{5, 9000}, false, false}, // a newer task reused the TID
		{ID{5, 102}, false, false},
		{ID{6, 100}, false, false},
	}
	for _, tc := range tests {
		if got := a.Is(tc.b); got != tc.is || tc.b.Is(a) != tc.is {
			t.Errorf("%v.Is(%v) = %v, want %v (both ways)", a, tc.b, got, tc.is)
		}
		if got := a.Holds(tc.b); got != tc.holds {
			t.Errorf("%v.Holds(%v) = %v, want %v", a, tc.b, got, tc.holds)
		}
	}
}

func TestParseStatus(t *testing.T) {
	b := []byte("Name:\tx\\nTgid: 1\nTgid:\t12\nPid:\t13\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nCpus_allowed_list:\t0-1\nMems_allowed:\t00000000,00000001\n")
	st, err := ParseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.TGID != 12 || st.UID != [4]uint32{1, 2, 3, 4} || st.GID != [4]uint32{5, 6, 7, 8} || st.CPUsAllowed != "0-1" || MaskBits(st.MemsAllowed) != 64 {
		t.Errorf("ParseStatus: %+v", st)
	}
	for _, bad := range []string{"Tgid:\t1\nUid:\t1 2 3\nGid:\t1 1 1 1\n", "Uid:\t1 2 3 4\nGid:\t1 1 1 1\n", "Tgid:\tx\n"} {
		if _, err := ParseStatus([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStatus(%q): %v", bad, err)
		}
	}
}

func TestParseSchedstatAndIO(t *testing.T) {
	s, err := ParseSchedstat([]byte("123 456 7\n"))
	if err != nil || s != (Schedstat{Run: 123, Wait: 456, Slices: 7}) {
		t.Errorf("ParseSchedstat: %+v, %v", s, err)
	}
	if _, err := ParseSchedstat([]byte("x 1 2\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad schedstat: %v", err)
	}
	line := []byte("123 456 7\n")
	if n := testing.AllocsPerRun(100, func() { ParseSchedstat(line) }); n != 0 {
		t.Errorf("ParseSchedstat allocates %v times", n)
	}
	io, err := ParseIO([]byte("rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 6\ncancelled_write_bytes: 7\nnew_field: 8\n"))
	if err != nil || io != (IO{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("ParseIO: %+v, %v", io, err)
	}
	if _, err := ParseIO([]byte("rchar: x\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad io: %v", err)
	}
	own, err := ReadSmall(Path("", os.Getpid(), "schedstat"), make([]byte, 128))
	if err != nil {
		t.Fatal(err)
	}
	if ss, err := ParseSchedstat(own); err != nil || ss.Run <= 0 {
		t.Errorf("own schedstat %q: %+v, %v", own, ss, err)
	}
}

func TestAtoi(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "123": 123, "2147483647": 2147483647} {
		if v, ok := Atoi(in); !ok || v != want {
			t.Errorf("Atoi(%q) = %d, %v", in, v, ok)
		}
	}
	for _, in := range []string{"", "-1", "+1", "self", "12345678901", "1a"} {
		if _, ok := Atoi(in); ok {
			t.Errorf("Atoi(%q) accepted", in)
		}
	}
}

func TestParseMountInfo(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		"40 36 0:50 / /c/cpu rw,nosuid,nodev,relatime - fuse.container cpu rw,user_id=0\n"
	ms, err := ParseMountInfo(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ID: 36, Parent: 35, Root: "/mnt1", Point: "/mnt two", Options: "rw,noatime", FSType: "ext3", Source: "/dev/root", Super: "rw,errors=continue"},
		{ID: 40, Parent: 36, Root: "/", Point: "/c/cpu", Options: "rw,nosuid,nodev,relatime", FSType: "fuse.container", Source: "cpu", Super: "rw,user_id=0"},
	}
	if len(ms) != 2 || ms[0] != want[0] || ms[1] != want[1] {
		t.Errorf("ParseMountInfo:\n got %+v\nwant %+v", ms, want)
	}
	if _, err := ParseMountInfo("1 2 3\n"); !errors.Is(err, ErrMalformed) {
		t.Errorf("short line: %v", err)
	}
	for in, want := range map[string]string{`a\040b`: "a b", `a\134b`: `a\b`, `a\04`: `a\04`, `a\089`: `a\089`, `\011\012`: "\t\n"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
	own, err := ReadMountInfo("")
	if err != nil || len(own) == 0 {
		t.Fatalf("own mountinfo: %d mounts, %v", len(own), err)
	}
}
