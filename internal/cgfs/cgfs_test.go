package cgfs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/cgfs"
	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
)

// serve mounts a hierarchy with no subsystem in a temporary directory,
// served in this process, and unmounts it when the test ends.
func serve(t *testing.T) (*core.Registry, string) {
	t.Helper()
	testutil.RequireRoot(t)
	reg := core.NewRegistry(core.ProcFS{Root: "/proc"})
	reg.SetSelf(os.Getpid())
	h, err := reg.Mount("none,name=cgfstest" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Other users reach the mount through the test's directories.
	for p := dir; p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m, err := cgfs.Serve(reg, h, dir, "cgfstest", cgfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(5 * time.Second); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return reg, dir
}

// openAs opens path for writing with the filesystem uid and gid of u, on
// a thread of its own (setfsuid is per thread), as u's process would.
func openAs(t *testing.T, u testutil.User, path string) *os.File {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its changed fsuid
		unix.Setfsgid(int(u.GID))
		unix.Setfsuid(int(u.UID))
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("open %s as %s: %v", path, u.Name, r.err)
	}
	f := os.NewFile(uintptr(r.fd), path)
	t.Cleanup(func() { f.Close() })
	return f
}

func sleeper(t *testing.T, cred *syscall.Credential) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// A descriptor of a delegated tasks file, opened by the delegate and
// written by root, moves only what the delegate could move: the kernel
// judges the write by the opener's credentials (f_cred), not the
// writer's.
func TestWriteJudgedByOpener(t *testing.T) {
	_, dir := serve(t)
	u := testutil.NewUser(t)
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	tasks := filepath.Join(d, "tasks")
	if err := os.Chown(tasks, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	rootTask := sleeper(t, nil)
	ownTask := sleeper(t, &syscall.Credential{Uid: u.UID, Gid: u.GID})

	f := openAs(t, u, tasks)
	// This process is root: it writes through the delegate's descriptor.
	if _, err := f.Write([]byte(strconv.Itoa(rootTask))); !errors.Is(err, syscall.EACCES) {
		t.Errorf("root's task through the delegate's descriptor: %v, want EACCES", err)
	}
	if _, err := f.Write([]byte(strconv.Itoa(ownTask))); err != nil {
		t.Errorf("the delegate's own task through its descriptor: %v", err)
	}
	got := strings.Fields(testutil.ReadFile(t, tasks))
	if len(got) != 1 || got[0] != strconv.Itoa(ownTask) {
		t.Errorf("tasks = %q, want only %d", got, ownTask)
	}
	// Root's own descriptor moves root's task.
	testutil.MustWrite(t, tasks, strconv.Itoa(rootTask))
	if got := testutil.ReadFile(t, tasks); !strings.Contains(got, strconv.Itoa(rootTask)) {
		t.Errorf("tasks after root's own write = %q, want %d in it", got, rootTask)
	}
}
