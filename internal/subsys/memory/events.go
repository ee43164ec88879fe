package memory

// cgroup.event_control: eventfd registrations for usage thresholds and
// OOM, and their signalling.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
	"golang.org/x/sys/unix"
)

// cgroup.event_control (mm/memcontrol-v1.c, memcg_write_event_control;
// Documentation/admin-guide/cgroup-v1/memory.rst, "Memory thresholds" and
// "OOM Control"):
// writing "<event_fd> <control_fd> [args]" registers an eventfd of the
// writer's to be signalled on an event of the control file, which must be
// one of this container's:
//
//   - memory.usage_in_bytes, args a size (as limit_in_bytes takes): each
//     time usage crosses the threshold, up or down;
//   - memory.oom_control: each time the container or an ancestor goes out
//     of memory (a kill is planned or its tasks are paused), and at once if
//     it is under OOM when registered.
//
// The daemon takes a duplicate of the writer's eventfd (pidfd_getfd). The
// kernel drops a registration when its eventfd is closed; the daemon holds
// a reference of its own and cannot see that close, so a registration lasts
// until the container is removed, when every eventfd is signalled once, as
// the kernel does at rmdir (see docs/deviations.md). At most maxEvents per
// container.

// maxEvents bounds the registrations of one container: they are kept until
// it is removed.
const maxEvents = 1024

type eventKind int

const (
	oomEvent eventKind = iota
	thresholdEvent
)

// event is one registration. Guarded by the engine's mu.
type event struct {
	kind      eventKind
	efd       *os.File // our duplicate of the writer's eventfd
	threshold int64    // bytes, for thresholdEvent
	above     bool     // usage was at or above threshold at the last look
}

// signal adds 1 to the eventfd's counter, as eventfd_signal does.
func (ev *event) signal() {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(int(ev.efd.Fd()), b[:]) // EAGAIN only at a counter of 2^64-2
}

// eventControlFile is cgroup.event_control: write-only for everyone, in
// every container of a hierarchy with memory (0222, as the kernel's).
func (s *Subsys) eventControlFile() core.File {
	return core.File{
		Name:          "cgroup.event_control",
		Flags:         core.NoPrefix | core.NotSetting,
		Mode:          0o222,
		WriteUnlocked: s.writeEventControl,
	}
}

// writeEventControl parses and registers as v1 does, with its errnos:
// EINVAL for bad syntax, a file that is not a control file of this
// container supporting events, or bad args; EBADF for a descriptor the
// writer does not have; EACCES if the writer may not read the control
// file. It is an UnlockedWrite: it reaches into the writer's descriptor
// table (pidfd_getfd, fstat) without the registry lock, which it takes
// (c.WithLock) only to register.
func (s *Subsys) writeEventControl(c *core.Container, who core.Caller, data string) error {
	efd, cfd, args, err := parseEventControl(data)
	if err != nil {
		return err
	}
	ef, err := core.CallerFile(who, efd)
	if err != nil {
		return fmt.Errorf("cgroup.event_control: event fd: %w", fdErr(err))
	}
	keep := false
	defer func() {
		if !keep {
			ef.Close()
		}
	}()
	if link, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", ef.Fd())); link != "anon_inode:[eventfd]" {
		return fmt.Errorf("cgroup.event_control: fd %d is not an eventfd (%s): %w", efd, link, syscall.EINVAL)
	}
	cf, err := core.CallerFile(who, cfd)
	if err != nil {
		return fmt.Errorf("cgroup.event_control: control fd: %w", fdErr(err))
	}
	var st syscall.Stat_t
	err = syscall.Fstat(int(cf.Fd()), &st)
	var fs syscall.Statfs_t
	if err == nil {
		err = syscall.Fstatfs(int(cf.Fd()), &fs)
	}
	cf.Close()
	if err != nil {
		return fmt.Errorf("cgroup.event_control: control fd: %w", err)
	}
	const fuseSuperMagic = 0x65735546
	bf, ok := c.FileOfIno(st.Ino)
	if fs.Type != fuseSuperMagic || st.Mode&syscall.S_IFMT != syscall.S_IFREG || !ok {
		return fmt.Errorf("cgroup.event_control: fd %d is not a control file of %s: %w", cfd, c.Path(), syscall.EINVAL)
	}
	if who.UID != 0 && !readable(st, who) {
		return fmt.Errorf("cgroup.event_control: %s: %w", bf.Name, syscall.EACCES)
	}
	ev := &event{efd: ef}
	switch bf.Name {
	case "memory.usage_in_bytes":
		ev.kind = thresholdEvent
		// __mem_cgroup_usage_register_event: page_counter_memparse of
		// the args as they are (the buffer was stripped, not they).
		if ev.threshold, err = pageCounterMemparse(args); err != nil {
			return fmt.Errorf("cgroup.event_control: threshold: %w", err)
		}
	case "memory.oom_control":
		ev.kind = oomEvent
	default:
		return fmt.Errorf("cgroup.event_control: %s has no events: %w", bf.Name, syscall.EINVAL)
	}

	// The container's state is the registry's to guard (Container.State
	// wants its lock), and the engine's mu is taken after it: the rest
	// runs under c.WithLock.
	return c.WithLock(func() error {
		cs := s.state(c)
		e := cs.e
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.shut || cs.removed {
			return syscall.ENODEV
		}
		if len(cs.events) >= maxEvents {
			return fmt.Errorf("cgroup.event_control: %s has %d registrations already: %w", c.PathLocked(), maxEvents, syscall.ENOMEM)
		}
		switch ev.kind {
		case thresholdEvent:
			ev.above = ev.threshold <= e.usageOf(cs)
		case oomEvent:
			if cs.underOOM() {
				ev.signal()
			}
		}
		cs.events = append(cs.events, ev)
		keep = true
		e.wakeLocked() // a threshold may need closer sampling
		return nil
	})
}

// parseEventControl splits "<event_fd> <control_fd> [args]" as
// memcg_write_event_control does (mm/memcontrol-v1.c): strstrip, then
// simple_strtoul(buf, &endp, 10) twice, which reads the decimal digits
// there are (none is 0) and stops; the first number must be followed by a
// space, the second by a space or the end. Each descriptor is an unsigned
// int, as the kernel's efd and cfd: a larger number is truncated to 32
// bits. One of more than 20 digits, which the kernel wraps modulo 2^64
// first, names no descriptor here (-1: EBADF, as the wrapped one would
// almost surely be).
func parseEventControl(data string) (efd, cfd int, args string, err error) {
	bad := fmt.Errorf("cgroup.event_control: %q is not \"<event_fd> <control_fd> [args]\": %w", data, syscall.EINVAL)
	s := core.Strstrip(data)
	efd, s = simpleStrtoul10(s)
	if !strings.HasPrefix(s, " ") {
		return 0, 0, "", bad
	}
	cfd, s = simpleStrtoul10(s[1:])
	switch {
	case s == "":
	case s[0] == ' ':
		s = s[1:]
	default:
		return 0, 0, "", bad
	}
	return efd, cfd, s, nil
}

// simpleStrtoul10 is simple_strtoul(s, &end, 10) stored in an unsigned
// int: the value of the leading decimal digits (0 if there are none) and
// what follows them.
func simpleStrtoul10(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits := strings.TrimLeft(s[:i], "0") // decimal, not kstrtoull's octal
	if digits == "" {
		return 0, s[i:]
	}
	v, err := core.Kstrtoull(digits)
	if err != nil {
		return -1, s[i:]
	}
	return int(uint32(v)), s[i:]
}

// fdErr maps what reaching into the writer's descriptors failed with to
// the kernel's errno: a descriptor it does not have is EBADF.
func fdErr(err error) error {
	if errors.Is(err, syscall.EBADF) {
		return err
	}
	return fmt.Errorf("%w (%v)", syscall.EBADF, err)
}

// readable tells whether who may read a file of mode st (file_permission
// with MAY_READ; supplementary groups are not known).
func readable(st syscall.Stat_t, who core.Caller) bool {
	switch {
	case st.Uid == who.UID:
		return st.Mode&0o400 != 0
	case st.Gid == who.GID:
		return st.Mode&0o040 != 0
	default:
		return st.Mode&0o004 != 0
	}
}

// usageOf is what st's usage_in_bytes reads. Call with e.mu held.
func (e *engine) usageOf(st *cstate) int64 {
	if st.root {
		return e.sysUsage()
	}
	return st.usage
}

// thresholdsLocked signals the thresholds that usage crossed since the
// last look. Call with e.mu held, after computeLocked.
func (e *engine) thresholdsLocked() {
	var walk func(c *cstate)
	walk = func(c *cstate) {
		if len(c.events) > 0 {
			usage := e.usageOf(c)
			for _, ev := range c.events {
				if ev.kind != thresholdEvent {
					continue
				}
				if above := ev.threshold <= usage; above != ev.above {
					ev.above = above
					ev.signal()
				}
			}
		}
		for ch := range c.children {
			walk(ch)
		}
	}
	walk(e.root)
}

// oomNotifyLocked signals the OOM registrations of c and every descendant
// (v1's mem_cgroup_oom_notify). Call with e.mu held.
func oomNotifyLocked(c *cstate) {
	for _, ev := range c.events {
		if ev.kind == oomEvent {
			ev.signal()
		}
	}
	for ch := range c.children {
		oomNotifyLocked(ch)
	}
}

// dropEventsLocked signals every registration of c once and closes it:
// the container is being removed. Call with e.mu held.
func dropEventsLocked(c *cstate) {
	for _, ev := range c.events {
		ev.signal()
		ev.efd.Close()
	}
	c.events = nil
}

// watchesLocked tells whether a threshold on c or an ancestor needs c's
// processes sampled on every round.
func (c *cstate) watchesLocked() bool {
	for x := c; x != nil; x = x.parent {
		for _, ev := range x.events {
			if ev.kind == thresholdEvent {
				return true
			}
		}
	}
	return false
}
