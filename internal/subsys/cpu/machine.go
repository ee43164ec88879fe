// What the enforcer reads of the machine and of its tasks outside /proc's
// files: the online CPUs, a task's CPU affinity, and the raw pread it
// re-reads a task's open /proc files with.

package cpu

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
	"golang.org/x/sys/unix"
)

// onlineCPUs reads /sys/devices/system/cpu/online ("0-3,6").
func onlineCPUs() sched.Mask {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	m, ok := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil || !ok || m == (sched.Mask{}) {
		m = sched.Mask{}
		for i := 0; i < max(1, runtime.NumCPU()); i++ {
			m.Set(i)
		}
	}
	return m
}

func parseCPUList(s string) (sched.Mask, bool) {
	var m sched.Mask
	if s == "" {
		return m, false
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return m, false
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return m, false
			}
		}
		for c := a; c <= b; c++ {
			m.Set(c)
		}
	}
	return m, true
}

// pread and getaffinity are raw system calls: reading /proc and an affinity
// never blocks, and they run for every task at every tick. Through the
// runtime's entersyscall, a read that takes a while under load lets the
// scheduler hand the P to another thread, a context switch that costs more
// than the read on this machine's virtual CPUs.
func pread(fd int, buf []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func getaffinity(tid int, set *unix.CPUSet) error {
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(*set), uintptr(unsafe.Pointer(set)))
	if e != 0 {
		return e
	}
	return nil
}
