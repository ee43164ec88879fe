// Scanning /proc: every thread on the machine (Scan), or one (ReadTask).

package procevent

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
	"golang.org/x/sys/unix"
)

// Task is one thread as /proc shows it.
type Task struct {
	TID, TGID, PPID int    // PPID is the process ID of the real parent of the thread group
	Start           uint64 // starttime: clock ticks (USER_HZ) after boot, stat field 22
	UID, GID        uint32 // real
	EUID, EGID      uint32 // effective
	Comm            string // may contain any byte but NUL, spaces and parentheses included
}

// Scan lists every thread on the machine from procRoot/<pid>/task/<tid>/
// stat and status. Tasks that exit during the scan are left out; tasks that
// start during it may be. It is a snapshot of nothing in particular: each
// task is read at a slightly different time.
//
// It reads the files with raw syscalls into one buffer, reused from task
// to task, and parses them with internal/proc, which allocates nothing but
// the strings it keeps: prometheus/procfs allocates and fmt.Sscans every
// field of both files, which made it several times slower (see
// BenchmarkScan).
func Scan(procRoot string) ([]Task, error) {
	root, err := unix.Open(procRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("procevent: open %s: %w", procRoot, err)
	}
	defer unix.Close(root)
	var s scanner
	pids, err := s.names(root)
	if err != nil {
		return nil, fmt.Errorf("procevent: read %s: %w", procRoot, err)
	}
	tasks := make([]Task, 0, 2*len(pids))
	for _, p := range pids {
		if _, err := strconv.Atoi(p); err != nil {
			continue // not a process
		}
		dir, err := unix.Openat(root, p+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if gone(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("procevent: open %s/%s/task: %w", procRoot, p, err)
		}
		tids, err := s.names(dir)
		if err == nil {
			for _, t := range tids {
				task, terr := s.task(dir, t+"/stat", t+"/status")
				if terr == nil {
					tasks = append(tasks, task)
				} else if !gone(terr) {
					err = terr
					break
				}
			}
		}
		unix.Close(dir)
		if err != nil && !gone(err) {
			return nil, fmt.Errorf("procevent: %s/%s/task: %w", procRoot, p, err)
		}
	}
	return tasks, nil
}

// ReadTask reads one thread, whether or not it leads its thread group. If
// the thread is gone, or was reaped and its ID reused between the reads,
// the error wraps syscall.ESRCH.
func ReadTask(procRoot string, tid int) (Task, error) {
	// The directory descriptor pins the task: once it is reaped, reads
	// through it fail even if a new task takes the ID.
	name := fmt.Sprintf("%s/%d/task/%d", procRoot, tid, tid)
	dir, err := unix.Open(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(dir)
		var s scanner
		var t Task
		if t, err = s.task(dir, "stat", "status"); err == nil {
			return t, nil
		}
	}
	if gone(err) {
		err = syscall.ESRCH
	}
	return Task{}, fmt.Errorf("procevent: read task %s: %w", name, err)
}

func gone(err error) bool { return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) }

// scanner holds the buffers of a scan.
type scanner struct {
	buf, dirents []byte
}

// names lists a directory, unsorted.
func (s *scanner) names(fd int) ([]string, error) {
	if s.dirents == nil {
		s.dirents = make([]byte, 32<<10)
	}
	var names []string
	for {
		n, err := unix.ReadDirent(fd, s.dirents)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return names, err
		}
		_, _, names = unix.ParseDirent(s.dirents[:n], -1, names)
	}
}

// task reads a thread's stat and status, named relative to dir.
func (s *scanner) task(dir int, stat, status string) (Task, error) {
	b, err := s.read(dir, stat)
	if err != nil {
		return Task{}, err
	}
	st, err := proc.ParseStat(b) // before the next read reuses b
	if err != nil {
		return Task{}, fmt.Errorf("%s: %w", stat, err)
	}
	if b, err = s.read(dir, status); err != nil {
		return Task{}, err
	}
	ps, err := proc.ParseStatus(b)
	if err != nil {
		return Task{}, fmt.Errorf("%s: %w", status, err)
	}
	return taskOf(st, ps), nil
}

// read returns the contents of a /proc file, valid until the next read.
func (s *scanner) read(dir int, name string) ([]byte, error) {
	if s.buf == nil {
		s.buf = make([]byte, 4096)
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		m, err := unix.Read(fd, s.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		n += m
		// These seq_files produce all their text at once and hand over as
		// much as fits, so a read that does not fill the buffer is the end.
		if m == 0 || n < len(s.buf) {
			return s.buf[:n], nil
		}
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
}

// taskOf is the task that a thread's parsed stat and status describe.
func taskOf(st proc.Stat, ps proc.Status) Task {
	return Task{
		TID: st.TID, TGID: ps.TGID, PPID: st.PPID, Start: st.Start,
		UID: ps.UID[proc.Real], GID: ps.GID[proc.Real],
		EUID: ps.UID[proc.Effective], EGID: ps.GID[proc.Effective],
		Comm: st.Comm,
	}
}
