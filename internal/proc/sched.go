package proc

import "fmt"

// Schedstat is /proc/TID/schedstat: the time the task ran on a CPU and
// the time it waited, runnable, for one, in nanoseconds.
type Schedstat struct {
	Run, Wait int64
	Slices    uint64 // timeslices run
}

// ParseSchedstat parses "run wait slices\n" without allocating: the cpu
// enforcer reads it for every task at every tick.
func ParseSchedstat(b []byte) (Schedstat, error) {
	var v [3]uint64
	i := 0
	for k := range v {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		n, ok := atou(b[i:j])
		if !ok {
			if k == 2 { // slices: older formats may lack it
				break
			}
			return Schedstat{}, fmt.Errorf("schedstat %.40q: %w", b, ErrMalformed)
		}
		v[k] = n
		i = j
	}
	return Schedstat{Run: int64(v[0]), Wait: int64(v[1]), Slices: v[2]}, nil
}

// IO is /proc/TID/io: what the task read and wrote.
type IO struct {
	RChar, WChar          uint64 // bytes through read/write-like calls
	SyscR, SyscW          uint64 // the number of those calls
	ReadBytes, WriteBytes uint64 // bytes fetched from and sent to storage
	CancelledWriteBytes   uint64 // dirtied, then truncated before writeback
}

// ParseIO parses /proc/TID/io ("rchar: 123" lines). Lines it does not know
// are skipped; every one it knows must hold a number.
func ParseIO(b []byte) (IO, error) {
	var io IO
	for len(b) > 0 {
		line := b
		if i := indexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k := indexByte(line, ':')
		if k < 0 {
			continue
		}
		key, val := string(line[:k]), line[k+1:]
		for len(val) > 0 && val[0] == ' ' {
			val = val[1:]
		}
		var dst *uint64
		switch key {
		case "rchar":
			dst = &io.RChar
		case "wchar":
			dst = &io.WChar
		case "syscr":
			dst = &io.SyscR
		case "syscw":
			dst = &io.SyscW
		case "read_bytes":
			dst = &io.ReadBytes
		case "write_bytes":
			dst = &io.WriteBytes
		case "cancelled_write_bytes":
			dst = &io.CancelledWriteBytes
		default:
			continue
		}
		v, ok := atou(val)
		if !ok {
			return IO{}, fmt.Errorf("io: %s %q: %w", key, val, ErrMalformed)
		}
		*dst = v
	}
	return io, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
