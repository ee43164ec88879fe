package policy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// liveRig is the daemon's wiring in miniature: a registry of the real
// machine's tasks, kept by a tracker loop fed by the real proc connector,
// which hands every event to the engine. The registry lives in this test
// only: its moves touch no process.
type liveRig struct {
	reg    *core.Registry
	e      *Engine
	h      *core.Hierarchy
	conn   *procevent.Conn
	done   chan struct{}
	offset int64 // CLOCK_BOOTTIME - CLOCK_MONOTONIC, ns

	mu      sync.Mutex
	execLag map[int]time.Duration // pid → exec event stamp to handling done
}

func startLive(t *testing.T, rules string, name string) *liveRig {
	t.Helper()
	testutil.RequireRoot(t) // the proc connector needs CAP_NET_ADMIN
	r := &liveRig{done: make(chan struct{}), execLag: map[int]time.Duration{}}
	r.reg = core.NewRegistry(core.ProcFS{Root: "/proc"})
	r.reg.SetSelf(os.Getpid())
	h, err := r.reg.Mount("none,name=" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.h = h
	var mono, boot unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	r.offset = boot.Nano() - mono.Nano()

	// Listen before the scan, as the daemon does, so nothing is missed.
	conn, err := procevent.Listen(procevent.Options{})
	if err != nil {
		t.Fatalf("proc connector: %v", err)
	}
	r.conn = conn
	tasks, err := procevent.Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	scan := make([]core.ScanTask, len(tasks))
	for i, pt := range tasks {
		scan[i] = core.ScanTask{TaskInfo: core.TaskInfo{TID: pt.TID, TGID: pt.TGID, Start: pt.Start}, PPID: pt.PPID}
	}
	r.reg.Resync(scan)

	r.e = New(Options{Model: CoreModel{r.reg}, Known: r.reg.Subsystems(), Logf: t.Logf})
	rs, err := ParseRules("live.conf", strings.NewReader(rules), ParseOptions{Controllers: r.reg.Subsystems()})
	if err != nil {
		t.Fatal(err)
	}
	r.e.SetRules(rs)
	go r.run()
	t.Cleanup(func() {
		conn.Close()
		<-r.done
	})
	return r
}

func (r *liveRig) ticks(ns uint64) uint64 { return uint64(int64(ns)+r.offset) / 1e7 }

// run is the tracker: apply each event to the model, then hand it over.
func (r *liveRig) run() {
	defer close(r.done)
	for {
		evs, err := r.conn.Receive()
		if errors.Is(err, os.ErrClosed) {
			return
		}
		for _, ev := range evs {
			switch ev.What {
			case procevent.Fork:
				r.reg.Fork(ev.ParentPID, core.TaskInfo{TID: ev.PID, TGID: ev.TGID, Start: r.ticks(ev.Timestamp)})
			case procevent.Exit:
				r.reg.Exit(ev.PID, r.ticks(ev.Timestamp))
			}
			r.e.HandleEvent(ev)
			if ev.What == procevent.Exec {
				lag := time.Duration(procevent.Now() - ev.Timestamp)
				r.mu.Lock()
				if len(r.execLag) < 1<<16 {
					r.execLag[ev.TGID] = lag
				}
				r.mu.Unlock()
			}
		}
	}
}

func (r *liveRig) where(pid int) string {
	ws, ok := r.reg.Where(pid)
	if !ok {
		return ""
	}
	p, _ := whereIn(ws, r.h)
	return p
}

// waitWhere waits until pid is in path, and says how long that took.
func (r *liveRig) waitWhere(t *testing.T, pid int, path string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if r.where(pid) == path {
			return time.Since(start)
		}
		time.Sleep(50 * time.Microsecond)
	}
	t.Fatalf("process %d: in %q after 5s, want %s", pid, r.where(pid), path)
	return 0
}

// uniqueCopy copies a system program to a temporary directory under a
// name no other program on the machine has, so rules that name it can
// only match what this test starts.
func uniqueCopy(t *testing.T, src, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("%s: %v", src, err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	dst := filepath.Join(t.TempDir(), prefix+hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// start runs a command of ours and kills it, by PID, when the test ends.
func start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func randName(t *testing.T) string {
	var rnd [4]byte
	rand.Read(rnd[:])
	return "pol" + hex.EncodeToString(rnd[:])
}

func TestLiveExecPlacement(t *testing.T) {
	name := randName(t)
	sleep := uniqueCopy(t, "/bin/sleep", "cfs-policy-test-sleep-")
	rules := fmt.Sprintf("*:%s  name=%s  /placed\n", filepath.Base(sleep), name)
	r := startLive(t, rules, name)
	if _, err := r.reg.ContainerAt(r.h, "/placed", true); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	moved, err := r.e.ClassifyAll()
	pids, _ := ProcFS{}.PIDs()
	t.Logf("start-up pass over the %d processes of the machine: %d moved in %v", len(pids), moved, time.Since(t0))
	if err != nil || moved != 0 {
		t.Fatalf("start-up pass: got %d moved, %v; want 0 (the rule names a program not yet started)", moved, err)
	}

	var lags []time.Duration
	for i := range 20 {
		cmd := exec.Command(sleep, "10")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		seen := r.waitWhere(t, pid, "/placed")
		cmd.Process.Kill()
		cmd.Wait()
		r.mu.Lock()
		lag, ok := r.execLag[pid]
		r.mu.Unlock()
		if ok {
			lags = append(lags, lag)
		}
		if i == 0 {
			t.Logf("first run: placed %v after Start returned", seen)
			_, err := r.e.Explain(pid)
			t.Logf("explain of a process gone: %v", err)
		}
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		t.Logf("exec event stamp to placement done, %d runs: min %v, median %v, max %v", len(lags), lags[0], lags[len(lags)/2], lags[len(lags)-1])
	}

	// Explain a live one.
	cmd := start(t, sleep, "10")
	r.waitWhere(t, cmd.Process.Pid, "/placed")
	ex, err := r.e.Explain(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("name %q", sleep),
		"matched live.conf:1: *:" + filepath.Base(sleep),
		"name=" + name + ": destination /placed, now in /placed",
	} {
		if !strings.Contains(ex, want) {
			t.Errorf("explain:\n%s\nwant it to contain %q", ex, want)
		}
	}
	// Something the test did not start matches nothing.
	if ex, _ := r.e.Explain(os.Getppid()); !strings.Contains(ex, "no rule matched") {
		t.Errorf("explain of our parent:\n%s\nwant no rule matched", ex)
	}
}

func TestLiveChildrenFollow(t *testing.T) {
	name := randName(t)
	sh := uniqueCopy(t, "/bin/sh", "cfs-policy-test-sh-")
	rules := fmt.Sprintf("*:%s  name=%s  /shells\n", filepath.Base(sh), name)
	r := startLive(t, rules, name)
	if _, err := r.reg.ContainerAt(r.h, "/shells", true); err != nil {
		t.Fatal(err)
	}
	// The shell forks at once after its exec; its children exec sleep,
	// which no rule names: they stay where they were born, with the shell.
	cmd := start(t, sh, "-c", "sleep 10 & sleep 10 & wait")
	pid := cmd.Process.Pid
	r.waitWhere(t, pid, "/shells")
	var kids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(kids) < 2 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		kids = kids[:0]
		for _, f := range strings.Fields(string(b)) {
			k, _ := strconv.Atoi(f)
			kids = append(kids, k)
		}
		time.Sleep(time.Millisecond)
	}
	if len(kids) < 2 {
		t.Fatalf("got children %v of the shell, want 2", kids)
	}
	t.Cleanup(func() {
		for _, k := range kids {
			unix.Kill(k, unix.SIGKILL) // our own shell's children, by PID
		}
	})
	for _, k := range kids {
		r.waitWhere(t, k, "/shells")
	}
}

func TestLiveExecBeforeStart(t *testing.T) {
	// cgexec: place the process first, then exec; the program never runs
	// elsewhere, and the exec does not move it again.
	name := randName(t)
	sleep := uniqueCopy(t, "/bin/sleep", "cfs-policy-test-sleep-")
	rules := fmt.Sprintf("*:%s  name=%s  /ruled\n", filepath.Base(sleep), name)
	r := startLive(t, rules, name)
	for _, p := range []string{"/ruled", "/chosen"} {
		if _, err := r.reg.ContainerAt(r.h, p, true); err != nil {
			t.Fatal(err)
		}
	}
	// A stopped child of ours stands for the CLI process: it is placed
	// while stopped, then continues into the exec.
	cmd := exec.Command("/bin/sh", "-c", `kill -STOP $$; exec "$0" 10`, sleep)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil); err != nil || !ws.Stopped() {
		t.Fatalf("wait for the stop: %v %v", err, ws)
	}
	spec, _ := ParseSpec([]string{"name=" + name + ":/chosen"})
	if err := r.e.Exec(pid, spec, "", StickSelf); err != nil {
		t.Fatal(err)
	}
	if got := r.where(pid); got != "/chosen" {
		t.Fatalf("before exec: got %s, want /chosen", got)
	}
	unix.Kill(pid, unix.SIGCONT)
	// Wait until the exec happened, then give the event time to arrive.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == sleep {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := r.where(pid); got != "/chosen" {
		t.Errorf("after exec: got %s, want /chosen (a sticky process is left alone)", got)
	}
}
