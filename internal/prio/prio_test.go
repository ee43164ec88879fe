package prio

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
)

// The test binary doubles as a daemon-like process (PRIO_TEST_CHILD=1): it
// raises itself, makes a background and an ordinary thread, starts a child
// from the ordinary one, makes new threads after the raise, and reports
// every thread's policy; the parent test checks them. Raising the test
// process itself would make the whole test run real-time.
func TestMain(m *testing.M) {
	if os.Getenv("PRIO_TEST_CHILD") == "1" {
		child()
		return
	}
	os.Exit(m.Run())
}

func child() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	rt := Raise(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	fmt.Fprintf(out, "realtime %v\n", rt)
	bg := make(chan int)
	go func() {
		Background()
		bg <- unix.Gettid()
		select {}
	}()
	fmt.Fprintf(out, "background %d\n", <-bg)
	kid := make(chan int)
	go func() {
		Ordinary()
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			kid <- -1
			return
		}
		kid <- cmd.Process.Pid
		cmd.Wait()
	}()
	fmt.Fprintf(out, "child %d\n", <-kid)
	// Make the runtime start threads after the raise: goroutines blocked
	// in system calls each hold a thread.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { unix.Nanosleep(&unix.Timespec{Nsec: 200e6}, nil) })
	}
	wg.Wait()
	fmt.Fprintf(out, "pid %d\n", os.Getpid())
	out.Flush()
	time.Sleep(30 * time.Second) // until the parent kills it
}

func TestRaise(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRIO_TEST_CHILD=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var kid int
	t.Cleanup(func() {
		if kid > 0 {
			syscall.Kill(kid, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	got := map[string]int{}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.Atoi(v)
		if v == "true" {
			n = 1
		}
		got[k] = n
		if k == "pid" {
			break
		}
	}
	kid = got["child"]
	if got["pid"] == 0 || got["background"] == 0 || kid <= 0 {
		t.Fatalf("child process reported %v", got)
	}
	if got["realtime"] != 1 {
		t.Fatalf("Raise: not real-time")
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", got["pid"]))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < 5 {
		t.Errorf("only %d threads: the test made none after the raise", len(ents))
	}
	ordinary := 0
	for _, e := range ents {
		tid, ok := proc.Atoi(e.Name())
		if !ok {
			continue
		}
		pol, nice, err := Policy(tid)
		if err != nil {
			continue // ended meanwhile
		}
		switch {
		case tid == got["background"]:
			if pol != unix.SCHED_NORMAL || nice != Nice {
				t.Errorf("background thread %d: policy %d nice %d, want SCHED_NORMAL nice %d", tid, pol, nice, Nice)
			}
		case pol == unix.SCHED_NORMAL && nice == 0:
			ordinary++ // the thread Ordinary made, waiting for the child
		case pol != unix.SCHED_FIFO:
			t.Errorf("thread %d: policy %d nice %d, want SCHED_FIFO", tid, pol, nice)
		}
	}
	if ordinary != 1 {
		t.Errorf("%d ordinary threads, want 1 (the one that started the child)", ordinary)
	}
	if pol, nice, err := Policy(kid); err != nil || pol != unix.SCHED_NORMAL || nice != 0 {
		t.Errorf("child process %d: policy %d nice %d (%v), want SCHED_NORMAL nice 0", kid, pol, nice, err)
	}
}
