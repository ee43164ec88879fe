package core

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Task is one thread on the machine. A task is identified by its TID and its
// start time, so that a reused TID is never mistaken for the task that had it.
type Task struct {
	TID, TGID int
	Start     uint64 // start time in clock ticks since boot (/proc/PID/stat field 22)

	// in[slot] is the task's container in the hierarchy at that registry
	// slot. Guarded by Registry.mu.
	in []*Container
}

// In is the task's container in hierarchy h. Call with the registry lock held
// (hooks and handlers are).
func (t *Task) In(h *Hierarchy) *Container {
	if h.slot < len(t.in) {
		return t.in[h.slot]
	}
	return nil
}

// TaskInfo is what the model needs to know of a thread from outside.
type TaskInfo struct {
	TID, TGID int
	Start     uint64
	UID, SUID uint32 // real and saved uid, for cgroup v1's move permission
	// NoSetAffinity marks kernel threads with PF_NO_SETAFFINITY, which
	// cgroup v1 refuses to move (EINVAL).
	NoSetAffinity bool
	// Exited marks a zombie: it has left every cgroup, and moving it is
	// ESRCH.
	Exited bool
}

// Procs looks tasks up where they live. The daemon uses /proc; unit tests use
// a fake.
type Procs interface {
	// Task describes one thread; an error wrapping ESRCH if it is gone.
	Task(tid int) (TaskInfo, error)
	// Threads lists the TIDs of thread group tgid; ESRCH if it is gone.
	Threads(tgid int) ([]int, error)
}

// StatReader is an optional Procs method: a cheaper lookup that fills only
// Start, NoSetAffinity and Exited.
type StatReader interface {
	Stat(tid int) (TaskInfo, error)
}

// ProcFS reads tasks from a procfs mounted at Root ("/proc").
type ProcFS struct{ Root string }

const pfNoSetAffinity = 0x04000000

var _ StatReader = ProcFS{}

// readSmall reads a small /proc file with one open, read and close, into
// buf (os.ReadFile stats and grows its buffer: several times the cost).
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Stat reads only /proc/TID/stat.
func (p ProcFS) Stat(tid int) (TaskInfo, error) {
	var buf [1024]byte
	b, err := readSmall(p.Root+"/"+strconv.Itoa(tid)+"/stat", buf[:])
	if err != nil {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, syscall.ESRCH)
	}
	ti, err := parseStat(b)
	if err != nil {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, err)
	}
	ti.TID = tid
	return ti, nil
}

// Task reads /proc/TID/stat and, for the thread group and uids,
// /proc/TID/status.
func (p ProcFS) Task(tid int) (TaskInfo, error) {
	ti, err := p.Stat(tid)
	if err != nil {
		return TaskInfo{}, err
	}
	var buf [4096]byte
	st, err := readSmall(p.Root+"/"+strconv.Itoa(tid)+"/status", buf[:])
	if err != nil {
		return TaskInfo{}, fmt.Errorf("task %d: %w", tid, syscall.ESRCH)
	}
	sc := bufio.NewScanner(bytes.NewReader(st))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Tgid:"):
			ti.TGID, _ = strconv.Atoi(strings.TrimSpace(line[5:]))
		case strings.HasPrefix(line, "Uid:"):
			f := strings.Fields(line[4:])
			if len(f) >= 3 {
				u, _ := strconv.ParseUint(f[0], 10, 32)
				s, _ := strconv.ParseUint(f[2], 10, 32)
				ti.UID, ti.SUID = uint32(u), uint32(s)
			}
		}
	}
	return ti, nil
}

// parseStat takes the flags (field 9) and start time (field 22) from a stat
// line. The comm field may hold spaces and parentheses: fields are counted
// from the last ')'.
func parseStat(b []byte) (TaskInfo, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return TaskInfo{}, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return TaskInfo{}, fmt.Errorf("short stat")
	}
	flags, _ := strconv.ParseUint(f[9-3], 10, 64)
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return TaskInfo{}, fmt.Errorf("stat start time: %w", err)
	}
	return TaskInfo{Start: start, NoSetAffinity: flags&pfNoSetAffinity != 0, Exited: f[0] == "Z" || f[0] == "X"}, nil
}

// Threads lists /proc/TGID/task.
func (p ProcFS) Threads(tgid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("%s/%d/task", p.Root, tgid))
	if err != nil {
		return nil, fmt.Errorf("thread group %d: %w", tgid, syscall.ESRCH)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
