package cpuacct

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary a helper process for the end-to-end
// tests and the benchmark instead of running tests: see helperWorker.
const helperEnv = "CPUACCT_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "worker":
		helperWorker()
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// processCPU is the calling process's CPU time in ns, every thread's,
// exact to the moment (CLOCK_PROCESS_CPUTIME_ID).
func processCPU() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts)
	return ts.Nano()
}

func threadCPU() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// spin burns d of the calling thread's CPU time.
func spin(d time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	end := threadCPU() + d.Nanoseconds()
	// Reading the thread's clock is a system call: spin long between reads,
	// so the loop is nearly all user time.
	for threadCPU() < end {
		burn()
	}
}

// sink keeps burn's result alive; several threads burn at once, so it is
// atomic.
var sink atomic.Uint64

// burn is a few hundred microseconds of arithmetic the compiler cannot
// drop.
func burn() {
	x := sink.Load()
	for i := range uint64(1 << 20) {
		x = x*6364136223846793005 + i
	}
	sink.Store(x)
}

// shLoop is a shell busy loop of n iterations: about 1 ms of CPU per
// thousand here.
func shLoop(n int) *exec.Cmd {
	return exec.Command("/bin/sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do i=$((i+1)); done", n))
}

// childCPU is what a reaped child used, from its rusage: wait4 reports
// its exact run time (utime+stime scaled to se.sum_exec_runtime), to the µs.
func childCPU(c *exec.Cmd) int64 {
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// helperWorker obeys one command per line of stdin and answers each with a
// line: "ok" and a figure in ns, or "error ...". It exits at EOF.
//
//	cpu                 its own CPU time so far
//	spin MS             burn MS ms of CPU; answers its CPU time after
//	spawn N ITER P      run N shell loops of ITER iterations, P at a time;
//	                    answers the sum of their CPU times
//	threads N MS        start N threads that burn MS ms each and exit;
//	                    answers when they are gone
func helperWorker() {
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for in.Scan() {
		f := strings.Fields(in.Text())
		arg := func(i int) int {
			if i >= len(f) {
				return 1
			}
			v, _ := strconv.Atoi(f[i])
			return v
		}
		switch f[0] {
		case "cpu":
			fmt.Println("ok", processCPU())
		case "spin":
			spin(time.Duration(arg(1)) * time.Millisecond)
			fmt.Println("ok", processCPU())
		case "spawn":
			n, iter, par := arg(1), arg(2), arg(3)
			var mu sync.Mutex
			var sum int64
			var failed error
			var wg sync.WaitGroup
			next := make(chan struct{})
			go func() {
				for range n {
					next <- struct{}{}
				}
				close(next)
			}()
			for range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						c := shLoop(iter)
						err := c.Run()
						mu.Lock()
						if err != nil {
							failed = err
						} else {
							sum += childCPU(c)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if failed != nil {
				fmt.Println("error", failed)
				continue
			}
			fmt.Println("ok", sum)
		case "threads":
			var wg sync.WaitGroup
			for range arg(1) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Locked and never unlocked: the thread exits with
					// the goroutine.
					runtime.LockOSThread()
					end := threadCPU() + int64(arg(2))*1e6
					for threadCPU() < end {
						burn()
					}
				}()
			}
			wg.Wait()
			time.Sleep(10 * time.Millisecond) // let the threads finish exiting
			fmt.Println("ok", processCPU())
		default:
			fmt.Println("error unknown command", f[0])
		}
	}
}

// workerProc is a worker process started by a test.
type workerProc struct {
	t   testing.TB
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Scanner
	pid int
}

// startWorker starts a worker in its own process group, killed and reaped
// when the test ends.
func startWorker(t testing.TB) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=worker")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	p := &workerProc{t: t, cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout), pid: cmd.Process.Pid}
	if !p.out.Scan() || p.out.Text() != "ready" {
		t.Fatalf("worker did not start: %q %v", p.out.Text(), p.out.Err())
	}
	return p
}

// do sends one command and returns the figure of its answer.
func (p *workerProc) do(format string, a ...any) int64 {
	p.t.Helper()
	fmt.Fprintf(p.in, format+"\n", a...)
	p.in.Flush()
	done := make(chan bool, 1)
	go func() { done <- p.out.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			p.t.Fatalf("worker %d: no answer to %q: %v", p.pid, fmt.Sprintf(format, a...), p.out.Err())
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("worker %d: no answer to %q within 60 s", p.pid, fmt.Sprintf(format, a...))
	}
	var v int64
	if _, err := fmt.Sscanf(p.out.Text(), "ok %d", &v); err != nil {
		p.t.Fatalf("worker %d: %q answered %q", p.pid, fmt.Sprintf(format, a...), p.out.Text())
	}
	return v
}

func fmtSscanf(s, format string, a ...any) (int, error) { return fmt.Sscanf(s, format, a...) }
