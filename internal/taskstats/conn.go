package taskstats

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrLost is wrapped by the error Listener.Receive returns when the kernel
// dropped exit records because the socket's receive buffer was full
// (ENOBUFS). The listener keeps working.
var ErrLost = errors.New("taskstats: exit records lost")

// DefaultRcvBuf is the receive buffer a Listener asks for with
// SO_RCVBUFFORCE: about 13,000 exit records of 640 bytes on the wire.
const DefaultRcvBuf = 8 << 20

// socket opens a generic netlink socket and resolves the TASKSTATS family.
func socket() (*netlink.Conn, uint16, error) {
	nl, err := netlink.Dial(unix.NETLINK_GENERIC, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("taskstats: generic netlink socket: %w", err)
	}
	fam, err := genetlink.NewConn(nl).GetFamily(unix.TASKSTATS_GENL_NAME)
	if err != nil {
		nl.Close()
		return nil, 0, fmt.Errorf("taskstats: family %s: %w", unix.TASKSTATS_GENL_NAME, err)
	}
	return nl, fam.ID, nil
}

// request builds a TASKSTATS_CMD_GET message with one attribute.
func request(fam uint16, flags netlink.HeaderFlags, attrs []byte) (netlink.Message, error) {
	gm := genetlink.Message{
		Header: genetlink.Header{Command: unix.TASKSTATS_CMD_GET, Version: unix.TASKSTATS_GENL_VERSION},
		Data:   attrs,
	}
	b, err := gm.MarshalBinary()
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(fam), Flags: flags}, Data: b}, nil
}

// recordsOf decodes the records of one netlink message; acks and messages
// of other commands give none.
func recordsOf(m netlink.Message) ([]Record, error) {
	if m.Header.Type == netlink.Error || m.Header.Type == netlink.Done || m.Header.Type == netlink.Noop {
		return nil, nil
	}
	var gm genetlink.Message
	if err := gm.UnmarshalBinary(m.Data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if gm.Header.Command != unix.TASKSTATS_CMD_NEW {
		return nil, nil
	}
	return ParseRecords(gm.Data)
}

// Conn asks the kernel for the accounting of live tasks.
type Conn struct {
	nl  *netlink.Conn
	fam uint16
	tap func(netlink.Message) // tests: sees each reply
}

// Dial opens a Conn.
func Dial() (*Conn, error) {
	nl, fam, err := socket()
	if err != nil {
		return nil, err
	}
	return &Conn{nl: nl, fam: fam}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nl.Close() }

// PID is the record of task tid (a thread); an error wrapping ESRCH if
// there is no such task.
func (c *Conn) PID(tid int) (Stats, error) {
	return c.get(unix.TASKSTATS_CMD_ATTR_PID, tid, false)
}

// TGID is the aggregate record of thread group tgid: its live threads and
// those that have exited.
func (c *Conn) TGID(tgid int) (Stats, error) {
	return c.get(unix.TASKSTATS_CMD_ATTR_TGID, tgid, true)
}

func (c *Conn) get(attr uint16, id int, group bool) (Stats, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attr, uint32(id))
	b, err := ae.Encode()
	if err != nil {
		return Stats{}, err
	}
	req, err := request(c.fam, netlink.Request, b)
	if err != nil {
		return Stats{}, err
	}
	msgs, err := c.nl.Execute(req)
	if err != nil {
		return Stats{}, fmt.Errorf("taskstats: get %d: %w", id, err)
	}
	for _, m := range msgs {
		if c.tap != nil {
			c.tap(m)
		}
		recs, err := recordsOf(m)
		if err != nil {
			return Stats{}, err
		}
		for _, r := range recs {
			if r.Group == group && r.ID == id {
				return r.Stats, nil
			}
		}
	}
	return Stats{}, fmt.Errorf("taskstats: get %d: %w: no record in the reply", id, ErrMalformed)
}

// Listener receives the exit records of tasks exiting on a set of CPUs.
type Listener struct {
	nl   *netlink.Conn
	fam  uint16
	mask string

	mu      sync.Mutex            // serializes Receive; guards pending and tap
	pending []Record              // records that arrived before the registration's ack
	tap     func(netlink.Message) // tests: sees each message received

	closeOnce sync.Once
	closed    chan struct{}
}

// Listen registers a listener for the exit records of tasks exiting on the
// CPUs of cpus, a CPU list such as "0-3,7" (every CPU must be possible).
// The kernel sends each record to the listeners of the CPU the task exits
// on, so a listener per CPU also learns where each task ran last.
// rcvBuf is the socket's receive buffer (0: DefaultRcvBuf).
func Listen(cpus string, rcvBuf int) (*Listener, error) {
	if rcvBuf <= 0 {
		rcvBuf = DefaultRcvBuf
	}
	nl, fam, err := socket()
	if err != nil {
		return nil, err
	}
	l := &Listener{nl: nl, fam: fam, mask: cpus, closed: make(chan struct{})}
	if err := l.setRcvBuf(rcvBuf); err != nil {
		nl.Close()
		return nil, err
	}
	if err := l.register(); err != nil {
		nl.Close()
		return nil, err
	}
	return l, nil
}

func (l *Listener) setRcvBuf(n int) error {
	rc, err := l.nl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		if serr != nil {
			// Without CAP_NET_ADMIN, take what rmem_max allows.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("taskstats: receive buffer: %w", serr)
	}
	return nil
}

// register sends TASKSTATS_CMD_ATTR_REGISTER_CPUMASK and waits for the
// kernel's ack. Exit records may arrive before the ack (another CPU's task
// can exit between the registration and the ack): they are kept for the
// first Receive.
func (l *Listener) register() error {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, l.mask)
	b, err := ae.Encode()
	if err != nil {
		return err
	}
	req, err := request(l.fam, netlink.Request|netlink.Acknowledge, b)
	if err != nil {
		return err
	}
	sent, err := l.nl.Send(req)
	if err != nil {
		return fmt.Errorf("taskstats: register cpumask %q: %w", l.mask, err)
	}
	for {
		msgs, err := l.nl.Receive()
		if err != nil {
			// A nack (bad mask, not root) comes back as an error.
			return fmt.Errorf("taskstats: register cpumask %q: %w", l.mask, err)
		}
		acked := false
		for _, m := range msgs {
			if m.Header.Type == netlink.Error && m.Header.Sequence == sent.Header.Sequence {
				acked = true
				continue
			}
			recs, err := recordsOf(m)
			if err != nil {
				return err
			}
			l.pending = append(l.pending, recs...)
		}
		if acked {
			return nil
		}
	}
}

// Receive blocks until exit records arrive and returns them. After ENOBUFS
// it returns an error wrapping ErrLost and keeps working; after Close, an
// error wrapping os.ErrClosed.
func (l *Listener) Receive() ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		recs := l.pending
		l.pending = nil
		return recs, nil
	}
	for {
		msgs, err := l.nl.Receive()
		select {
		case <-l.closed:
			return nil, fmt.Errorf("taskstats: listener: %w", os.ErrClosed)
		default:
		}
		if errors.Is(err, unix.ENOBUFS) {
			return nil, fmt.Errorf("taskstats: listener %q: %w (%w)", l.mask, ErrLost, err)
		}
		if err != nil {
			return nil, fmt.Errorf("taskstats: listener %q: %w", l.mask, err)
		}
		var recs []Record
		for _, m := range msgs {
			if l.tap != nil {
				l.tap(m)
			}
			r, err := recordsOf(m)
			if err != nil {
				return recs, err
			}
			recs = append(recs, r...)
		}
		if len(recs) > 0 {
			return recs, nil
		}
	}
}

// Close deregisters the listener and closes its socket; a Receive blocked
// meanwhile returns an error wrapping os.ErrClosed.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK, l.mask)
		if b, eerr := ae.Encode(); eerr == nil {
			if req, rerr := request(l.fam, netlink.Request, b); rerr == nil {
				l.nl.Send(req) // best effort: the kernel drops dead listeners anyway
			}
		}
		err = l.nl.Close()
	})
	return err
}
