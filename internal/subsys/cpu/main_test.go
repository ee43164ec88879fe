// The test binary's entry point, which doubles as a multi-threaded busy
// helper process.

package cpu

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"
)

// With CPU_TEST_HELPER=threads the test binary is a helper process: it
// runs three busy threads (and the Go runtime's own), says "ready", and
// lives until its stdin is closed.
func TestMain(m *testing.M) {
	if os.Getenv("CPU_TEST_HELPER") == "threads" {
		runtime.GOMAXPROCS(4)
		for range 3 {
			go func() {
				runtime.LockOSThread()
				for {
				}
			}()
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
