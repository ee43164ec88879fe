package cpuacct

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
	"golang.org/x/sys/unix"
)

// Sampling one task from /proc, through internal/proc.

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
// processor), parsed by internal/proc. It keeps both files open and
// preads them (proc.ReadAt): that costs about 5 µs a file here, against
// 15-20 µs for open+read+close, and an open file stays bound to its task,
// so a TID reused by a newer task cannot be mistaken for it (reads of a
// reaped task fail with ESRCH). Past the fd budget, it opens the files by
// path at each read and checks the start time.
type procSource struct {
	tid         int
	start       uint64
	sched, stat int // open files; -1 in path mode
	root        string
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

func openRO(path string) (int, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// openProc opens task tid's files under root and checks that the task is
// the one recorded as started at start (ticks since boot), which may be a
// fork event's time: proc.SameStart.
func openProc(root string, tid int, start uint64) (source, error) {
	p := &procSource{tid: tid, start: start, sched: -1, stat: -1, root: root}
	if fdsKept.Add(2) <= fdBudget {
		var err error
		if p.sched, err = openRO(proc.Path(root, tid, "schedstat")); err == nil {
			if p.stat, err = openRO(proc.Path(root, tid, "stat")); err != nil {
				unix.Close(p.sched)
			}
		}
		if err != nil {
			p.sched, p.stat = -1, -1
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
	var buf [proc.StatBufSize]byte
	st, err := p.readStat(buf[:])
	if err != nil {
		p.close()
		return nil, err
	}
	if !proc.SameStart(start, st.Start) {
		p.close()
		return nil, fmt.Errorf("task %d: started at %d, not %d: %w", tid, st.Start, start, syscall.ESRCH)
	}
	return p, nil
}

func (p *procSource) close() {
	if p.sched >= 0 {
		unix.Close(p.sched)
		unix.Close(p.stat)
		p.sched, p.stat = -1, -1
		fdsKept.Add(-2)
	}
}

func (p *procSource) read(lastRun uint64) (sample, error) {
	var buf [proc.StatBufSize]byte
	if p.sched < 0 {
		// Path mode: stat first, to check that the TID is still ours.
		st, err := p.readStat(buf[:])
		if err != nil {
			return sample{}, err
		}
		if !proc.SameStart(p.start, st.Start) {
			return sample{}, fmt.Errorf("task %d: TID reused: %w", p.tid, syscall.ESRCH)
		}
		run, err := p.readSched(buf[:])
		if err != nil {
			return sample{}, err
		}
		return statSample(st, run), nil
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
	return statSample(st, run), nil
}

// statSample makes a sample of run with what stat tells: the user/system
// split (fields 14 and 15), the CPU (39), the parent (4) and the reaped
// children's time (16 and 17).
func statSample(st proc.Stat, run uint64) sample {
	s := splitRun(run, st.UTime, st.STime)
	s.cpu, s.ppid = st.Processor, st.PPID
	s.kids = (st.CUTime + st.CSTime) * nsPerTick
	s.hasStat = true
	return s
}

// readSched is the first field of /proc/TID/schedstat: the task's time on
// CPU in ns.
func (p *procSource) readSched(buf []byte) (uint64, error) {
	b, err := p.readFile(p.sched, "schedstat", buf)
	if err != nil {
		return 0, err
	}
	ss, err := proc.ParseSchedstat(b)
	if err != nil {
		return 0, err
	}
	return uint64(ss.Run), nil
}

func (p *procSource) readStat(buf []byte) (proc.Stat, error) {
	b, err := p.readFile(p.stat, "stat", buf)
	if err != nil {
		return proc.Stat{}, err
	}
	return proc.ParseStat(b)
}

// readFile preads open file fd afresh, or, in path mode (fd < 0), reads
// the task's file by path.
func (p *procSource) readFile(fd int, name string, buf []byte) ([]byte, error) {
	if fd < 0 {
		return proc.ReadSmall(proc.Path(p.root, p.tid, name), buf)
	}
	return proc.ReadAt(fd, buf)
}
