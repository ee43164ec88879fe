package cpuset

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/subsys/cpulist"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary a helper process for the end-to-end
// tests instead of running tests: see helperThreads and helperWiden.
const helperEnv = "CPUSET_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "threads":
		helperThreads()
	case "widen":
		helperWiden()
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// helperThreads starts four more OS threads, says "ready", and lives until
// its stdin is closed.
func helperThreads() {
	var wg sync.WaitGroup
	block := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			runtime.LockOSThread()
			wg.Done()
			<-block
		}()
	}
	wg.Wait()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// helperWiden widens its own thread's affinity to every online CPU on each
// line of stdin, waits until something narrows it back within the mask it
// had at start, and prints how long that took in microseconds ("timeout"
// after 5 s).
func helperWiden() {
	runtime.LockOSThread()
	online, err := cpulist.OnlineCPUs()
	if err != nil {
		fmt.Println("error", err)
		return
	}
	k := newLinuxKernel()
	tid := unix.Gettid()
	fmt.Println("ready", tid)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		orig, err := k.Affinity(tid)
		if err != nil {
			fmt.Println("error", err)
			return
		}
		if err := k.SetAffinity(tid, online); err != nil {
			fmt.Println("error", err)
			return
		}
		began := time.Now()
		for {
			cur, err := k.Affinity(tid)
			if err != nil {
				fmt.Println("error", err)
				return
			}
			if cur.SubsetOf(orig) {
				fmt.Println(time.Since(began).Microseconds())
				break
			}
			if time.Since(began) > 5*time.Second {
				fmt.Println("timeout")
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
}
