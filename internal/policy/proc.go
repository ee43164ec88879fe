package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	pfKthread  = 0x00200000 // PF_KTHREAD in stat's flags
	schedFIFO  = 1
	schedRR    = 2
	commLen    = 15 // TASK_COMM_LEN - 1
	deletedSfx = " (deleted)"
)

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
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, syscall.ESRCH)
	}
	pr, err := parseStat(stat)
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, err)
	}
	pr.PID = pid
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, syscall.ESRCH)
	}
	tgid, err := parseStatus(status, &pr)
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, err)
	}
	if tgid != pid {
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

// parseStat reads ppid, flags, start time and policy from a stat line,
// counting fields after the last ')' since comm may hold anything.
func parseStat(b []byte) (Process, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Process{}, errors.New("malformed stat")
	}
	open := bytes.IndexByte(b, '(')
	if open < 0 || open > i {
		return Process{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, state
	if len(f) < 41-2 {
		return Process{}, fmt.Errorf("stat has %d fields, want 41", len(f)+2)
	}
	field := func(n int) string { return f[n-3] }
	pr := Process{Comm: string(b[open+1 : i])}
	var err error
	if pr.PPID, err = strconv.Atoi(field(4)); err != nil {
		return Process{}, fmt.Errorf("stat ppid: %w", err)
	}
	flags, _ := strconv.ParseUint(field(9), 10, 64)
	pr.Kernel = flags&pfKthread != 0
	if pr.Start, err = strconv.ParseUint(field(22), 10, 64); err != nil {
		return Process{}, fmt.Errorf("stat start time: %w", err)
	}
	policy, _ := strconv.Atoi(field(41))
	pr.RT = policy == schedFIFO || policy == schedRR
	return pr, nil
}

// parseStatus reads the thread group and the effective IDs.
func parseStatus(b []byte, pr *Process) (tgid int, err error) {
	seen := 0
	for line := range bytes.Lines(b) {
		key, val, _ := bytes.Cut(line, []byte(":"))
		f := strings.Fields(string(val))
		switch string(key) {
		case "Tgid":
			if len(f) < 1 {
				return 0, errors.New("status: empty Tgid")
			}
			tgid, err = strconv.Atoi(f[0])
		case "Uid", "Gid":
			if len(f) < 2 {
				return 0, fmt.Errorf("status: %s has %d IDs", key, len(f))
			}
			var v uint64
			v, err = strconv.ParseUint(f[1], 10, 32)
			if string(key) == "Uid" {
				pr.EUID = uint32(v)
			} else {
				pr.EGID = uint32(v)
			}
		default:
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("status %s: %w", key, err)
		}
		if seen++; seen == 3 {
			return tgid, nil
		}
	}
	return 0, errors.New("status: want Tgid, Uid and Gid lines")
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
