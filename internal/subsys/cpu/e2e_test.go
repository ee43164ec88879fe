// End-to-end tests: a real daemon, a cpu mount, and processes the tests
// start, scheduled for real.

package cpu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// These tests run a real daemon (testutil), mount a cpu hierarchy and
// schedule processes the test itself starts. Every process is killed by
// PID and reaped when the test ends, failed or not.

const busyLoop = "while :; do :; done"

// proc is a process the test started.
type child struct {
	cmd *exec.Cmd
	pid int
}

// spawn starts sh -c script, in a session of its own if setsid, pinned to
// cpus if any are given.
func spawn(t *testing.T, script string, setsid bool, cpus ...int) *child {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &child{cmd: cmd, pid: cmd.Process.Pid}
	t.Cleanup(func() {
		syscall.Kill(p.pid, syscall.SIGKILL)
		p.cmd.Wait()
	})
	if len(cpus) > 0 {
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(p.pid, &set); err != nil {
			t.Fatalf("pin %d: %v", p.pid, err)
		}
	}
	return p
}

// cpuTime is a task's CPU time so far (ns), from /proc/PID/schedstat.
func cpuTime(t *testing.T, pid int) int64 {
	t.Helper()
	var buf [128]byte
	b, err := proc.ReadSmall(proc.Path("", pid, "schedstat"), buf[:])
	if err != nil {
		t.Fatalf("schedstat of %d: %v", pid, err)
	}
	ss, err := proc.ParseSchedstat(b)
	if err != nil {
		t.Fatalf("schedstat of %d: %v", pid, err)
	}
	return ss.Run
}

func cpuTimes(t *testing.T, ps ...*child) int64 {
	var n int64
	for _, p := range ps {
		n += cpuTime(t, p.pid)
	}
	return n
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if err != nil {
		return syscall.EIO
	}
	return 0
}

func mkdir(t *testing.T, dir string, settings ...string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(settings); i += 2 {
		testutil.MustWrite(t, filepath.Join(dir, settings[i]), settings[i+1])
	}
	return dir
}

func attach(t *testing.T, dir string, ps ...*child) {
	t.Helper()
	for _, p := range ps {
		testutil.MustWrite(t, filepath.Join(dir, "tasks"), strconv.Itoa(p.pid))
	}
}

// procState is the state letter of /proc/PID/stat.
func procState(pid int) string {
	st, err := proc.ReadStat("", pid)
	if err != nil {
		return "gone"
	}
	return string(st.State)
}

func mountCPU(t *testing.T) string {
	t.Helper()
	d := testutil.StartDaemon(t)
	return d.Mount("cpu")
}

func TestFiles(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	a := mkdir(t, filepath.Join(mnt, "a"))
	for _, tc := range []struct{ file, want string }{
		{"cpu.shares", "1024\n"},
		{"cpu.cfs_period_us", "100000\n"},
		{"cpu.cfs_quota_us", "-1\n"},
		{"cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n"},
	} {
		for _, dir := range []string{mnt, a} {
			if got := testutil.ReadFile(t, filepath.Join(dir, tc.file)); got != tc.want {
				t.Errorf("%s in %s: got %q, want %q", tc.file, dir, got, tc.want)
			}
		}
	}
	// Every write below was made on this machine's kernel in a cpu cgroup
	// (bench-*) with the same outcome.
	tests := []struct {
		file, write string
		errno       syscall.Errno
		read        string
	}{
		{"cpu.shares", "0", 0, "2"},
		{"cpu.shares", "1", 0, "2"},
		{"cpu.shares", "3", 0, "3"},
		{"cpu.shares", "262144", 0, "262144"},
		{"cpu.shares", "262145", 0, "262144"},
		{"cpu.shares", "999999999999", 0, "262144"},
		{"cpu.shares", "-1", syscall.EINVAL, "262144"},
		{"cpu.shares", "abc", syscall.EINVAL, "262144"},
		{"cpu.shares", " 512 ", syscall.EINVAL, "262144"},
		{"cpu.shares", "1e3", syscall.EINVAL, "262144"},
		{"cpu.shares", "12 34", syscall.EINVAL, "262144"},
		{"cpu.shares", "0x400", 0, "1024"},
		{"cpu.shares", "512\n", 0, "512"},
		{"cpu.cfs_period_us", "999", syscall.EINVAL, "100000"},
		{"cpu.cfs_period_us", "1000", 0, "1000"},
		{"cpu.cfs_period_us", "1000000", 0, "1000000"},
		{"cpu.cfs_period_us", "1000001", syscall.EINVAL, "1000000"},
		{"cpu.cfs_period_us", "-1", syscall.EINVAL, "1000000"},
		{"cpu.cfs_period_us", "abc", syscall.EINVAL, "1000000"},
		{"cpu.cfs_period_us", "100000", 0, "100000"},
		{"cpu.cfs_quota_us", "999", syscall.EINVAL, "-1"},
		{"cpu.cfs_quota_us", "1000", 0, "1000"},
		{"cpu.cfs_quota_us", "-5", 0, "-1"},
		{"cpu.cfs_quota_us", "0", syscall.EINVAL, "-1"},
		{"cpu.cfs_quota_us", "abc", syscall.EINVAL, "-1"},
		{"cpu.cfs_quota_us", "50000", 0, "50000"},
		{"cpu.cfs_quota_us", "99999999999999999", syscall.EINVAL, "50000"},
		{"cpu.cfs_quota_us", "18446744073709551615", syscall.ERANGE, "50000"},
		{"cpu.cfs_quota_us", "17592186044415", 0, "17592186044415"},
		{"cpu.cfs_quota_us", "17592186044416", syscall.EINVAL, "17592186044415"},
		{"cpu.cfs_quota_us", " 20000 ", syscall.EINVAL, "17592186044415"},
		{"cpu.cfs_quota_us", "-1", 0, "-1"},
	}
	for _, tc := range tests {
		path := filepath.Join(a, tc.file)
		err := testutil.WriteFile(t, path, tc.write)
		if got := errnoOf(err); got != tc.errno {
			t.Errorf("write %q to %s: got errno %v, want %v", tc.write, tc.file, got, tc.errno)
		}
		if got := strings.TrimSpace(testutil.ReadFile(t, path)); got != tc.read {
			t.Errorf("after writing %q to %s: got %q, want %q", tc.write, tc.file, got, tc.read)
		}
	}
	// Nothing is writable in the root.
	for _, f := range []string{"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"} {
		if got := errnoOf(testutil.WriteFile(t, filepath.Join(mnt, f), "50000")); got != syscall.EINVAL {
			t.Errorf("write to the root's %s: got errno %v, want EINVAL", f, got)
		}
	}
	for _, f := range []string{"cpu.stat", "cpu.effective_percent"} {
		if err := testutil.WriteFile(t, filepath.Join(mnt, "a", f), "1"); err == nil {
			t.Errorf("write to read-only %s succeeded", f)
		}
	}
}

func TestQuotaHierarchyCheck(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	p := mkdir(t, filepath.Join(mnt, "p"), "cpu.cfs_quota_us", "50000")
	c := mkdir(t, filepath.Join(p, "c"))
	steps := []struct {
		file, write string
		errno       syscall.Errno
	}{
		{"c/cpu.cfs_quota_us", "60000", syscall.EINVAL}, // above the parent
		{"c/cpu.cfs_quota_us", "50000", 0},
		{"c/cpu.cfs_period_us", "50000", syscall.EINVAL}, // ratio 1 > 0.5
		{"c/cpu.cfs_quota_us", "-1", 0},
		{"c/cpu.cfs_period_us", "50000", 0},
		{"c/cpu.cfs_quota_us", "30000", syscall.EINVAL}, // 30/50 > 50/100
		{"c/cpu.cfs_quota_us", "25000", 0},
		{"cpu.cfs_quota_us", "20000", syscall.EINVAL}, // below the child's ratio
		{"cpu.cfs_period_us", "200000", syscall.EINVAL},
		{"cpu.cfs_quota_us", "-1", 0},
		{"cpu.cfs_period_us", "1000000", 0},
		{"cpu.cfs_quota_us", "400000", syscall.EINVAL},
		{"cpu.cfs_quota_us", "500000", 0},
	}
	for _, st := range steps {
		if got := errnoOf(testutil.WriteFile(t, filepath.Join(p, st.file), st.write)); got != st.errno {
			t.Errorf("write %q to %s: got errno %v, want %v", st.write, st.file, got, st.errno)
		}
	}
	_ = c
}

func TestEffectivePercent(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	guests := mkdir(t, filepath.Join(mnt, "guests"), "cpu.shares", "9216")
	system := mkdir(t, filepath.Join(mnt, "system"), "cpu.shares", "1024")
	ga := mkdir(t, filepath.Join(guests, "guest-a"))
	gb := mkdir(t, filepath.Join(guests, "guest-b"))
	capped := mkdir(t, filepath.Join(system, "capped"), "cpu.cfs_quota_us", "1000", "cpu.cfs_period_us", "100000")
	ncpu := onlineCPUs().Count()
	tests := []struct {
		dir  string
		want float64
	}{
		{mnt, 100},
		{guests, 90},
		{system, 10},
		{ga, 45},
		{gb, 45},
		{capped, min(10, 1.0/float64(ncpu))},
	}
	for _, tc := range tests {
		got, err := strconv.ParseFloat(strings.TrimSpace(testutil.ReadFile(t, filepath.Join(tc.dir, "cpu.effective_percent"))), 64)
		if err != nil || got < tc.want-0.01 || got > tc.want+0.01 {
			t.Errorf("effective_percent of %s: got %v (%v), want %.2f", tc.dir, got, err, tc.want)
		}
	}
}

// share runs ps and qs for d and returns ps's percentage of their CPU time.
func share(t *testing.T, d time.Duration, ps, qs []*child) float64 {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the enforcer settle
	a0, b0 := cpuTimes(t, ps...), cpuTimes(t, qs...)
	time.Sleep(d)
	a, b := cpuTimes(t, ps...)-a0, cpuTimes(t, qs...)-b0
	if a+b == 0 {
		t.Fatalf("no CPU time at all in %v", d)
	}
	return 100 * float64(a) / float64(a+b)
}

// The e2e tolerances are wider than the benchmarks' targets: other test
// suites share this machine's two CPUs.
func TestSharesNinetyTen(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	guests := mkdir(t, filepath.Join(mnt, "guests"), "cpu.shares", "9216")
	system := mkdir(t, filepath.Join(mnt, "system"), "cpu.shares", "1024")
	g := spawn(t, busyLoop, false, 0)
	s := spawn(t, busyLoop, false, 0)
	attach(t, guests, g)
	attach(t, system, s)
	got := share(t, 3*time.Second, []*child{g}, []*child{s})
	t.Logf("guests' share: %.1f%%", got)
	if got < 86 || got > 94 {
		t.Errorf("guests' share: got %.1f%%, want 90%% ± 4", got)
	}
}

func TestGroupFairnessAcrossSessions(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	a := mkdir(t, filepath.Join(mnt, "a"))
	b := mkdir(t, filepath.Join(mnt, "b"))
	var as []*child
	for i := 0; i < 3; i++ {
		as = append(as, spawn(t, busyLoop, true, 0))
	}
	bp := spawn(t, busyLoop, true, 0)
	attach(t, a, as...)
	attach(t, b, bp)
	got := share(t, 3*time.Second, as, []*child{bp})
	t.Logf("3 tasks vs 1: %.1f%%", got)
	if got < 45 || got > 55 {
		t.Errorf("3 tasks vs 1 at equal shares: got %.1f%%, want 50%% ± 5", got)
	}
}

func TestQuotaEnforced(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	q := mkdir(t, filepath.Join(mnt, "q"), "cpu.cfs_quota_us", "20000")
	p := spawn(t, busyLoop, false)
	attach(t, q, p)
	time.Sleep(200 * time.Millisecond)
	st0 := parseStat(t, testutil.ReadFile(t, filepath.Join(q, "cpu.stat")))
	c0, w0 := cpuTime(t, p.pid), time.Now()
	time.Sleep(3 * time.Second)
	got := 100 * float64(cpuTime(t, p.pid)-c0) / float64(time.Since(w0))
	st := parseStat(t, testutil.ReadFile(t, filepath.Join(q, "cpu.stat")))
	periods, throttled := st["nr_periods"]-st0["nr_periods"], st["nr_throttled"]-st0["nr_throttled"]
	t.Logf("CPU use under a 20ms/100ms quota: %.1f%%; %d periods, %d throttled", got, periods, throttled)
	if got > 21 {
		t.Errorf("CPU use under a 20ms/100ms quota: got %.1f%%, want at most 21%%", got)
	}
	if periods < 25 || periods > 31 {
		t.Errorf("cpu.stat over 3 s: got %d periods, want about 30", periods)
	}
	// Other suites share this machine: the task may not even get 20% of
	// a CPU. Where the quota was what held it back (throttled in most
	// periods), it must have had about all of it.
	if throttled >= periods*8/10 && got < 17 {
		t.Errorf("CPU use under a 20ms/100ms quota, throttled in %d of %d periods: got %.1f%%, want about 20", throttled, periods, got)
	}
	if throttled > 0 && st["throttled_time"] <= st0["throttled_time"] {
		t.Errorf("throttled_time did not grow: %d then %d", st0["throttled_time"], st["throttled_time"])
	}
}

func parseStat(t *testing.T, s string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("cpu.stat line %q", line)
		}
		m[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
	}
	return m
}

func TestThrottledJobIsNotStoppedForItsParent(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	q := mkdir(t, filepath.Join(mnt, "q"), "cpu.cfs_quota_us", "5000")
	p := spawn(t, busyLoop, false)
	attach(t, q, p)
	// The test is the parent: its waitpid(WUNTRACED|WCONTINUED) must see
	// nothing while the task is held 95% of the time.
	deadline := time.Now().Add(2 * time.Second)
	held := 0
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(p.pid, &ws, unix.WNOHANG|unix.WUNTRACED|unix.WCONTINUED, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pid != 0 {
			t.Fatalf("the parent's waitpid saw status %#x (stopped %v), want nothing", uint32(ws), ws.Stopped())
		}
		if procState(p.pid) == "t" {
			held++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if held == 0 {
		t.Errorf("the throttled task was never seen held")
	}
	// SIGCONT does not let it escape the quota.
	c0 := cpuTime(t, p.pid)
	w0 := time.Now()
	for i := 0; i < 50; i++ {
		syscall.Kill(p.pid, syscall.SIGCONT)
		time.Sleep(20 * time.Millisecond)
	}
	// An escape would read near 100%. A window of about 1 s spans up to
	// 11 periods, each of which may run its quota and overrun it by a
	// tick's lateness (paid back in the next period, which may fall after
	// the window): under the full suite's parallel load that has read 8.9%.
	if got := 100 * float64(cpuTime(t, p.pid)-c0) / float64(time.Since(w0)); got > 12 {
		t.Errorf("CPU use under SIGCONTs with a 5%% quota: got %.1f%%, want at most 12%%", got)
	}
}

func TestWorkConserving(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	big := mkdir(t, filepath.Join(mnt, "big"), "cpu.shares", "262144")
	small := mkdir(t, filepath.Join(mnt, "small"), "cpu.shares", "2")
	idle := spawn(t, "exec sleep 1000", false, 0)
	s := spawn(t, busyLoop, false, 0)
	attach(t, big, idle)
	attach(t, small, s)
	// Other suites share this machine: compare with a busy loop in the
	// root on the same CPU, which the kernel treats as s's equal.
	ref := spawn(t, busyLoop, false, 0)
	// On a loaded machine the sleeper may wait a while for the CPU to
	// exec sleep: that is a demand. Measure once it sleeps.
	if !eventually(10*time.Second, func() bool { return procState(idle.pid) == "S" }) {
		t.Fatalf("the idle task does not sleep: state %q", procState(idle.pid))
	}
	time.Sleep(300 * time.Millisecond)
	c0, r0 := cpuTime(t, s.pid), cpuTime(t, ref.pid)
	held := 0
	for i := 0; i < 200; i++ {
		if procState(s.pid) == "t" {
			held++
		}
		time.Sleep(10 * time.Millisecond)
	}
	sc, rc := cpuTime(t, s.pid)-c0, cpuTime(t, ref.pid)-r0
	t.Logf("small: %v, root task: %v, seen held %d/200", time.Duration(sc), time.Duration(rc), held)
	if float64(sc) < 0.85*float64(rc) || held > 0 {
		t.Errorf("a low-share container whose sibling idles: got %v of CPU vs %v for an equal root task, held %d/200; want no throttling",
			time.Duration(sc), time.Duration(rc), held)
	}
}

func TestRootTasksUntouched(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	q := mkdir(t, filepath.Join(mnt, "q"), "cpu.cfs_quota_us", "1000", "cpu.cfs_period_us", "1000000")
	in := spawn(t, busyLoop, false)
	out := spawn(t, busyLoop, false)
	attach(t, q, in)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if st := procState(out.pid); st == "t" {
			t.Fatalf("a task of the root container was stopped")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Moved back to the root, a held task runs at once.
	if !eventually(time.Second, func() bool { return procState(in.pid) == "t" }) {
		t.Fatalf("the task under a 1ms/1s quota is not held")
	}
	attach(t, mnt, in)
	if !eventually(time.Second, func() bool { return procState(in.pid) != "t" }) {
		t.Errorf("a task moved back to the root is still held")
	}
	c0 := cpuTime(t, in.pid)
	for i := 0; i < 30; i++ {
		if procState(in.pid) == "t" {
			t.Fatalf("a task moved back to the root was stopped again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cpuTime(t, in.pid) == c0 {
		t.Errorf("a task moved back to the root does not run")
	}
}

func TestForksAreThrottledAndExitsReaped(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	q := mkdir(t, filepath.Join(mnt, "q"), "cpu.cfs_quota_us", "10000")
	// A shell that starts busy children once it is attached.
	flag := filepath.Join(t.TempDir(), "go")
	sh := spawn(t, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; for i in 1 2 3; do ( %s ) & done; wait", flag, busyLoop), false)
	killChildrenAtEnd(t, sh)
	attach(t, q, sh)
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var kids []int
	if !eventually(3*time.Second, func() bool {
		kids = childrenOf(sh.pid)
		return len(kids) == 3
	}) {
		t.Fatalf("children of the shell: got %v, want 3", kids)
	}
	tasks := testutil.ReadFile(t, filepath.Join(q, "tasks"))
	for _, k := range kids {
		if !strings.Contains("\n"+tasks, "\n"+strconv.Itoa(k)+"\n") {
			t.Errorf("child %d not in q's tasks %q", k, tasks)
		}
	}
	var c0 int64
	for _, k := range kids {
		c0 += cpuTime(t, k)
	}
	w0 := time.Now()
	time.Sleep(2 * time.Second)
	var c1 int64
	for _, k := range kids {
		c1 += cpuTime(t, k)
	}
	if got := 100 * float64(c1-c0) / float64(time.Since(w0)); got > 13 {
		t.Errorf("three forked busy loops under a 10%% quota: got %.1f%%, want at most 13%%", got)
	}
	// Killed while held, each is reaped by its parent shell, which then
	// exits.
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
	done := make(chan error, 1)
	go func() { done <- sh.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the shell did not reap its killed, throttled children")
	}
}

// killChildrenAtEnd makes sure the children of p (a shell that starts
// its own) are killed when the test ends, failed or not: registered after
// spawn, it runs before p itself is killed, while p's children are still
// its children.
func killChildrenAtEnd(t *testing.T, p *child) {
	t.Cleanup(func() {
		for _, k := range childrenOf(p.pid) {
			syscall.Kill(k, syscall.SIGKILL)
		}
	})
}

func childrenOf(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var kids []int
	for _, f := range strings.Fields(string(b)) {
		if k, err := strconv.Atoi(f); err == nil {
			kids = append(kids, k)
		}
	}
	return kids
}

func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

func TestMultiThreadedQuota(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	q := mkdir(t, filepath.Join(mnt, "q"), "cpu.cfs_quota_us", "10000")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CPU_TEST_HELPER=threads")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		stdin.Close()
		syscall.Kill(pid, syscall.SIGKILL)
		cmd.Wait()
	})
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("helper: %q %v", buf, err)
	}
	testutil.MustWrite(t, filepath.Join(q, "cgroup.procs"), strconv.Itoa(pid))
	tasks := strings.Fields(testutil.ReadFile(t, filepath.Join(q, "tasks")))
	if len(tasks) < 4 {
		t.Fatalf("tasks of a multi-threaded process: got %v, want at least 4 threads", tasks)
	}
	time.Sleep(300 * time.Millisecond)
	c0, w0 := procCPU(t, pid), time.Now()
	time.Sleep(3 * time.Second)
	got := 100 * (procCPU(t, pid) - c0).Seconds() / time.Since(w0).Seconds()
	t.Logf("three busy threads under a 10%% quota: %.1f%% of a CPU", got)
	if got > 14 {
		t.Errorf("three busy threads under a 10ms/100ms quota: got %.1f%% of a CPU, want about 10", got)
	}
	// Its threads are let go when it returns to the root.
	testutil.MustWrite(t, filepath.Join(mnt, "cgroup.procs"), strconv.Itoa(pid))
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 50; i++ {
		for _, tid := range tasks {
			n, _ := strconv.Atoi(tid)
			if procState(n) == "t" {
				t.Fatalf("thread %s still held after its process went back to the root", tid)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNestedGuestsSystem(t *testing.T) {
	testutil.Short(t)
	mnt := mountCPU(t)
	guests := mkdir(t, filepath.Join(mnt, "Guests"), "cpu.shares", "9216")
	ga := mkdir(t, filepath.Join(guests, "guest-a"))
	gb := mkdir(t, filepath.Join(guests, "guest-b"))
	system := mkdir(t, filepath.Join(mnt, "System"), "cpu.shares", "1024")
	a := spawn(t, busyLoop, true, 0)
	b1, b2 := spawn(t, busyLoop, true, 0), spawn(t, busyLoop, true, 0)
	s := spawn(t, busyLoop, true, 0)
	attach(t, ga, a)
	attach(t, gb, b1, b2)
	attach(t, system, s)
	time.Sleep(300 * time.Millisecond)
	c0 := []int64{cpuTimes(t, a), cpuTimes(t, b1, b2), cpuTimes(t, s)}
	time.Sleep(3 * time.Second)
	c := []int64{cpuTimes(t, a) - c0[0], cpuTimes(t, b1, b2) - c0[1], cpuTimes(t, s) - c0[2]}
	total := float64(c[0] + c[1] + c[2])
	got := []float64{100 * float64(c[0]) / total, 100 * float64(c[1]) / total, 100 * float64(c[2]) / total}
	t.Logf("guest-a %.1f%%, guest-b %.1f%%, System %.1f%%", got[0], got[1], got[2])
	for i, want := range []float64{45, 45, 10} {
		if got[i] < want-4 || got[i] > want+4 {
			t.Errorf("shares guest-a/guest-b/System: got %.1f/%.1f/%.1f, want 45/45/10 ± 4", got[0], got[1], got[2])
			break
		}
	}
}

// Unpinned on both CPUs, 3 busy loops beside 1 (one session): without
// partial holds the kernel's per-task fairness gives 75/25. It runs last:
// right after it, TestThrottledJobIsNotStoppedForItsParent measured up to
// 8.9% (the same with or without partial holds) against its bound of 8%.
func TestPartialHoldOnTwoCPUs(t *testing.T) {
	testutil.Short(t)
	if onlineCPUs().Count() != 2 {
		t.Skip("needs exactly 2 CPUs")
	}
	mnt := mountCPU(t)
	a := mkdir(t, filepath.Join(mnt, "a"))
	b := mkdir(t, filepath.Join(mnt, "b"))
	var as []*child
	for i := 0; i < 3; i++ {
		as = append(as, spawn(t, busyLoop, false))
	}
	bp := spawn(t, busyLoop, false)
	attach(t, a, as...)
	attach(t, b, bp)
	time.Sleep(300 * time.Millisecond)
	// Unpinned, the figure depends on what else runs on either CPU (go
	// test runs other packages beside this one): up to three windows, the
	// first within bounds passes. Without partial holds every window reads
	// about 75%.
	var got, spread float64
	for try := 1; try <= 3; try++ {
		var c0 []int64
		for _, p := range as {
			c0 = append(c0, cpuTime(t, p.pid))
		}
		got = share(t, 3*time.Second, as, []*child{bp})
		var lo, hi, sum int64
		for i, p := range as {
			c := cpuTime(t, p.pid) - c0[i]
			if i == 0 || c < lo {
				lo = c
			}
			hi, sum = max(hi, c), sum+c
		}
		spread = 100 * float64(hi-lo) * 3 / float64(max(sum, 1))
		t.Logf("window %d: 3 tasks vs 1 on 2 CPUs: %.1f%%, spread among the 3: %.1f%%", try, got, spread)
		if got >= 43 && got <= 57 && spread <= 15 {
			return
		}
	}
	t.Errorf("3 tasks vs 1 at equal shares on 2 CPUs, in three windows: last got %.1f%% with a spread of %.1f%% among the 3, want 50%% ± 7 and at most 15%%", got, spread)
}
