package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Stat is what containerfs uses of /proc/TID/stat (proc(5) numbers the
// fields from 1; each field below names its number).
type Stat struct {
	TID         int    // 1
	Comm        string // 2, without the parentheses
	State       byte   // 3: R, S, D, T, t, Z, X, I, ...
	PPID        int    // 4
	Flags       uint64 // 9: PF_* flags
	MinFlt      uint64 // 10
	MajFlt      uint64 // 12
	UTime       uint64 // 14, clock ticks
	STime       uint64 // 15, clock ticks
	CUTime      uint64 // 16: reaped children's, clock ticks
	CSTime      uint64 // 17
	NumThreads  int    // 20
	Start       uint64 // 22: clock ticks since boot
	Processor   int    // 39: the CPU it last ran on
	RTPriority  int    // 40
	Policy      int    // 41: SCHED_OTHER 0, SCHED_FIFO 1, SCHED_RR 2, ...
	fieldsFound int
}

// The PF_* flags of field 9 that containerfs looks at (include/linux/sched.h).
const (
	PFKthread       = 0x00200000 // a kernel thread
	PFNoSetAffinity = 0x04000000 // userspace may not change its affinity
)

// Scheduling policies of field 41.
const (
	SchedOther = 0
	SchedFIFO  = 1
	SchedRR    = 2
)

// ErrMalformed is wrapped by every parse error of this package.
var ErrMalformed = errors.New("malformed /proc file")

// ID is the task's identity.
func (s Stat) ID() ID { return ID{TID: s.TID, Start: s.Start} }

// Zombie tells whether the task has exited (Z) or is being reaped (X):
// it runs no more code, and has left every cgroup.
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// Kernel tells whether it is a kernel thread.
func (s Stat) Kernel() bool { return s.Flags&PFKthread != 0 }

// RealTime tells whether it runs under SCHED_FIFO or SCHED_RR.
func (s Stat) RealTime() bool { return s.Policy == SchedFIFO || s.Policy == SchedRR }

// HasPolicy tells whether the line went as far as field 41 (every kernel
// since 2.6.22 prints it).
func (s Stat) HasPolicy() bool { return s.fieldsFound >= 41 }

// ParseStat parses one /proc/TID/stat line. The comm field may hold spaces
// and parentheses: it runs from the first '(' to the last ')', and the
// fields after it are counted from there. Fields 3 to 22 must be there;
// later ones are zero when missing.
func ParseStat(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return Stat{}, fmt.Errorf("stat %.40q: no (comm): %w", b, ErrMalformed)
	}
	var s Stat
	tid, ok := atou(bytes.TrimSpace(b[:open]))
	if !ok {
		return Stat{}, fmt.Errorf("stat %.40q: pid: %w", b, ErrMalformed)
	}
	s.TID = int(tid)
	s.Comm = string(b[open+1 : end])
	rest := b[end+1:]
	n := 2 // the number of the field last read
	for len(rest) > 0 && n < 41 {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		i := bytes.IndexAny(rest, " \n")
		if i < 0 {
			i = len(rest)
		}
		f := rest[:i]
		rest = rest[i:]
		if len(rest) > 0 && rest[0] == '\n' {
			rest = nil
		}
		if len(f) == 0 {
			break
		}
		n++
		if n == 3 {
			if len(f) != 1 {
				return Stat{}, fmt.Errorf("stat of %d: state %q: %w", s.TID, f, ErrMalformed)
			}
			s.State = f[0]
			continue
		}
		switch n {
		case 4, 9, 10, 12, 14, 15, 16, 17, 20, 22, 39, 40, 41:
		default:
			continue
		}
		v, ok := atou(f) // every field read here is non-negative
		if !ok {
			return Stat{}, fmt.Errorf("stat of %d: field %d %q: %w", s.TID, n, f, ErrMalformed)
		}
		switch n {
		case 4:
			s.PPID = int(v)
		case 9:
			s.Flags = v
		case 10:
			s.MinFlt = v
		case 12:
			s.MajFlt = v
		case 14:
			s.UTime = v
		case 15:
			s.STime = v
		case 16:
			s.CUTime = v
		case 17:
			s.CSTime = v
		case 20:
			s.NumThreads = int(v)
		case 22:
			s.Start = v
		case 39:
			s.Processor = int(v)
		case 40:
			s.RTPriority = int(v)
		case 41:
			s.Policy = int(v)
		}
	}
	if n < 22 {
		return Stat{}, fmt.Errorf("stat of %d: %d fields, want at least 22: %w", s.TID, n, ErrMalformed)
	}
	s.fieldsFound = n
	return s, nil
}

// StateOf is field 3 alone, without parsing the rest: the cheapest look at
// whether a task is running (R), for loops that ask it of many tasks at
// every tick. ok is false when b is no stat line.
func StateOf(b []byte) (state byte, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) || b[i+1] != ' ' {
		return 0, false
	}
	return b[i+2], true
}

// atou parses decimal digits, without allocating.
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// Atoi is strconv.Atoi for the non-negative decimal numbers of /proc
// directory names, without allocating.
func Atoi(s string) (int, bool) {
	if len(s) == 0 || len(s) > 10 || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	return v, err == nil
}
