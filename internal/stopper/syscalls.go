// This file holds the raw system calls of the ptrace thread: ptrace,
// waitid and wait4, and the SIGCHLD action that keeps stops quiet.
//
// ptrace, waitid and wait4 (with WNOHANG) never block: they are raw
// system calls, so that the runtime does not hand this thread's P to
// another thread around each of them.

package stopper

import (
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ptrace(req, tid int, data uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), 0, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

const wnothread = 0x20000000 // __WNOTHREAD: only this thread's tracees

// peekReport is waitid(P_ALL, WEXITED|WSTOPPED|WNOHANG|WNOWAIT|__WALL|
// __WNOTHREAD): the TID of a task with a report pending for this thread
// (0 if none), leaving the report to be consumed.
func peekReport() (int, error) {
	var info unix.Siginfo
	_, _, e := unix.RawSyscall6(unix.SYS_WAITID, unix.P_ALL, 0, uintptr(unsafe.Pointer(&info)),
		unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT|unix.WALL|wnothread, 0, 0)
	if e != 0 {
		return 0, e
	}
	return siginfoPID(&info), nil
}

// siginfoPID is si_pid of a SIGCHLD siginfo (the union starts at byte 16).
func siginfoPID(info *unix.Siginfo) int {
	return int(*(*int32)(unsafe.Pointer(uintptr(unsafe.Pointer(info)) + 16)))
}

// takeReport is wait4(tid, WNOHANG|__WALL|__WNOTHREAD): it consumes one
// report of tracee tid, and is false if there was none.
func takeReport(tid int) (unix.WaitStatus, bool) {
	var ws unix.WaitStatus
	r, _, e := unix.RawSyscall6(unix.SYS_WAIT4, uintptr(tid), uintptr(unsafe.Pointer(&ws)), unix.WNOHANG|unix.WALL|wnothread, 0, 0, 0)
	return ws, e == 0 && int(r) == tid
}

var quietOnce sync.Once

// quietStops sets SA_NOCLDSTOP on the process's SIGCHLD action, keeping
// the Go runtime's handler: the kernel then sends no SIGCHLD when a child
// or a tracee stops (it still does when one exits). Every ptrace stop would
// otherwise cost a signal delivery and two or three thread wake-ups in the
// runtime, the bulk of the daemon's CPU time when it throttles many tasks.
// The daemon never waits for its children's stops. Go reinstalls a
// handler only on signal.Ignore or a first Notify of a signal it did not
// handle; it handles SIGCHLD from the start.
func quietStops() {
	type sigaction struct {
		handler, flags, restorer uintptr
		mask                     uint64
	}
	const saNoCldStop = 1
	var sa sigaction
	const size = 8 // sizeof(sigset_t) for rt_sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(syscall.SIGCHLD), 0, uintptr(unsafe.Pointer(&sa)), size, 0, 0); e != 0 {
		return
	}
	if sa.handler == 0 || sa.handler == 1 { // SIG_DFL, SIG_IGN: leave them
		return
	}
	sa.flags |= saNoCldStop
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(syscall.SIGCHLD), uintptr(unsafe.Pointer(&sa)), 0, size, 0, 0)
}
