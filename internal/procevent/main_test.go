package procevent

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a child process for a test
// instead of running tests.
const helperEnv = "PROCEVENT_TEST_HELPER"

// helperComm is the name the "record" helper gives itself: a space and
// parentheses, the characters a stat parser trips on.
const helperComm = "fix (t) me"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "record":
		// Writing /proc/self/comm renames the leader and makes the kernel
		// send a Comm event. A goroutine that exits while locked to its
		// thread takes the thread with it: a thread exit.
		if err := os.WriteFile("/proc/self/comm", []byte(helperComm), 0); err != nil {
			panic(err)
		}
		done := make(chan struct{})
		go func() { runtime.LockOSThread(); close(done) }()
		<-done
		time.Sleep(10 * time.Millisecond)
		os.Exit(3)
	}
	panic("unknown " + helperEnv)
}

// helper returns a command running this test binary as the named helper,
// killed when ctx ends.
func helper(ctx context.Context, name string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	return cmd
}
