// The proc connector: Conn, which listens for events and detects their
// loss, over a netlink socket or a replay of recorded messages.

package procevent

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrLost is wrapped by the error Receive returns when events were lost:
// the kernel dropped messages because the receive buffer was full
// (ENOBUFS), or a per-CPU sequence number skipped. Whoever keeps state
// built from events must rebuild it (Scan) before trusting it again. The
// source keeps working after ErrLost.
var ErrLost = errors.New("procevent: events lost")

// Options configure Listen and NewPoller. The zero value is usable.
type Options struct {
	// RcvBuf is the receive buffer of the connector socket in bytes, set
	// with SO_RCVBUFFORCE (default 8 MiB). The kernel's default holds about
	// 256 events, which a busy machine fills while the reader is descheduled.
	RcvBuf int
	// ProcRoot is where procfs is mounted, for NewPoller (default /proc).
	ProcRoot string
	// Interval is the time between the Poller's scans (default 100 ms).
	Interval time.Duration
}

const (
	defaultRcvBuf = 8 << 20
	ackTimeout    = 2 * time.Second
	maxDatagram   = 1 << 15 // above CONNECTOR_MAX_MSG_SIZE (16384) plus headers
	batchBuf      = 1 << 18 // about 3400 events per Receive at most, except when draining an overrun
	maxDrain      = 64 << 20
)

// socket is what a Conn reads from: the kernel or, in tests, a replay.
type socket interface {
	// recv reads one datagram into b, which has room for any datagram. If
	// block is false and nothing is queued, it returns EAGAIN.
	recv(b []byte, block bool) (int, error)
	send(b []byte) error
	setDeadline(t time.Time) error
	close() error
}

// Conn receives process events from the kernel's proc connector.
type Conn struct {
	sock      socket
	nonce     uint32 // cn_msg ack of our requests; the kernel's ack carries nonce+1
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex            // serializes Receive; guards the fields below
	buf    []byte                // datagrams of one read, each padded to 4 bytes
	queue  []item                // decoded, not yet returned
	cpus   map[uint32]cpuState   // per CPU: the last sequence number seen
	epoch  uint32                // overruns reported so far
	acked  bool                  // the kernel acked our PROC_CN_MCAST_LISTEN
	ackErr uint32                // and the errno it acked with
	tap    func(datagram []byte) // tests: sees each datagram as received
}

// item is one result of Receive: events, or a loss to report between them.
type item struct {
	events []Event
	err    error
}

type cpuState struct{ seq, epoch uint32 }

func newConn(s socket, nonce uint32) *Conn {
	return &Conn{sock: s, nonce: nonce, buf: make([]byte, 0, batchBuf), cpus: map[uint32]cpuState{}}
}

// Listen subscribes to process events: it opens a NETLINK_CONNECTOR
// socket, joins the CN_IDX_PROC group, sets the receive buffer with
// SO_RCVBUFFORCE and sends PROC_CN_MCAST_LISTEN. It needs CAP_NET_ADMIN
// and the initial PID and user namespaces; outside them the kernel ignores
// the request silently, so Listen waits for the kernel's ack and fails when
// none comes within two seconds.
func Listen(opts Options) (*Conn, error) {
	if opts.RcvBuf <= 0 {
		opts.RcvBuf = defaultRcvBuf
	}
	s, port, err := dialConnector(opts.RcvBuf)
	if err != nil {
		return nil, err
	}
	c := newConn(s, port)
	if err := c.request(mcastListen); err != nil {
		s.close()
		return nil, fmt.Errorf("procevent: send PROC_CN_MCAST_LISTEN: %w", err)
	}
	if err := s.setDeadline(time.Now().Add(ackTimeout)); err != nil {
		c.Close()
		return nil, fmt.Errorf("procevent: set read deadline: %w", err)
	}
	c.mu.Lock()
	for !c.acked && err == nil {
		err = c.fill() // events that arrive before the ack are kept
	}
	c.mu.Unlock()
	switch {
	case err != nil:
		err = fmt.Errorf("procevent: no ack to PROC_CN_MCAST_LISTEN (outside the initial PID or user namespace?): %w", err)
	case c.ackErr != 0:
		err = fmt.Errorf("procevent: PROC_CN_MCAST_LISTEN: %w", syscall.Errno(c.ackErr))
	default:
		err = s.setDeadline(time.Time{})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Receive blocks until events arrive and returns them in the order the
// kernel sent them per CPU (events from different CPUs may interleave out
// of timestamp order). Where events went missing it returns an error
// wrapping ErrLost and no events, and the next call carries on. A sequence
// gap is reported where it falls in the stream; an overrun (the error also
// wraps ENOBUFS) is reported as soon as the kernel says so, which is ahead
// of the events the buffer still held from before the loss. After Close
// Receive returns an error wrapping os.ErrClosed.
func (c *Conn) Receive() ([]Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) == 0 {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	it := c.queue[0]
	c.queue[0] = item{}
	c.queue = c.queue[1:]
	return it.events, it.err
}

// Close sends PROC_CN_MCAST_IGNORE, so that the kernel stops building
// events once nobody listens, and closes the socket, which makes a
// concurrent Receive return.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		err := c.request(mcastIgnore)
		if err != nil {
			err = fmt.Errorf("procevent: send PROC_CN_MCAST_IGNORE: %w", err)
		}
		c.closeErr = errors.Join(err, c.sock.close())
	})
	return c.closeErr
}

// request sends op (PROC_CN_MCAST_LISTEN or IGNORE) to the proc connector.
func (c *Conn) request(op uint32) error {
	b := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[12:], c.nonce) // nlmsg_pid: our port
	cn := b[nlmsgHdrLen:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[12:], c.nonce)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[cnMsgLen:], op)
	return c.sock.send(b)
}

// fill blocks until the socket has something, reads everything queued
// (up to the batch buffer) and appends the results to c.queue. After an
// overrun it reads until the socket is empty, however much that takes:
// the kernel clears its congestion flag only then, so until then further
// drops would go unreported. Called with c.mu held.
func (c *Conn) fill() error {
	b := c.buf[:0]
	overrun, block := false, true
	for {
		if cap(b)-len(b) < maxDatagram {
			if !overrun || cap(b) >= maxDrain {
				break
			}
			b = slices.Grow(b, cap(b))
		}
		n, err := c.sock.recv(b[len(b):cap(b)], block)
		block = false
		if err == nil {
			if c.tap != nil {
				c.tap(b[len(b) : len(b)+n])
			}
			b = b[:len(b)+align4(n)]
			continue
		}
		if errors.Is(err, unix.ENOBUFS) {
			overrun = true
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if len(b) == 0 && !overrun {
			return err
		}
		break // deliver what was read; the error comes back on the next read
	}
	c.buf = b[:0]
	if cap(b) > batchBuf {
		c.buf = make([]byte, 0, batchBuf) // a drain's buffer is not kept
	}
	c.ingest(b, overrun)
	return nil
}

// ingest decodes the datagrams of one read and queues the events, with
// loss reports where they belong.
//
// Each CPU numbers its messages; a number skipped is a message lost. A gap
// is not reported again if an overrun was reported after the message
// before it: drops up to the end of that overrun's drain are covered by
// that report, and drops after it raise a new ENOBUFS, which the kernel
// returns before the next queued message. What no ENOBUFS covers (the
// kernel failing to allocate a message, for instance) shows only as a gap.
func (c *Conn) ingest(b []byte, overrun bool) {
	msgs, perr := ParseMessages(b)
	var (
		evs     []Event
		gaps    []string
		missing uint64
		split   = -1
	)
	for _, m := range msgs {
		if m.What == None && m.Ack == c.nonce+1 {
			c.acked, c.ackErr = true, m.AckErr
		}
		n, covered := c.gap(m.CPU, m.Seq)
		missing += uint64(n)
		if n > 0 && !covered && !overrun {
			gaps = append(gaps, fmt.Sprintf("%d before seq %d on cpu %d", n, m.Seq, m.CPU))
			if split < 0 {
				split = len(evs)
			}
		}
		if m.What.decoded() {
			evs = append(evs, m.Event)
		}
	}
	switch {
	case overrun:
		c.epoch++
		c.push(nil, fmt.Errorf("%w: receive buffer overrun (%w), %d messages known missing", ErrLost, unix.ENOBUFS, missing))
		c.push(evs, nil)
	case split >= 0:
		c.push(evs[:split:split], nil) // appending to it must not touch the rest
		c.push(nil, fmt.Errorf("%w: %s", ErrLost, strings.Join(gaps, ", ")))
		c.push(evs[split:], nil)
	default:
		c.push(evs, nil)
	}
	if perr != nil {
		c.push(nil, fmt.Errorf("%w: %w", ErrLost, perr))
	}
}

// gap records seq as the last sequence number of cpu and returns how many
// numbers it skipped, and whether an overrun reported since the previous
// message covers them.
func (c *Conn) gap(cpu, seq uint32) (missing uint32, covered bool) {
	last, ok := c.cpus[cpu]
	c.cpus[cpu] = cpuState{seq: seq, epoch: c.epoch}
	missing = seq - last.seq - 1
	if !ok || missing > math.MaxInt32 { // first message, or not after the last: nothing to compare
		return 0, false
	}
	return missing, last.epoch != c.epoch
}

func (c *Conn) push(evs []Event, err error) {
	if len(evs) > 0 || err != nil {
		c.queue = append(c.queue, item{evs, err})
	}
}

// nlSocket is a NETLINK_CONNECTOR socket. It is non-blocking and
// registered with the runtime's poller through os.File, so a blocked recv
// parks a goroutine, not a thread, and Close wakes it.
//
// It reads with recvmmsg, up to mmsgSlots datagrams a syscall, and hands
// them out one per recv. When a read returned fewer than it asked for,
// the queue was empty: the non-blocking recv that follows the batch says
// EAGAIN without asking the kernel. In a fork storm most wake-ups find one
// event, so this saves one syscall of three per wake-up (syscalls are
// dear in this kind of VM; see bench/README.md).
type nlSocket struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool

	// The batch of the last recvmmsg. Used by the reader only (Conn.mu
	// serialises recv).
	batch     []byte // mmsgSlots slots of mmsgSlot bytes
	hdrs      [mmsgSlots]mmsghdr
	iovs      [mmsgSlots]unix.Iovec
	names     [mmsgSlots]unix.RawSockaddrNetlink
	got, next int  // datagrams in the batch; the next to hand out
	drained   bool // the batch was short: the queue was empty when read
}

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

const (
	mmsgSlots = 64
	// mmsgSlot is the room for one datagram. A proc connector message is
	// 76 bytes (nlmsghdr, cn_msg, proc_event); a longer one is reported
	// as truncated.
	mmsgSlot = 1024
)

func dialConnector(rcvbuf int) (*nlSocket, uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, 0, fmt.Errorf("procevent: socket(AF_NETLINK, NETLINK_CONNECTOR): %w", err)
	}
	fail := func(op string, err error) (*nlSocket, uint32, error) {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("procevent: %s: %w", op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		return fail(fmt.Sprintf("SO_RCVBUFFORCE %d", rcvbuf), err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (cnIdxProc - 1)}); err != nil {
		return fail("bind to group CN_IDX_PROC", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	f := os.NewFile(uintptr(fd), "netlink-connector")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("procevent: %w", err)
	}
	s := &nlSocket{f: f, rc: rc, batch: make([]byte, mmsgSlots*mmsgSlot)}
	for i := range s.hdrs {
		s.iovs[i].Base = &s.batch[i*mmsgSlot]
		s.iovs[i].SetLen(mmsgSlot)
		h := &s.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
	}
	return s, sa.(*unix.SockaddrNetlink).Pid, nil
}

// recv hands out the next datagram of the batch, reading a new batch when
// this one is used up.
func (s *nlSocket) recv(b []byte, block bool) (int, error) {
	for {
		if s.next < s.got {
			i := s.next
			s.next++
			if s.names[i].Pid != 0 {
				continue // not from the kernel
			}
			n := int(s.hdrs[i].len)
			if n > mmsgSlot || n > len(b) {
				return 0, fmt.Errorf("procevent: datagram of %d bytes truncated to %d", n, min(mmsgSlot, len(b)))
			}
			return copy(b, s.batch[i*mmsgSlot:i*mmsgSlot+n]), nil
		}
		if !block && s.drained {
			s.drained = false // the next recv asks the kernel
			return 0, unix.EAGAIN
		}
		if err := s.read(block); err != nil {
			return 0, err
		}
	}
}

// read fills the batch with one recvmmsg. If block is set and nothing is
// queued, it waits on the runtime's poller first.
func (s *nlSocket) read(block bool) (err error) {
	s.got, s.next, s.drained = 0, 0, false // an error (ENOBUFS) says nothing of the queue
	rerr := s.rc.Read(func(fd uintptr) bool {
		for i := range s.hdrs {
			s.hdrs[i].hdr.Namelen = unix.SizeofSockaddrNetlink
			s.hdrs[i].hdr.Flags = 0
		}
		for {
			// MSG_DONTWAIT never blocks, so RawSyscall: the runtime's
			// entersyscall would wake its sysmon thread for every read
			// (see Now).
			r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), mmsgSlots,
				unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN && block:
				return false // wait for the poller
			case e != 0:
				err = e
			default:
				s.got, s.next, s.drained = int(r), 0, int(r) < mmsgSlots
			}
			return true
		}
	})
	if s.closed.Load() {
		return fmt.Errorf("procevent: receive: %w", os.ErrClosed)
	}
	if rerr != nil {
		return fmt.Errorf("procevent: receive: %w", rerr)
	}
	return err
}

func (s *nlSocket) send(b []byte) error {
	var err error
	werr := s.rc.Write(func(fd uintptr) bool {
		err = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return err != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return err
}

func (s *nlSocket) setDeadline(t time.Time) error { return s.f.SetReadDeadline(t) }

func (s *nlSocket) close() error {
	s.closed.Store(true)
	return s.f.Close()
}

// Replay returns a Conn that receives the netlink messages in b, one
// datagram each, as if they came from the kernel, and then blocks until
// closed. Sequence checks apply as on a live Conn. b is typically a fixture
// from testdata/.
func Replay(b []byte) *Conn {
	s := &replaySocket{done: make(chan struct{})}
	for len(b) > 0 {
		n := len(b)
		if len(b) >= nlmsgHdrLen {
			if l := int(ne.Uint32(b)); l >= nlmsgHdrLen && l <= len(b) {
				n = l
			}
		}
		s.steps = append(s.steps, step{b: b[:n]})
		b = b[min(align4(n), len(b)):]
	}
	return newConn(s, 0)
}

// ReplayFile is Replay of the contents of the named file.
func ReplayFile(name string) (*Conn, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Replay(b), nil
}

// replaySocket plays back datagrams and errors in order.
type replaySocket struct {
	mu    sync.Mutex
	steps []step
	done  chan struct{}
	once  sync.Once
}

type step struct {
	b   []byte
	err error
}

func (s *replaySocket) recv(b []byte, block bool) (int, error) {
	select {
	case <-s.done:
		return 0, fmt.Errorf("procevent: receive: %w", os.ErrClosed)
	default:
	}
	s.mu.Lock()
	if len(s.steps) > 0 {
		st := s.steps[0]
		s.steps = s.steps[1:]
		s.mu.Unlock()
		return copy(b, st.b), st.err
	}
	s.mu.Unlock()
	if !block {
		return 0, unix.EAGAIN
	}
	<-s.done
	return 0, fmt.Errorf("procevent: receive: %w", os.ErrClosed)
}

func (s *replaySocket) send([]byte) error           { return nil }
func (s *replaySocket) setDeadline(time.Time) error { return nil }
func (s *replaySocket) close() error                { s.once.Do(func() { close(s.done) }); return nil }
