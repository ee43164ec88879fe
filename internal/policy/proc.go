// Processes as the rules see them: read from /proc (ProcFS), with the name
// libcgroup matches rules against.

package policy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// Process is what the rules look at in a process: who runs it and what it
// runs.
type Process struct {
	PID, PPID int
	Start     uint64 // clock ticks since boot: with PID, the process's identity
	Comm      string // /proc/PID/comm, at most 15 bytes
	Exe       string // /proc/PID/exe, "" when unreadable
	// Name is the process name libcgroup matches rules against: the full
	// path of the program where one is known (the executable, or the
	// script an interpreter runs), else Comm.
	Name       string
	EUID, EGID uint32
	RT         bool // SCHED_FIFO or SCHED_RR, for ignore_rt
	Kernel     bool // a kernel thread: the rules never move one
}

// Procs finds processes. ProcFS reads /proc; tests use a fake.
type Procs interface {
	// Process describes process pid; an error wrapping ESRCH if it is gone.
	Process(pid int) (Process, error)
	// PIDs lists every process (thread group) on the machine.
	PIDs() ([]int, error)
}

// ProcFS reads processes from a procfs mounted at Root ("/proc").
type ProcFS struct{ Root string }

var _ Procs = ProcFS{}

const (
	commLen    = 15 // TASK_COMM_LEN - 1
	deletedSfx = " (deleted)"
)

// gone is a read error as Process returns it: a file that could not be
// read means the process is gone (ESRCH); one that reads malformed stays
// as it is.
func gone(err error) error {
	if errors.Is(err, proc.ErrMalformed) {
		return err
	}
	return syscall.ESRCH
}

func (p ProcFS) root() string {
	if p.Root == "" {
		return "/proc"
	}
	return p.Root
}

// Process reads /proc/PID/stat, status, exe and, for interpreters,
// cmdline. The comm is stat's second field, as /proc/PID/comm shows it.
func (p ProcFS) Process(pid int) (Process, error) {
	dir := fmt.Sprintf("%s/%d", p.root(), pid)
	st, err := proc.ReadStat(p.root(), pid)
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, gone(err))
	}
	if !st.HasPolicy() {
		return Process{}, fmt.Errorf("process %d: stat has no field 41 (policy): %w", pid, proc.ErrMalformed)
	}
	pr := Process{
		PID: pid, PPID: st.PPID, Start: st.Start, Comm: st.Comm,
		RT: st.RealTime(), Kernel: st.Kernel(),
	}
	status, err := proc.ReadStatus(p.root(), pid)
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, gone(err))
	}
	pr.EUID, pr.EGID = status.UID[proc.Effective], status.GID[proc.Effective]
	if tgid := status.TGID; tgid != pid {
		// A thread's ID: /proc/TID exists for threads too, but rules
		// classify processes.
		return Process{}, fmt.Errorf("%d is a thread of process %d: %w", pid, tgid, syscall.ESRCH)
	}
	if !pr.Kernel {
		if exe, err := os.Readlink(dir + "/exe"); err == nil {
			pr.Exe = strings.TrimSuffix(exe, deletedSfx)
		}
	}
	pr.Name = procName(pr.Comm, pr.Exe, func() []string {
		b, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			return nil
		}
		return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}, dir)
	return pr, nil
}

// procName picks the name rules match against, as libcgroup's
// cgroup_get_procname_from_procfs does: the executable's path when its
// base name is the comm (comm is truncated to 15 bytes); otherwise the
// program is an interpreter, and the name is the path of the argument
// whose base name is the comm (the script); failing both, the comm.
func procName(comm, exe string, cmdline func() []string, procDir string) string {
	if exe != "" && prefixEqual(path.Base(exe), comm) {
		return exe
	}
	if exe != "" {
		for _, arg := range cmdline() {
			if arg == "" || !prefixEqual(path.Base(arg), comm) {
				continue
			}
			if !filepath.IsAbs(arg) {
				// Relative to the process's working directory.
				cwd, err := os.Readlink(procDir + "/cwd")
				if err != nil {
					continue
				}
				arg = filepath.Join(cwd, arg)
			}
			if real, err := filepath.EvalSymlinks(arg); err == nil {
				return real
			}
		}
	}
	return comm
}

// prefixEqual compares a name with a comm as the kernel truncates it.
func prefixEqual(name, comm string) bool {
	if len(name) > commLen {
		name = name[:commLen]
	}
	return name == comm && comm != ""
}

// PIDs lists the numeric entries of /proc: the processes.
func (p ProcFS) PIDs() ([]int, error) {
	ents, err := os.ReadDir(p.root())
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
