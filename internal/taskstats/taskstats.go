package taskstats

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Stats is one task's (or thread group's) accounting record, with the
// fields containerfs uses taken out of the raw struct.
type Stats struct {
	Version int // TASKSTATS_VERSION of the kernel that sent it
	// PID is ac_pid (the TID); TGID is ac_tgid, zero from kernels before
	// version 13; PPID is ac_ppid.
	PID, TGID, PPID int
	Comm            string
	ExitCode        uint32
	// BeginTime is when the task started, in seconds since the epoch
	// (ac_btime64, or ac_btime from older kernels). ElapsedUS is ac_etime.
	BeginTime uint64
	ElapsedUS uint64
	// UserUS and SysUS are ac_utime and ac_stime: the task's user and
	// system time as the scheduler tick sampled it (unscaled, unlike
	// /proc/PID/stat), in microseconds.
	UserUS, SysUS uint64
	// RunRealNS is cpu_run_real_total, which is UserUS+SysUS in
	// nanoseconds. RunVirtualNS is cpu_run_virtual_total, the exact time
	// on CPU (se.sum_exec_runtime), but the kernel fills it only while
	// delay accounting is on (kernel.task_delayacct); otherwise it is 0.
	RunRealNS, RunVirtualNS uint64

	// Raw holds every field the kernel sent; those it did not send are 0.
	Raw unix.Taskstats
	// Len is how many bytes of the struct the kernel sent.
	Len int
}

// Record is one accounting record of a taskstats message.
type Record struct {
	// Group is true for a thread-group aggregate (TASKSTATS_TYPE_AGGR_TGID),
	// which the kernel adds to the exit record of the last thread of a
	// group that had several, and which a TGID query returns. An exit's
	// aggregate carries the summed times and delays only: its identity
	// fields (PID, TGID, Comm, BeginTime) are zero.
	Group bool
	// ID is the TID (or, for Group, the TGID) the record is about.
	ID    int
	Stats Stats
}

// ErrMalformed is wrapped by errors about messages that do not parse.
var ErrMalformed = errors.New("taskstats: malformed message")

// ParseRecords decodes the attributes of one TASKSTATS_CMD_NEW message (the
// payload after the generic netlink header): one or two nested records.
func ParseRecords(attrs []byte) ([]Record, error) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var recs []Record
	for ad.Next() {
		var r Record
		switch ad.Type() {
		case unix.TASKSTATS_TYPE_AGGR_PID:
		case unix.TASKSTATS_TYPE_AGGR_TGID:
			r.Group = true
		default:
			continue // TASKSTATS_TYPE_NULL padding, or something newer
		}
		var haveStats bool
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case unix.TASKSTATS_TYPE_PID, unix.TASKSTATS_TYPE_TGID:
					r.ID = int(nad.Uint32())
				case unix.TASKSTATS_TYPE_STATS:
					r.Stats = DecodeStats(nad.Bytes())
					haveStats = true
				}
			}
			return nil
		})
		if !haveStats {
			return nil, fmt.Errorf("%w: record without stats", ErrMalformed)
		}
		recs = append(recs, r)
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return recs, nil
}

// DecodeStats decodes a struct taskstats as the kernel sent it, in host byte
// order, however long it is: what was sent is copied over a zeroed
// unix.Taskstats and the rest stays zero.
func DecodeStats(b []byte) Stats {
	var s Stats
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&s.Raw)), unsafe.Sizeof(s.Raw))
	s.Len = copy(raw, b)
	t := &s.Raw
	s.Version = int(t.Version)
	s.PID, s.TGID, s.PPID = int(t.Ac_pid), int(t.Ac_tgid), int(t.Ac_ppid)
	s.ExitCode = t.Ac_exitcode
	comm := make([]byte, 0, len(t.Ac_comm))
	for _, c := range t.Ac_comm {
		if c == 0 {
			break
		}
		comm = append(comm, byte(c))
	}
	s.Comm = string(comm)
	s.BeginTime = t.Ac_btime64
	if s.BeginTime == 0 {
		s.BeginTime = uint64(t.Ac_btime)
	}
	s.ElapsedUS = t.Ac_etime
	s.UserUS, s.SysUS = t.Ac_utime, t.Ac_stime
	s.RunRealNS, s.RunVirtualNS = t.Cpu_run_real_total, t.Cpu_run_virtual_total
	return s
}
