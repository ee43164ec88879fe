package memory

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
)

var (
	allocOnce sync.Once
	allocPath string
	allocErr  error
)

// allocBinary builds testdata/alloc once per test process, without the race
// detector (its shadow memory would double the allocator's resident size).
func allocBinary(t testing.TB) string {
	t.Helper()
	allocOnce.Do(func() {
		dir, err := os.MkdirTemp("", "containerfs-alloc-")
		if err != nil {
			allocErr = err
			return
		}
		allocPath = filepath.Join(dir, "alloc")
		out, err := exec.Command("go", "build", "-o", allocPath, "./testdata/alloc").CombinedOutput()
		if err != nil {
			allocErr = fmt.Errorf("go build ./testdata/alloc: %v\n%s", err, out)
		}
	})
	if allocErr != nil {
		t.Fatal(allocErr)
	}
	return allocPath
}

// point is the allocator's progress: bytes touched, and its resident size,
// at a CLOCK_MONOTONIC time.
type point struct {
	bytes, rss int64
	ns         int64
}

// allocator is a running testdata/alloc.
type allocator struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  int64 // resident bytes before it touched anything

	mu       sync.Mutex
	progress []point // guarded by mu
	finished bool    // it touched all it was asked to; guarded by mu
	eofNs    int64   // when its stdout closed: its death; guarded by mu
	eof      chan struct{}
	waitOnce sync.Once
}

// startAlloc starts an allocator that will touch totalMB at rateMB per
// second once told to go. It is killed and reaped when the test ends.
func startAlloc(t testing.TB, rateMB, totalMB int) *allocator {
	t.Helper()
	cmd := exec.Command(allocBinary(t), strconv.Itoa(rateMB), strconv.Itoa(totalMB))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
	a := &allocator{cmd: cmd, stdin: stdin, eof: make(chan struct{})}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		a.wait()
	})
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("allocator: no ready line: %v", sc.Err())
	}
	if _, err := fmt.Sscanf(sc.Text(), "ready %d", &a.base); err != nil {
		t.Fatalf("allocator said %q: %v", sc.Text(), err)
	}
	go func() {
		for sc.Scan() {
			var p point
			var word string
			if _, err := fmt.Sscanf(sc.Text(), "%s %d %d %d", &word, &p.bytes, &p.rss, &p.ns); err != nil {
				continue
			}
			a.mu.Lock()
			a.progress = append(a.progress, p)
			a.finished = a.finished || word == "done"
			a.mu.Unlock()
		}
		a.mu.Lock()
		a.eofNs = monoNow()
		a.mu.Unlock()
		close(a.eof)
	}()
	return a
}

// wait reaps it, once.
func (a *allocator) wait() {
	a.waitOnce.Do(func() { a.cmd.Wait() })
}

func (a *allocator) pid() int { return a.cmd.Process.Pid }

// run tells it to start touching.
func (a *allocator) run(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(a.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

func (a *allocator) isFinished() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.finished
}

func (a *allocator) touched() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.progress) == 0 {
		return 0
	}
	return a.progress[len(a.progress)-1].bytes
}

// crossed is when its resident size first went above limit, interpolated
// between progress reports (a MiB apart), and its touch rate in bytes per
// second over the whole run. If no report shows it above the limit, it
// crossed after the last one: that one's time is returned (exact to the
// time it takes to touch a MiB).
func (a *allocator) crossed(limit int64) (ns int64, rate float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.progress)
	if n >= 2 {
		p0, p1 := a.progress[0], a.progress[n-1]
		rate = float64(p1.bytes-p0.bytes) / (float64(p1.ns-p0.ns) / 1e9)
	}
	for i, p := range a.progress {
		if p.rss <= limit {
			continue
		}
		if i == 0 {
			return p.ns, rate
		}
		q := a.progress[i-1]
		frac := float64(limit-q.rss) / float64(p.rss-q.rss)
		return q.ns + int64(frac*float64(p.ns-q.ns)), rate
	}
	if n == 0 {
		return 0, rate
	}
	return a.progress[n-1].ns, rate
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// container makes a memory container under a fresh daemon's mount, and
// removes it when the test ends (after the test's processes are gone:
// cleanups run last-registered first).
func container(t testing.TB, mnt, name string) string {
	t.Helper()
	dir := filepath.Join(mnt, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 200 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond) // exits still on their way
		}
	})
	return dir
}

func readNum(t testing.TB, path string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.TrimSpace(testutil.ReadFile(t, path)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// oomControl reads one line of memory.oom_control.
func oomControl(t testing.TB, dir, key string) int64 {
	t.Helper()
	for _, line := range strings.Split(testutil.ReadFile(t, filepath.Join(dir, "memory.oom_control")), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("%s/memory.oom_control has no %s", dir, key)
	return 0
}

// statOf parses memory.stat.
func statOf(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, line := range strings.Split(testutil.ReadFile(t, filepath.Join(dir, "memory.stat")), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			m[k] = n
		}
	}
	return m
}

// waitFor polls cond every 5 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// oomRun is one allocator run into a limit until it is killed.
type oomRun struct {
	rate      float64       // bytes per second it touched
	overshoot int64         // its peak RSS (ru_maxrss) above the limit
	toKill    time.Duration // from crossing the limit to its death
}

// runToOOM starts an allocator at rateMB into dir (whose limit is limit),
// and waits for the OOM kill.
func runToOOM(t testing.TB, dir string, limit int64, rateMB, totalMB int) oomRun {
	t.Helper()
	a := startAlloc(t, rateMB, totalMB)
	testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(a.pid()))
	a.run(t)
	select {
	case <-a.eof:
	case <-time.After(60 * time.Second):
		t.Fatalf("allocator not killed after 60 s (touched %d MiB, limit %d MiB)", a.touched()>>20, limit>>20)
	}
	a.wait()
	ws := a.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("allocator ended with %v (touched %d MiB, finished %v), want killed by SIGKILL", a.cmd.ProcessState, a.touched()>>20, a.isFinished())
	}
	ru := a.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	crossNs, rate := a.crossed(limit)
	if crossNs == 0 {
		t.Fatalf("allocator killed before it touched anything (base %d, limit %d)", a.base, limit)
	}
	a.mu.Lock()
	eof := a.eofNs
	a.mu.Unlock()
	return oomRun{rate: rate, overshoot: ru.Maxrss*1024 - limit, toKill: time.Duration(eof - crossNs)}
}

func TestE2EOOMKill(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	dir := container(t, mnt, "oom")
	const limit = 100 << 20
	testutil.MustWrite(t, filepath.Join(dir, "memory.limit_in_bytes"), "100M")
	if got := readNum(t, filepath.Join(dir, "memory.limit_in_bytes")); got != limit {
		t.Fatalf("limit_in_bytes: got %d, want %d", got, limit)
	}
	r := runToOOM(t, dir, limit, 1000, 1000)
	t.Logf("allocator at %.0f MB/s into a 100 MiB limit: peak RSS %.1f MiB over the limit, killed %v after crossing it",
		r.rate/1e6, float64(r.overshoot)/(1<<20), r.toKill.Round(100*time.Microsecond))
	// Generous bounds, for a loaded machine: the design target is 10 ms of
	// sampling plus the kill.
	if r.overshoot > 200<<20 || r.toKill > 2*time.Second {
		t.Errorf("overshoot %d MiB in %v: the sampler is not keeping up", r.overshoot>>20, r.toKill)
	}
	if got := oomControl(t, dir, "oom_kill"); got != 1 {
		t.Errorf("oom_kill: got %d, want 1", got)
	}
	if got := readNum(t, filepath.Join(dir, "memory.failcnt")); got < 1 {
		t.Errorf("failcnt: got %d, want at least 1", got)
	}
	// max_usage_in_bytes saw it over the limit (we only learn of usage
	// after the fact); a write resets it to the usage, 0 once it is gone.
	if got := readNum(t, filepath.Join(dir, "memory.max_usage_in_bytes")); got <= limit {
		t.Errorf("max_usage_in_bytes: got %d, want above the limit %d", got, int64(limit))
	}
	if !waitFor(5*time.Second, func() bool { return readNum(t, filepath.Join(dir, "memory.usage_in_bytes")) == 0 }) {
		t.Fatalf("usage_in_bytes after the kill: got %d, want 0", readNum(t, filepath.Join(dir, "memory.usage_in_bytes")))
	}
	testutil.MustWrite(t, filepath.Join(dir, "memory.max_usage_in_bytes"), "0")
	if got := readNum(t, filepath.Join(dir, "memory.max_usage_in_bytes")); got != 0 {
		t.Errorf("max_usage_in_bytes after reset: got %d, want 0", got)
	}
	testutil.MustWrite(t, filepath.Join(dir, "memory.failcnt"), "0")
	if got := readNum(t, filepath.Join(dir, "memory.failcnt")); got != 0 {
		t.Errorf("failcnt after reset: got %d, want 0", got)
	}
}

func TestE2EPauseWhenOOMKillDisabled(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	dir := container(t, mnt, "paused")
	testutil.MustWrite(t, filepath.Join(dir, "memory.limit_in_bytes"), "50M")
	testutil.MustWrite(t, filepath.Join(dir, "memory.oom_control"), "1")
	a := startAlloc(t, 200, 120)
	testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(a.pid()))
	a.run(t)
	if !waitFor(30*time.Second, func() bool { return oomControl(t, dir, "under_oom") == 1 }) {
		t.Fatalf("under_oom never 1 (touched %d MiB)", a.touched()>>20)
	}
	// Its task stops: ptrace-stopped (state t), no CPU, no growth.
	if !waitFor(5*time.Second, func() bool { return procState(a.pid()) == "t" }) {
		t.Fatalf("allocator state %q, want t (stopped)", procState(a.pid()))
	}
	cpu0, rss0 := procCPU(a.pid()), procRSS(a.pid())
	time.Sleep(300 * time.Millisecond)
	cpu1, rss1 := procCPU(a.pid()), procRSS(a.pid())
	if cpu1 != cpu0 || rss1 != rss0 {
		t.Errorf("paused allocator: CPU %d→%d ticks, RSS %d→%d bytes, want no change", cpu0, cpu1, rss0, rss1)
	}
	if a.isFinished() {
		t.Fatalf("allocator finished while paused")
	}
	if got := oomControl(t, dir, "oom_kill"); got != 0 {
		t.Errorf("oom_kill: got %d, want 0 (the killer is disabled)", got)
	}
	if got := readNum(t, filepath.Join(dir, "memory.failcnt")); got < 1 {
		t.Errorf("failcnt: got %d, want at least 1", got)
	}
	// A limit below the usage is refused; raising it resumes the task.
	err := testutil.WriteFile(t, filepath.Join(dir, "memory.limit_in_bytes"), "10M")
	if !errors.Is(err, syscall.EBUSY) {
		t.Errorf("limit below the usage: got %v, want EBUSY", err)
	}
	testutil.MustWrite(t, filepath.Join(dir, "memory.limit_in_bytes"), "400M")
	if !waitFor(5*time.Second, func() bool { return oomControl(t, dir, "under_oom") == 0 }) {
		t.Fatalf("under_oom still 1 after the limit was raised")
	}
	if !waitFor(30*time.Second, a.isFinished) {
		t.Fatalf("allocator did not finish after the limit was raised (touched %d MiB, state %q)", a.touched()>>20, procState(a.pid()))
	}
	if got := oomControl(t, dir, "oom_kill"); got != 0 {
		t.Errorf("oom_kill: got %d, want 0", got)
	}
}

func TestE2EStatTotals(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	p := container(t, mnt, "p")
	a := container(t, p, "a")
	b := container(t, p, "b")
	for _, x := range []struct {
		dir string
		mb  int
	}{{a, 20}, {b, 30}} {
		al := startAlloc(t, 1000, x.mb)
		testutil.MustWrite(t, filepath.Join(x.dir, "cgroup.procs"), strconv.Itoa(al.pid()))
		al.run(t)
		if !waitFor(30*time.Second, al.isFinished) {
			t.Fatalf("allocator of %d MiB did not finish", x.mb)
		}
	}
	// The slow round (1 s) reads unlimited containers; read until the
	// figures are there and steady across the three files.
	var ps, as, bs map[string]int64
	ok := waitFor(10*time.Second, func() bool {
		ps, as, bs = statOf(t, p), statOf(t, a), statOf(t, b)
		return as["total_rss"] >= 20<<20 && bs["total_rss"] >= 30<<20 &&
			ps["total_rss"] == ps["rss"]+as["total_rss"]+bs["total_rss"] &&
			ps["total_cache"] == ps["cache"]+as["total_cache"]+bs["total_cache"]
	})
	if !ok {
		t.Fatalf("p total_rss %d, rss %d; a total_rss %d; b total_rss %d: want total = own + children's, a ≥ 20 MiB, b ≥ 30 MiB",
			ps["total_rss"], ps["rss"], as["total_rss"], bs["total_rss"])
	}
	usage := readNum(t, filepath.Join(p, "memory.usage_in_bytes"))
	if want := ps["total_rss"] + ps["total_cache"]; usage < want-pageSize*16 || usage > want+16<<20 {
		t.Errorf("p usage_in_bytes %d, total_rss+total_cache %d: want them close", usage, want)
	}
	t.Logf("p: usage %d, total_rss %d, total_cache %d; a total_rss %d; b total_rss %d", usage, ps["total_rss"], ps["total_cache"], as["total_rss"], bs["total_rss"])
}

func TestE2ELimitParsing(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	dir := container(t, mnt, "limits")
	tests := []struct {
		dir, data string
		err       error
		want      int64
	}{
		{dir: dir, data: "100M", want: 100 << 20},
		{dir: dir, data: "2g\n", want: 2 << 30},
		{dir: dir, data: "512k", want: 512 << 10},
		{dir: dir, data: "5000", want: 4096},
		{dir: dir, data: "-1", want: unlimited},
		{dir: dir, data: "100 M", err: syscall.EINVAL, want: unlimited},
		{dir: dir, data: "lots", err: syscall.EINVAL, want: unlimited},
		{dir: dir, data: "-2", err: syscall.EINVAL, want: unlimited},
		{dir: mnt, data: "100M", err: syscall.EINVAL, want: unlimited},
		{dir: mnt, data: "-1", err: syscall.EINVAL, want: unlimited},
	}
	for _, tc := range tests {
		name := "child " + tc.data
		if tc.dir == mnt {
			name = "root " + tc.data
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(tc.dir, "memory.limit_in_bytes")
			err := testutil.WriteFile(t, path, tc.data)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("write %q: got %v, want %v", tc.data, err, tc.err)
			}
			if got := readNum(t, path); got != tc.want {
				t.Fatalf("after writing %q: got %d, want %d", tc.data, got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		file, data string
		err        error
	}{
		{"memory.oom_control", "1", syscall.EINVAL},
		{"memory.force_empty", "1", syscall.EINVAL},
		{"memory.use_hierarchy", "0", syscall.EINVAL},
		{"memory.swappiness", "300", syscall.EINVAL},
	} {
		if err := testutil.WriteFile(t, filepath.Join(mnt, tc.file), tc.data); !errors.Is(err, tc.err) {
			t.Errorf("root %s = %q: got %v, want %v", tc.file, tc.data, err, tc.err)
		}
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

// procCPU is utime+stime of a process, in clock ticks.
func procCPU(pid int) uint64 {
	st, err := proc.ReadStat("", pid)
	if err != nil {
		return 0
	}
	return st.UTime + st.STime
}

// procRSS is the resident size of a process from statm, in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	sm, err := parseStatm(b)
	if err != nil {
		return 0
	}
	return sm.resident
}
