package pids

// The test binary as a helper process that makes threads on demand.

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain lets the test binary double as a process that makes threads on
// demand: with PIDS_TEST_THREADS=N it prints "ready", and on each line read
// from stdin makes N more OS threads (goroutines locked to threads, until
// /proc/self/task has grown by N: the runtime may reuse an idle thread for
// the first ones) and prints "started".
func TestMain(m *testing.M) {
	if n := os.Getenv("PIDS_TEST_THREADS"); n != "" {
		var count int
		fmt.Sscan(n, &count)
		fmt.Println("ready")
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			target := threadsOfSelf() + count
			for threadsOfSelf() < target {
				go func() {
					runtime.LockOSThread()
					select {}
				}()
				time.Sleep(time.Millisecond)
			}
			fmt.Println("started")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func threadsOfSelf() int {
	ents, _ := os.ReadDir("/proc/self/task")
	return len(ents)
}
