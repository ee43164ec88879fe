package taskstats

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary a child process for a test instead of
// running tests.
const helperEnv = "TASKSTATS_TEST_HELPER"

var sink uint64

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "threads":
		// Burn some CPU on three more threads, then exit with all of them:
		// the last thread's exit record carries the group's aggregate.
		done := make(chan struct{})
		for range 3 {
			go func() {
				runtime.LockOSThread()
				burn(20 * time.Millisecond)
				done <- struct{}{}
				select {}
			}()
		}
		for range 3 {
			<-done
		}
		os.Exit(0)
	}
	panic("unknown " + helperEnv)
}

// burn spins for about d of wall time.
func burn(d time.Duration) {
	end := time.Now().Add(d)
	x := sink
	for time.Now().Before(end) {
		for i := range uint64(1 << 16) {
			x = x*6364136223846793005 + i
		}
	}
	sink = x
}

func runtimeCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return runtime.NumCPU()
	}
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexAny(s, "-,"); i >= 0 {
		s = s[i+1:]
	}
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n + 1
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}
