package testutil

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OpTimeout bounds one filesystem operation of a test on a mount: a hung
// FUSE request fails the test instead of hanging CI.
const OpTimeout = 20 * time.Second

// Do runs one filesystem operation, failing the test if it takes longer
// than OpTimeout. The operation's goroutine is left behind then: the
// test's cleanup unmounts, which ends it.
func Do(t testing.TB, what string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	timer := time.NewTimer(OpTimeout)
	defer timer.Stop()
	select {
	case err := <-ch:
		return err
	case <-timer.C:
		t.Fatalf("%s: no reply within %v (hung FUSE request?)", what, OpTimeout)
		return nil
	}
}

// WriteFile writes data to path in one write(2), as `echo data > path`
// does, and returns the error of the open, the write or the close as an
// *os.PathError wrapping the errno (compare it with errors.Is).
func WriteFile(t testing.TB, path, data string) error {
	t.Helper()
	return Do(t, "write "+path, func() error {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		n, err := unix.Write(fd, []byte(data))
		cerr := unix.Close(fd)
		switch {
		case err != nil:
			return &os.PathError{Op: "write", Path: path, Err: err}
		case n != len(data):
			return &os.PathError{Op: "write", Path: path, Err: unix.EIO}
		case cerr != nil:
			return &os.PathError{Op: "close", Path: path, Err: cerr}
		}
		return nil
	})
}

// MustWrite is WriteFile, failing the test on an error.
func MustWrite(t testing.TB, path, data string) {
	t.Helper()
	if err := WriteFile(t, path, data); err != nil {
		t.Fatalf("write %q: %v", data, err)
	}
}

// ReadFile is the content of path, failing the test on an error.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	var b []byte
	if err := Do(t, "read "+path, func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Short skips a slow test under -short, which runs only the fast ones
// (in-process unit tests, parsers) in seconds.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: skipped under -short")
	}
}
