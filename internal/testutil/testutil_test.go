package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOrphanHelper is the child of TestDaemonOutlivesNoTest: it starts a
// daemon, mounts a hierarchy, says where, and waits to be killed.
func TestOrphanHelper(t *testing.T) {
	if os.Getenv("TESTUTIL_ORPHAN") != "1" {
		t.Skip("run by TestDaemonOutlivesNoTest")
	}
	d := StartDaemon(t)
	dir := d.Mount("none,name=orphan")
	fmt.Printf("daemon %d mount %s\n", d.Cmd.Process.Pid, dir)
	time.Sleep(time.Minute)
}

// TestDaemonOutlivesNoTest: a test process killed outright (as a go test
// -timeout panic ends it, without cleanups) leaves no daemon and no mount:
// the daemon is told to stop when its test dies.
func TestDaemonOutlivesNoTest(t *testing.T) {
	RequireRoot(t)
	Binary(t) // built here, not inside the child's time
	child := exec.Command(os.Args[0], "-test.run=^TestOrphanHelper$", "-test.v")
	child.Env = append(os.Environ(), "TESTUTIL_ORPHAN=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	var pid int
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "daemon %d mount %s", &pid, &dir); err == nil {
			break
		}
	}
	if pid == 0 {
		t.Fatalf("child did not start a daemon: %v", sc.Err())
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH); os.Remove(dir) })
	child.Process.Kill()
	deadline := time.Now().Add(15 * time.Second)
	for {
		gone := syscall.Kill(pid, 0) != nil
		mounted := isMounted(t, dir)
		if gone && !mounted {
			return
		}
		if time.Now().After(deadline) {
			if !gone {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("15 s after its test died: daemon %d gone %v, %s still mounted %v", pid, gone, dir, mounted)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isMounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func TestFileHelpers(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/f"
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	MustWrite(t, p, "abc")
	if got := ReadFile(t, p); got != "abc" {
		t.Errorf("ReadFile = %q", got)
	}
	if err := WriteFile(t, dir+"/missing/f", "x"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("WriteFile to a missing directory: %v, want ENOENT", err)
	}
}
