package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// newEventfd makes an eventfd in this process, closed when the test ends.
func newEventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// register writes "efd cfd[ args]" to dir's cgroup.event_control, cfd
// being an open descriptor of dir/file (or of file itself if absolute).
func register(t *testing.T, dir, file string, efd int, args string) error {
	t.Helper()
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, file)
	}
	cf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	data := fmt.Sprintf("%d %d", efd, cf.Fd())
	if args != "" {
		data += " " + args
	}
	return testutil.WriteFile(t, filepath.Join(dir, "cgroup.event_control"), data)
}

// signalled waits up to d for efd's counter to be non-zero, and returns
// it (reading resets it to 0).
func signalled(t *testing.T, efd int, d time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var b [8]byte
		n, err := unix.Read(efd, b[:])
		if err == nil && n == 8 {
			return binary.NativeEndian.Uint64(b[:])
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("read eventfd: %v", err)
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestE2EEventControlErrors: the file's mode, and v1's errnos for every
// kind of bad registration.
func TestE2EEventControlErrors(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	a := container(t, mnt, "a")
	b := container(t, mnt, "b")
	for _, dir := range []string{mnt, a} {
		fi, err := os.Stat(filepath.Join(dir, "cgroup.event_control"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o222 {
			t.Errorf("%s/cgroup.event_control: mode %v, want --w--w--w-", dir, fi.Mode().Perm())
		}
	}
	efd := newEventfd(t)
	devNull, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	ctl := filepath.Join(a, "cgroup.event_control")
	raw := func(data string) error { return testutil.WriteFile(t, ctl, data) }
	tests := []struct {
		what string
		err  error
		do   func() error
	}{
		{"no numbers", syscall.EINVAL, func() error { return raw("x y") }},
		{"one number", syscall.EINVAL, func() error { return raw(strconv.Itoa(efd)) }},
		{"a sign", syscall.EINVAL, func() error { return raw(fmt.Sprintf("-%d 3", efd)) }},
		{"an event fd we do not have", syscall.EBADF, func() error { return raw(fmt.Sprintf("9999 %d", devNull.Fd())) }},
		{"a control fd we do not have", syscall.EBADF, func() error { return raw(fmt.Sprintf("%d 9999", efd)) }},
		{"an event fd that is no eventfd", syscall.EINVAL, func() error { return raw(fmt.Sprintf("%d %d", devNull.Fd(), devNull.Fd())) }},
		{"a control fd that is no control file", syscall.EINVAL, func() error { return register(t, a, "/dev/null", efd, "") }},
		{"a file without events", syscall.EINVAL, func() error { return register(t, a, "memory.limit_in_bytes", efd, "") }},
		{"another container's file", syscall.EINVAL, func() error { return register(t, a, filepath.Join(b, "memory.usage_in_bytes"), efd, "1M") }},
		{"a bad threshold", syscall.EINVAL, func() error { return register(t, a, "memory.usage_in_bytes", efd, "lots") }},
	}
	for _, tc := range tests {
		if err := tc.do(); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.what, err, tc.err)
		}
	}
	if err := register(t, a, "memory.usage_in_bytes", efd, "10M"); err != nil {
		t.Errorf("threshold: %v", err)
	}
	if err := register(t, a, "memory.oom_control", efd, ""); err != nil {
		t.Errorf("oom_control: %v", err)
	}
	if err := register(t, mnt, "memory.usage_in_bytes", efd, "-1"); err != nil {
		t.Errorf("threshold in the root: %v", err)
	}
	if got := signalled(t, efd, 100*time.Millisecond); got != 0 {
		t.Errorf("eventfd signalled %d times by registrations alone", got)
	}
}

// TestE2EThresholdEvents: a threshold on usage_in_bytes is signalled when
// usage crosses it upwards and downwards, and every registration once more
// when the container is removed.
func TestE2EThresholdEvents(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	dir := filepath.Join(mnt, "thr")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	efd := newEventfd(t)
	if err := register(t, dir, "memory.usage_in_bytes", efd, "40M"); err != nil {
		t.Fatal(err)
	}
	a := startAlloc(t, 400, 80)
	testutil.MustWrite(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(a.pid()))
	a.run(t)
	if got := signalled(t, efd, 10*time.Second); got != 1 {
		t.Fatalf("crossing 40M upwards: eventfd count %d, want 1 (usage %d)", got, readNum(t, filepath.Join(dir, "memory.usage_in_bytes")))
	}
	a.stdin.Close() // it exits
	a.wait()
	if got := signalled(t, efd, 10*time.Second); got != 1 {
		t.Fatalf("crossing 40M downwards: eventfd count %d, want 1 (usage %d)", got, readNum(t, filepath.Join(dir, "memory.usage_in_bytes")))
	}
	if got := signalled(t, efd, 200*time.Millisecond); got != 0 {
		t.Errorf("eventfd signalled %d more times with usage steady", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for os.Remove(dir) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("rmdir %s failed for 10 s", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := signalled(t, efd, 5*time.Second); got != 1 {
		t.Errorf("rmdir: eventfd count %d, want 1", got)
	}
}

// TestE2EOOMEvent: a registration on memory.oom_control is signalled when
// the container goes over its limit (here the allocator is killed).
func TestE2EOOMEvent(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	dir := container(t, mnt, "oom")
	const limit = 64 << 20
	testutil.MustWrite(t, filepath.Join(dir, "memory.limit_in_bytes"), "64M")
	efd := newEventfd(t)
	if err := register(t, dir, "memory.oom_control", efd, ""); err != nil {
		t.Fatal(err)
	}
	runToOOM(t, dir, limit, 500, 500)
	if got := signalled(t, efd, 5*time.Second); got < 1 {
		t.Errorf("OOM: eventfd count %d, want at least 1", got)
	}
	if got := oomControl(t, dir, "oom_kill"); got != 1 {
		t.Errorf("oom_kill: got %d, want 1", got)
	}
}
