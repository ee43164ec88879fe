// Command containerfs is the process-container daemon, its CLI, and, when
// run as mount.container, the mount(8) helper.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The main goroutine keeps the main thread, so that `containerfs exec`
// execs from the thread group's leader. An exec from another thread makes
// the kernel kill the leader first and hand its PID to the exec'ing thread:
// the daemon sees the leader's exit before the exec, and would lose the
// process it just placed.
func init() { runtime.LockOSThread() }

func main() {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "mount.") {
		os.Exit(mountHelper(os.Args[1:]))
	}
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "containerfs: "+format+"\n", a...)
	os.Exit(1)
}
