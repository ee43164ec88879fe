package procevent

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Now agrees with clock_gettime(CLOCK_MONOTONIC) to within the time
// between the readings (plus a little for scheduling under -race).
func TestNowIsMonotonicClock(t *testing.T) {
	for range 100 {
		var a, b unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		now := int64(Now())
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
		const slack = int64(50 * time.Microsecond)
		if now < a.Nano()-slack || now > b.Nano()+slack {
			t.Fatalf("Now() = %d, want between %d and %d", now, a.Nano(), b.Nano())
		}
	}
}
