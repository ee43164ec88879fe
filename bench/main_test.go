package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a helper process instead: "threads:N"
// starts N threads that sleep, prints their TIDs, and exits when its
// standard input closes.
const helperEnv = "CONTAINERFS_BENCH_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(runHelper(v))
	}
	flag.Parse()
	stop := watchdog()
	code := m.Run()
	stop()
	removeBinaries()
	os.Exit(code)
}

// binDirs are the directories of binaries built for this run: floorfs's,
// and testutil's containerfs (which testutil leaves behind).
var binDirs struct {
	sync.Mutex
	dirs []string
}

func keepBinDir(dir string) {
	binDirs.Lock()
	defer binDirs.Unlock()
	if !slices.Contains(binDirs.dirs, dir) {
		binDirs.dirs = append(binDirs.dirs, dir)
	}
}

func removeBinaries() {
	binDirs.Lock()
	defer binDirs.Unlock()
	for _, d := range binDirs.dirs {
		os.RemoveAll(d)
	}
	binDirs.dirs = nil
}

// watchdog undoes everything this process set up (mounts, daemons, kernel
// cgroups) if the run is about to hit go test's -timeout, whose panic would
// skip every Cleanup, or if it is interrupted.
func watchdog() (stop func()) {
	var timeout time.Duration
	if f := flag.Lookup("test.timeout"); f != nil {
		timeout, _ = time.ParseDuration(f.Value.String())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var t *time.Timer
	var fire <-chan time.Time
	if timeout > 0 {
		margin := min(30*time.Second, timeout/10)
		t = time.NewTimer(timeout - margin)
		fire = t.C
	}
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "bench: %v: cleaning up\n", s)
		case <-fire:
			fmt.Fprintf(os.Stderr, "bench: about to reach -timeout %v: cleaning up\n", timeout)
		}
		runEmergency()
		removeBinaries()
		os.Exit(3)
	}()
	return func() {
		if t != nil {
			t.Stop()
		}
		signal.Stop(sigs)
	}
}

// emergency holds the undo functions of everything live, for the watchdog.
var emergency struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// always runs f when the test ends, and from the watchdog if the run is
// killed first; f runs once either way.
func always(tb testing.TB, f func()) {
	var once sync.Once
	g := func() { once.Do(f) }
	emergency.Lock()
	if emergency.fns == nil {
		emergency.fns = map[int]func(){}
	}
	id := emergency.next
	emergency.next++
	emergency.fns[id] = g
	emergency.Unlock()
	tb.Cleanup(func() {
		g()
		emergency.Lock()
		delete(emergency.fns, id)
		emergency.Unlock()
	})
}

// runEmergency runs every pending undo function, newest first; each bounds
// its own time.
func runEmergency() {
	emergency.Lock()
	ids := make([]int, 0, len(emergency.fns))
	for id := range emergency.fns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fns := make([]func(), len(ids))
	for i, id := range ids {
		fns[i] = emergency.fns[id]
	}
	emergency.Unlock()
	for _, f := range slices.Backward(fns) {
		f()
	}
}

// runHelper is the helper process: threads:N starts N OS threads that sleep
// and prints "tids T1 T2 ..." (just the PID for N = 0).
func runHelper(spec string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(spec, "threads:"))
	if err != nil || !strings.HasPrefix(spec, "threads:") {
		fmt.Fprintf(os.Stderr, "bench helper: bad %s=%q\n", helperEnv, spec)
		return 2
	}
	tids := make(chan int, n)
	for range n {
		go func() {
			runtime.LockOSThread() // never unlocked: this goroutine owns its thread
			tids <- syscall.Gettid()
			select {}
		}()
	}
	var list []string
	for range n {
		list = append(list, strconv.Itoa(<-tids))
	}
	if n == 0 {
		list = append(list, strconv.Itoa(os.Getpid()))
	}
	fmt.Printf("tids %s\n", strings.Join(list, " "))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// helper is a process started by the benchmark: only such processes are
// ever moved into a kernel cgroup.
type helper struct {
	PID  int
	TIDs []int // its sleeping threads; just PID for a helper with none
}

var ours struct {
	sync.Mutex
	pids map[int]bool
}

func isOurs(pid int) bool {
	ours.Lock()
	defer ours.Unlock()
	return ours.pids[pid]
}

// startHelper starts a helper process with n sleeping threads. It exits when
// the test ends (or when this process dies: its stdin closes).
func startHelper(tb testing.TB, n int) *helper {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=threads:%d", helperEnv, n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pid := cmd.Process.Pid
	ours.Lock()
	if ours.pids == nil {
		ours.pids = map[int]bool{}
	}
	ours.pids[pid] = true
	ours.Unlock()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	always(tb, func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		ours.Lock()
		delete(ours.pids, pid)
		ours.Unlock()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	var s string
	select {
	case s = <-line:
	case <-time.After(30 * time.Second):
		tb.Fatalf("helper with %d threads did not start within 30s", n)
	}
	f := strings.Fields(s)
	if len(f) < 2 || f[0] != "tids" {
		tb.Fatalf("helper with %d threads: got %q, want tids ...", n, s)
	}
	h := &helper{PID: pid}
	for _, x := range f[1:] {
		tid, err := strconv.Atoi(x)
		if err != nil {
			tb.Fatalf("helper: bad TID %q", x)
		}
		h.TIDs = append(h.TIDs, tid)
	}
	return h
}
