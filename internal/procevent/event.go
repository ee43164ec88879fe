// Events and their decoding from the connector's netlink messages, with
// no I/O.

package procevent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// What is the kind of a process event: enum proc_cn_event in
// include/uapi/linux/cn_proc.h. The values are bits so that a set of kinds
// can be written as a mask.
type What uint32

// The kernel's event kinds.
const (
	None   What = 0x00000000 // an ack to a request sent to the connector
	Fork   What = 0x00000001
	Exec   What = 0x00000002
	UID    What = 0x00000004
	GID    What = 0x00000040
	SID    What = 0x00000080
	Ptrace What = 0x00000100
	Comm   What = 0x00000200
	// NonzeroExit is a filter bit a listener may ask for; the kernel never
	// sends it as an event's kind.
	NonzeroExit What = 0x20000000
	Coredump    What = 0x40000000
	Exit        What = 0x80000000
)

var whatNames = map[What]string{
	None: "none", Fork: "fork", Exec: "exec", UID: "uid", GID: "gid", SID: "sid",
	Ptrace: "ptrace", Comm: "comm", NonzeroExit: "nonzero-exit", Coredump: "coredump", Exit: "exit",
}

func (w What) String() string {
	if s, ok := whatNames[w]; ok {
		return s
	}
	return fmt.Sprintf("What(%#x)", uint32(w))
}

// dataLen is how many bytes of proc_event.event_data each kind we decode
// needs; kinds missing here are skipped by Parse.
var dataLen = map[What]int{
	None: 4, Fork: 16, Exec: 8, UID: 16, GID: 16, SID: 8, Ptrace: 16, Comm: 24, Coredump: 16, Exit: 24,
}

// decoded reports whether w is an event kind Parse returns.
func (w What) decoded() bool {
	_, ok := dataLen[w]
	return ok && w != None
}

// Event is one decoded proc_event. PIDs are those of the initial PID
// namespace, named as userspace names them: PID is the thread ID (the
// kernel's task->pid) and TGID the process ID (task->tgid).
type Event struct {
	What      What
	CPU       uint32 // the CPU that sent the event
	Seq       uint32 // cn_msg seq: a per-CPU counter, shared by all listeners
	Timestamp uint64 // ns since boot (CLOCK_MONOTONIC), taken when the event was built

	// PID and TGID are the subject. For Fork they are the child: a new thread
	// when PID != TGID, a new process otherwise.
	PID, TGID int
	// ParentPID and ParentTGID are, for Fork, the child's real parent. For a
	// new process that is the thread that forked it; for a new thread it is
	// the parent of the whole process, not the thread that called clone (the
	// kernel sets real_parent so for CLONE_THREAD). For Exit and Coredump they
	// are the parent at the time of the event, and 0 when the parent had
	// already reaped the task. For Ptrace they are the tracer (0 on detach).
	ParentPID, ParentTGID int
	// UID and EUID (UID events) or GID and EGID (GID events) are the new
	// real and effective IDs, as seen from the initial user namespace.
	UID, EUID, GID, EGID uint32
	Comm                 string // Comm: the new name, at most 15 bytes
	// ExitCode is the wait status (exit(3) reads 0x300; death by SIGKILL
	// reads 9). ExitSignal is the signal the parent gets, or 0xffffffff for
	// a thread other than the leader.
	ExitCode, ExitSignal uint32
}

// Message is one connector message from CN_IDX_PROC as ParseMessages
// returns it: every message, including acks and kinds this package does not
// decode, since each one uses up a per-CPU sequence number.
type Message struct {
	Event         // What None for an ack; unknown kinds carry What, CPU, Seq and Timestamp only
	Ack    uint32 // cn_msg ack: in an ack message, the request's ack plus one
	AckErr uint32 // ack: 0, or the errno the request failed with
}

// Sizes and IDs from include/uapi/linux/netlink.h, connector.h and cn_proc.h.
const (
	nlmsgHdrLen     = unix.NLMSG_HDRLEN // struct nlmsghdr
	cnMsgLen        = 20                // struct cn_msg: cb_id{idx, val}, seq, ack, len, flags
	procEventHdrLen = 16                // what, cpu, timestamp_ns (aligned to 8)
	cnIdxProc       = 1                 // CN_IDX_PROC: also the multicast group
	cnValProc       = 1                 // CN_VAL_PROC
	mcastListen     = 1                 // PROC_CN_MCAST_LISTEN
	mcastIgnore     = 2                 // PROC_CN_MCAST_IGNORE
)

var ne = binary.NativeEndian // the connector speaks host byte order

func align4(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// Parse decodes the events in b, the bytes of one or more netlink messages
// as read from a NETLINK_CONNECTOR socket (nlmsghdr, cn_msg, proc_event).
// Acks, messages of other connector users and kinds it does not know are
// skipped. It returns the events decoded before any malformed message along
// with the error.
func Parse(b []byte) ([]Event, error) {
	msgs, err := ParseMessages(b)
	evs := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		if m.What.decoded() {
			evs = append(evs, m.Event)
		}
	}
	return evs, err
}

// ParseMessages is Parse without the filtering: it returns every message
// addressed to the process events connector, in order.
func ParseMessages(b []byte) ([]Message, error) {
	var msgs []Message
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return msgs, fmt.Errorf("procevent: %d trailing bytes, short of a netlink header", len(b))
		}
		n := int(ne.Uint32(b))
		if n < nlmsgHdrLen || n > len(b) {
			return msgs, fmt.Errorf("procevent: netlink message length %d with %d bytes left", n, len(b))
		}
		typ, payload := ne.Uint16(b[4:]), b[nlmsgHdrLen:n]
		b = b[min(align4(n), len(b)):]
		switch typ {
		case unix.NLMSG_NOOP, unix.NLMSG_OVERRUN:
			continue
		case unix.NLMSG_ERROR:
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e != 0 {
					return msgs, fmt.Errorf("procevent: netlink error: %w", syscall.Errno(-e))
				}
			}
			continue
		}
		if len(payload) >= 8 && (ne.Uint32(payload) != cnIdxProc || ne.Uint32(payload[4:]) != cnValProc) {
			continue // another connector user's message
		}
		m, err := ParseCnMsg(payload)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// ParseCnMsg decodes one struct cn_msg carrying a struct proc_event, that
// is, the payload of one netlink message from CN_IDX_PROC.
func ParseCnMsg(b []byte) (Message, error) {
	if len(b) < cnMsgLen {
		return Message{}, fmt.Errorf("procevent: cn_msg of %d bytes, want at least %d", len(b), cnMsgLen)
	}
	if idx, val := ne.Uint32(b), ne.Uint32(b[4:]); idx != cnIdxProc || val != cnValProc {
		return Message{}, fmt.Errorf("procevent: cn_msg for connector %d.%d, want %d.%d", idx, val, cnIdxProc, cnValProc)
	}
	seq, ack, n := ne.Uint32(b[8:]), ne.Uint32(b[12:]), int(ne.Uint16(b[16:]))
	b = b[cnMsgLen:]
	if n > len(b) || n < procEventHdrLen {
		return Message{}, fmt.Errorf("procevent: cn_msg data length %d with %d bytes present (proc_event header is %d)", n, len(b), procEventHdrLen)
	}
	b = b[:n]
	m := Message{Event: Event{
		What:      What(ne.Uint32(b)),
		CPU:       ne.Uint32(b[4:]),
		Seq:       seq,
		Timestamp: ne.Uint64(b[8:]),
	}, Ack: ack}
	d := b[procEventHdrLen:]
	need, ok := dataLen[m.What]
	if !ok {
		return m, nil
	}
	if len(d) < need {
		return Message{}, fmt.Errorf("procevent: %v event with %d data bytes, want %d", m.What, len(d), need)
	}
	pid := func(off int) int { return int(int32(ne.Uint32(d[off:]))) }
	e := &m.Event
	switch m.What {
	case None:
		m.AckErr = ne.Uint32(d)
	case Fork:
		e.ParentPID, e.ParentTGID, e.PID, e.TGID = pid(0), pid(4), pid(8), pid(12)
	case Exec, SID:
		e.PID, e.TGID = pid(0), pid(4)
	case UID:
		e.PID, e.TGID, e.UID, e.EUID = pid(0), pid(4), ne.Uint32(d[8:]), ne.Uint32(d[12:])
	case GID:
		e.PID, e.TGID, e.GID, e.EGID = pid(0), pid(4), ne.Uint32(d[8:]), ne.Uint32(d[12:])
	case Ptrace, Coredump:
		e.PID, e.TGID, e.ParentPID, e.ParentTGID = pid(0), pid(4), pid(8), pid(12)
	case Comm:
		c := d[8:24]
		if i := bytes.IndexByte(c, 0); i >= 0 {
			c = c[:i]
		}
		e.PID, e.TGID, e.Comm = pid(0), pid(4), string(c)
	case Exit:
		e.PID, e.TGID, e.ExitCode, e.ExitSignal = pid(0), pid(4), ne.Uint32(d[8:]), ne.Uint32(d[12:])
		e.ParentPID, e.ParentTGID = pid(16), pid(20)
	}
	return m, nil
}
