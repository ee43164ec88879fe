package core

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Inode numbers of the filesystem's nodes: a container's directory is
// ID<<8, its files ID<<8+1+index (the index in Hierarchy.Files). They are
// the core's, so that a handler given a file descriptor of a control file
// (cgroup.event_control) can tell which file it is.
func DirIno(c *Container) uint64 { return c.ID() << 8 }

// FileIno is the inode number of c's control file at index i.
func FileIno(c *Container, i int) uint64 { return c.ID()<<8 + 1 + uint64(i) }

// FileOfIno is c's control file whose inode number is ino, if it is one of
// c's. It takes no lock.
func (c *Container) FileOfIno(ino uint64) (*BoundFile, bool) {
	if ino>>8 != c.ID() || ino&0xff == 0 {
		return nil, false
	}
	files := c.h.Files(c)
	i := int(ino&0xff) - 1
	if i >= len(files) {
		return nil, false
	}
	return &files[i], true
}

// CallerFile is a duplicate of file descriptor fd of the process that made
// a request (pidfd_getfd): what the kernel's fdget(fd) finds when a handler
// runs in the writer's context. It fails with EBADF if the process has no
// such descriptor, ESRCH if the process is gone. Close it when done.
func CallerFile(who Caller, fd int) (*os.File, error) {
	if fd < 0 {
		return nil, syscall.EBADF
	}
	tgid, err := tgidOf(who.PID)
	if err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", tgid, err)
	}
	defer unix.Close(pidfd)
	nfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d of process %d: %w", fd, tgid, err)
	}
	return os.NewFile(uintptr(nfd), fmt.Sprintf("fd %d of %d", fd, tgid)), nil
}

// tgidOf is the thread group of thread tid (/proc/TID/status).
func tgidOf(tid int) (int, error) {
	if tid <= 0 {
		return 0, syscall.ESRCH
	}
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, syscall.ESRCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, syscall.ESRCH
}
