package conformance

// The suite's tools: file operations bounded in time, errno checks, tasks
// files parsed, a child's output awaited, and the helper program.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// opTimeout bounds one filesystem operation, as testutil.Do does. The
// kernel's cgroupfs answers in microseconds and containerfs in well under a
// millisecond; anything near this long is a hung request.
const opTimeout = testutil.OpTimeout

// timed runs f on its own goroutine and waits at most opTimeout for it. If f
// does not return in time, ok is false and the goroutine is left blocked
// until the server goes away (the daemon's cleanup aborts the connection).
func timed(f func() error) (err error, ok bool) {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err, true
	case <-time.After(opTimeout):
		return nil, false
	}
}

// writeOnce opens path write-only and writes data in one write(2); the
// error wraps the errno of open or write. It is for the cleanup, which
// bounds it with timed and must not fail the test from a goroutine that
// outlives it; tests write with testutil.WriteFile.
func writeOnce(path, data string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, []byte(data))
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	if n != len(data) {
		return fmt.Errorf("write %s: short write: %d of %d bytes", path, n, len(data))
	}
	return nil
}

// read is path's content, or the error of reading it (for checking an
// errno); testutil.ReadFile fails the test instead.
func read(t testing.TB, path string) (string, error) {
	t.Helper()
	var b []byte
	err := testutil.Do(t, "read "+path, func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	})
	return string(b), err
}

func stat(t testing.TB, path string) (unix.Stat_t, error) {
	t.Helper()
	var st unix.Stat_t
	err := testutil.Do(t, "stat "+path, func() error { return unix.Lstat(path, &st) })
	return st, err
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := stat(t, path)
	return err == nil
}

// wantErrno checks that err wraps errno want.
func wantErrno(t testing.TB, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v (%s)", what, errnoName(err), unix.ErrnoName(want), want)
	}
}

func errnoName(err error) string {
	if err == nil {
		return "success"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return fmt.Sprintf("%s (%v)", n, err)
		}
	}
	return err.Error()
}

// parseIDs parses a tasks or cgroup.procs file: one decimal ID a line.
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		id, err := strconv.Atoi(line)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("bad line %q in %q", line, s)
		}
		ids = append(ids, id)
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("no final newline in %q", s)
	}
	return ids, nil
}

func readIDs(t testing.TB, path string) []int {
	t.Helper()
	ids, err := parseIDs(testutil.ReadFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ids
}

// eventually polls cond every 20ms until it returns nil or timeout passes,
// and returns its last error.
func eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func threadIDs(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	return tids, nil
}

func pidMax(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid_max %q: %v", b, err)
	}
	return n
}

// output collects a child's stdout and lets the test wait for a line.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{}, 1)} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(b)
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitLine waits until a line equal to marker has been written and returns
// everything before it.
func (o *output) waitLine(t testing.TB, marker string) string {
	t.Helper()
	deadline := time.After(opTimeout)
	for {
		s := o.String()
		if i := strings.Index("\n"+s, "\n"+marker+"\n"); i >= 0 {
			return s[:i]
		}
		select {
		case <-o.changed:
		case <-deadline:
			t.Fatalf("child did not print %q within %v; it printed %q", marker, opTimeout, s)
		}
	}
}

// The helper program (./helper) is built once per test binary.
var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

func helperBin(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "conformance-helper-")
		if err != nil {
			helperErr = err
			return
		}
		// Children run the helper as an unprivileged user too.
		if err := os.Chmod(dir, 0o755); err != nil {
			helperErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		path := filepath.Join(dir, "helper")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", path,
			"github.com/containerfs/containerfs/internal/conformance/helper")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("go build helper: %v\n%s", err, out)
			return
		}
		helperPath = path
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

// RemoveHelper removes the helper program the suite built, if it built one.
// Call it from TestMain, after m.Run.
func RemoveHelper() {
	if helperPath != "" {
		os.RemoveAll(filepath.Dir(helperPath))
	}
}

// runHelper runs the helper to completion, as uid:gid if cred is not nil,
// and returns its trimmed output.
func runHelper(t testing.TB, cred *syscall.Credential, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin(t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %v: %v: %s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// nobody is the unprivileged user the permission checks run as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}
