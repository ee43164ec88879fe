package procevent

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"syscall"

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
// It reads the files with raw syscalls into one buffer and parses the two
// fields of stat it needs by hand: prometheus/procfs allocates and
// fmt.Sscans every field of both files, which made it several times slower
// (see BenchmarkScan).
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
	t, err := parseStat(b)
	if err != nil {
		return Task{}, fmt.Errorf("%s: %w", stat, err)
	}
	if b, err = s.read(dir, status); err != nil {
		return Task{}, err
	}
	if err := parseStatus(b, &t); err != nil {
		return Task{}, fmt.Errorf("%s: %w", status, err)
	}
	return t, nil
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

// parseStat reads the thread ID, comm, parent and start time from
// /proc/<pid>/task/<tid>/stat: "tid (comm) state ppid ... starttime ...".
// comm is taken up to the last ')' since it may contain anything.
func parseStat(b []byte) (Task, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Task{}, fmt.Errorf("no (comm) in %q", b)
	}
	tid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Task{}, fmt.Errorf("tid: %w", err)
	}
	f := bytes.Fields(b[end+1:]) // f[0] is field 3, state
	if len(f) < 20 {
		return Task{}, fmt.Errorf("%d fields after comm, want at least 20", len(f))
	}
	t := Task{TID: tid, Comm: string(b[open+1 : end])}
	if t.PPID, err = strconv.Atoi(string(f[4-3])); err != nil {
		return Task{}, fmt.Errorf("ppid: %w", err)
	}
	if t.Start, err = strconv.ParseUint(string(f[22-3]), 10, 64); err != nil {
		return Task{}, fmt.Errorf("starttime: %w", err)
	}
	return t, nil
}

// parseStatus reads Tgid and the real and effective user and group IDs
// from /proc/<pid>/task/<tid>/status. Its Name line is escaped, so a name
// cannot fake a line.
func parseStatus(b []byte, t *Task) error {
	seen := 0
	for line := range bytes.Lines(b) {
		key, val, _ := bytes.Cut(line, []byte(":"))
		var err error
		switch string(key) {
		case "Tgid":
			t.TGID, err = strconv.Atoi(string(bytes.TrimSpace(val)))
		case "Uid":
			t.UID, t.EUID, err = realEffective(val)
		case "Gid":
			t.GID, t.EGID, err = realEffective(val)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if seen++; seen == 3 {
			return nil
		}
	}
	return errors.New("want Tgid, Uid and Gid lines")
}

// realEffective parses the first two of "real effective saved fs".
func realEffective(b []byte) (r, e uint32, err error) {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("%q: want 4 IDs", b)
	}
	rr, err := strconv.ParseUint(string(f[0]), 10, 32)
	if err != nil {
		return 0, 0, err
	}
	ee, err := strconv.ParseUint(string(f[1]), 10, 32)
	return uint32(rr), uint32(ee), err
}
