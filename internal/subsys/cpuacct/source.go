package cpuacct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// userHZ is USER_HZ, the unit of /proc/PID/stat times and of cpuacct.stat;
// 100 on every architecture containerfs runs on.
const userHZ = 100

const nsPerTick = 1e9 / userHZ

// source samples one task.
type source interface {
	// read samples the task. /proc/TID/stat, which gives the user/system
	// split and the CPU, is read only when the run time differs from
	// lastRun: a task that has not run since has nothing to charge.
	read(lastRun uint64) (sample, error)
	close()
}

// procSource reads /proc/TID/schedstat (the first field is the task's
// se.sum_exec_runtime in ns) and /proc/TID/stat (utime, stime and
// processor). It keeps both files open and preads them: that costs about
// 5 µs a file here, against 15-20 µs for open+read+close, and an open file
// stays bound to its task, so a TID reused by a newer task cannot be
// mistaken for it (reads of a reaped task fail with ESRCH). Past the fd
// budget, it opens the files by path at each read and checks the start time.
type procSource struct {
	tid   int
	start uint64
	sched *os.File // nil in path mode
	stat  *os.File
	dir   string
}

// fdBudget is how many /proc files all sources may keep open; the daemon
// needs the rest of its RLIMIT_NOFILE for FUSE and sockets.
var (
	fdBudget = initFDBudget()
	fdsKept  atomic.Int64
)

func initFDBudget() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 1024 {
		return 256
	}
	// Go raises the soft limit to the hard one at start-up.
	return int64(min(rl.Cur, rl.Max, 1<<20) / 4)
}

// openProc opens task tid's files under proc and checks that the task is
// the one that started at start (ticks since boot).
func openProc(root string, tid int, start uint64) (source, error) {
	p := &procSource{tid: tid, start: start, dir: root + "/" + strconv.Itoa(tid)}
	if fdsKept.Add(2) <= fdBudget {
		var err error
		if p.sched, err = os.Open(p.dir + "/schedstat"); err == nil {
			if p.stat, err = os.Open(p.dir + "/stat"); err != nil {
				p.sched.Close()
			}
		}
		if err != nil {
			p.sched, p.stat = nil, nil
			fdsKept.Add(-2)
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
				return nil, err
			}
			// Out of descriptors: read by path.
		}
	} else {
		fdsKept.Add(-2)
	}
	// Check the start time: the TID may already belong to a newer task.
	var buf [2048]byte
	st, err := p.readStat(buf[:])
	if err != nil {
		p.close()
		return nil, err
	}
	if !proc.SameStart(start, st.start) {
		p.close()
		return nil, fmt.Errorf("task %d: started at %d, not %d: %w", tid, st.start, start, syscall.ESRCH)
	}
	return p, nil
}

func (p *procSource) close() {
	if p.sched != nil {
		p.sched.Close()
		p.stat.Close()
		p.sched, p.stat = nil, nil
		fdsKept.Add(-2)
	}
}

func (p *procSource) read(lastRun uint64) (sample, error) {
	var buf [2048]byte
	if p.sched == nil {
		// Path mode: stat first, to check that the TID is still ours.
		st, err := p.readStat(buf[:])
		if err != nil {
			return sample{}, err
		}
		if !proc.SameStart(p.start, st.start) {
			return sample{}, fmt.Errorf("task %d: TID reused: %w", p.tid, syscall.ESRCH)
		}
		run, err := p.readSched(buf[:])
		if err != nil {
			return sample{}, err
		}
		return st.sample(run), nil
	}
	run, err := p.readSched(buf[:])
	if err != nil {
		return sample{}, err
	}
	if run == lastRun {
		return sample{run: run, cpu: -1}, nil
	}
	st, err := p.readStat(buf[:])
	if err != nil {
		// Exited between the two reads: charge the run time unsplit.
		return sample{run: run, cpu: -1}, nil
	}
	return st.sample(run), nil
}

// sample makes a sample of run with what stat tells.
func (st statFields) sample(run uint64) sample {
	s := splitRun(run, st.utime, st.stime)
	s.cpu, s.ppid = st.cpu, st.ppid
	s.kids = (st.cutime + st.cstime) * nsPerTick
	s.hasStat = true
	return s
}

func (p *procSource) readSched(buf []byte) (uint64, error) {
	b, err := readAt(p.sched, p.dir+"/schedstat", buf)
	if err != nil {
		return 0, err
	}
	return parseSchedstat(b)
}

func (p *procSource) readStat(buf []byte) (statFields, error) {
	b, err := readAt(p.stat, p.dir+"/stat", buf)
	if err != nil {
		return statFields{}, err
	}
	return parseStat(b)
}

// readAt preads f from offset 0, or, without f, reads the file at path.
func readAt(f *os.File, path string, buf []byte) ([]byte, error) {
	if f == nil {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer syscall.Close(fd)
		n, err := syscall.Read(fd, buf)
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	n, err := f.ReadAt(buf, 0)
	if n > 0 {
		return buf[:n], nil // with io.EOF: the file is shorter than buf
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// parseSchedstat takes the first field of /proc/TID/schedstat: the task's
// time on CPU in ns.
func parseSchedstat(b []byte) (uint64, error) {
	f, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte(" "))
	v, err := strconv.ParseUint(string(f), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat %q: %w", b, err)
	}
	return v, nil
}

// statFields are the fields of /proc/TID/stat the accounting needs.
type statFields struct {
	ppid           int    // field 4
	utime, stime   uint64 // fields 14 and 15, in ticks
	cutime, cstime uint64 // fields 16 and 17: reaped children's, in ticks
	start          uint64 // field 22, ticks since boot
	cpu            int    // field 39, the CPU the task last ran on
}

// parseStat parses /proc/TID/stat. The comm field may hold spaces and
// parentheses: fields are counted from the last ')'.
func parseStat(b []byte) (statFields, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return statFields{}, fmt.Errorf("stat %q: no comm", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3; field n is f[n-3].
	if len(f) < 39-2 {
		return statFields{}, fmt.Errorf("stat: %d fields, want at least 39", len(f)+2)
	}
	var st statFields
	var err error
	num := func(n int) uint64 {
		v, e := strconv.ParseUint(f[n-3], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("stat field %d %q: %w", n, f[n-3], e)
		}
		return v
	}
	st.ppid = int(num(4))
	st.utime, st.stime, st.start = num(14), num(15), num(22)
	st.cutime, st.cstime = num(16), num(17)
	st.cpu = int(num(39))
	return st, err
}
