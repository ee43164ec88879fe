package proc

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Root is where procfs is mounted on this machine.
const Root = "/proc"

// Path is root/TID/file ("/proc/123/stat"). For a thread of another
// process /proc/TID works as well as /proc/TGID/task/TID.
func Path(root string, tid int, file string) string {
	if root == "" {
		root = Root
	}
	return root + "/" + strconv.Itoa(tid) + "/" + file
}

// ReadSmall reads a small /proc file with one open, one read and one
// close, into buf: os.ReadFile stats the file and grows its buffer, which
// costs several times as much. procfs generates a file such as stat whole
// at the first read, so one read of a large enough buffer gets all of it.
func ReadSmall(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return ReadAt(fd, buf)
}

// ReadAt reads an open /proc file afresh: a pread at offset 0 makes procfs
// generate it again (about 5 µs here, against 20-40 µs to open, read and
// close). An open file keeps naming the task it was opened for: once that
// task is gone the read fails (ESRCH), even if its TID is reused.
func ReadAt(fd int, buf []byte) ([]byte, error) {
	for {
		n, err := unix.Pread(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// StatBufSize is enough for any /proc/TID/stat (52 numbers and a 16-byte
// comm).
const StatBufSize = 1024

// ReadStat reads and parses root/TID/stat. A task that is gone reads as an
// error wrapping ENOENT or ESRCH.
func ReadStat(root string, tid int) (Stat, error) {
	var buf [StatBufSize]byte
	b, err := ReadSmall(Path(root, tid, "stat"), buf[:])
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// StatusBufSize is enough for /proc/TID/status on this kernel (about 1.5
// KiB; its Cpus_allowed lines grow with the number of CPUs).
const StatusBufSize = 8192

// ReadStatus reads and parses root/TID/status.
func ReadStatus(root string, tid int) (Status, error) {
	buf := make([]byte, StatusBufSize)
	b, err := ReadSmall(Path(root, tid, "status"), buf)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b)
}

// Threads lists the TIDs of thread group tgid (root/TGID/task), in the
// order the directory gives them. A group that is gone is an error
// wrapping ENOENT.
func Threads(root string, tgid int) ([]int, error) {
	ents, err := os.ReadDir(Path(root, tgid, "task"))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, ok := Atoi(e.Name()); ok {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
