package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// cmdTimeout bounds every command a test runs; testutil.Do bounds every
// filesystem operation it makes itself.
const cmdTimeout = 60 * time.Second

// run runs a command with env (nil: the test's) and returns its combined
// output and exit status. It fails the test if the command cannot start or
// outlives cmdTimeout.
func run(t testing.TB, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: no result within %v; output so far:\n%s", name, args, cmdTimeout, out)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("%s %v: %v", name, args, err)
	return "", -1
}

// sh runs a shell script with the daemon's socket in its environment, as
// d.Sh does, but bounded in time.
func sh(t testing.TB, d *testutil.Daemon, script string) (string, int) {
	t.Helper()
	return run(t, d.Env(), "/bin/sh", "-c", script)
}

func mkdir(t testing.TB, path string) {
	t.Helper()
	if err := testutil.Do(t, "mkdir "+path, func() error { return unix.Mkdir(path, 0o755) }); err != nil {
		t.Fatal(err)
	}
}

func rmdir(t testing.TB, path string) {
	t.Helper()
	if err := testutil.Do(t, "rmdir "+path, func() error { return unix.Rmdir(path) }); err != nil {
		t.Fatal(err)
	}
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	return testutil.Do(t, "stat "+path, func() error { _, err := os.Stat(path); return err }) == nil
}

// mountDir makes an empty directory for a mount that the test makes by
// other means than d.Mount. When the test ends, whatever is mounted there is
// unmounted (lazily, so a dead server cannot hang the cleanup) and the
// directory removed.
func mountDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "containerfs-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 8 {
			if unix.Unmount(dir, unix.MNT_DETACH) != nil {
				break
			}
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

// mountType is the filesystem type /proc/mounts shows at dir, or "".
func mountType(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	typ := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[1] == dir {
			typ = fields[2] // the last one listed is on top
		}
	}
	return typ
}

// eventually polls cond until it returns nil, and fails the test with its
// last error if that takes longer than timeout.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleeper starts `sleep 600`, killed and reaped when the test ends.
func sleeper(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("cleanup: sleep %d not reaped", cmd.Process.Pid)
		}
	})
	return cmd.Process.Pid
}

// lssubsys is the daemon's /proc/cgroups table, by subsystem: hierarchy,
// num_cgroups, enabled.
func lssubsys(t testing.TB, d *testutil.Daemon) (header string, rows map[string][3]int) {
	t.Helper()
	out, err := d.CLI("lssubsys")
	if err != nil {
		t.Fatal(err)
	}
	rows = map[string][3]int{}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if i == 0 {
			header = line
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("lssubsys line %q: want 4 tab-separated fields", line)
		}
		var row [3]int
		for j := range row {
			n, err := strconv.Atoi(f[j+1])
			if err != nil {
				t.Fatalf("lssubsys line %q: %v", line, err)
			}
			row[j] = n
		}
		rows[f[0]] = row
	}
	return header, rows
}

// debugRow waits until lssubsys shows want for debug: bound to hierarchy
// want[0] with want[1] containers (unmounts reach the daemon
// asynchronously).
func debugRow(t testing.TB, d *testutil.Daemon, want [3]int) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if _, rows := lssubsys(t, d); rows["debug"] != want {
			return fmt.Errorf("lssubsys debug: got %v, want %v", rows["debug"], want)
		}
		return nil
	})
}

// umount runs umount(8) on dir and checks that it succeeds.
func umount(t testing.TB, dir string) {
	t.Helper()
	if out, code := run(t, nil, "umount", dir); code != 0 {
		t.Fatalf("umount %s: exit %d: %s", dir, code, out)
	}
	if typ := mountType(t, dir); typ == "fuse.container" {
		t.Fatalf("%s still mounted after umount", dir)
	}
}

// processGone tells whether pid has exited (or is a zombie).
func processGone(pid int) bool {
	st, err := proc.ReadStat("", pid)
	return err != nil || st.Zombie()
}

// helperPath is where mount(8) looks for the helper.
const helperPath = "/sbin/mount.container"

// helperLock serializes the use of /sbin/mount.container between test
// processes (go test ./... runs packages, and developers run suites, side by
// side): one would otherwise remove the link it installed while another's
// session is using it.
const helperLock = "/run/containerfs-e2e-helper.lock"

// installHelper makes mount(8) find containerfs's helper: it links
// /sbin/mount.container to bin for the test's duration. An existing helper is
// used as it is if it is containerfs; otherwise the test is skipped. The test
// holds helperLock until it ends.
func installHelper(t *testing.T, bin string) {
	t.Helper()
	lock, err := os.OpenFile(helperLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(cmdTimeout)
	for {
		err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			lock.Close()
			t.Fatalf("lock %s: %v", helperLock, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Registered first, so it runs last: after the link is removed.
	t.Cleanup(func() { lock.Close() })
	for range 2 {
		if _, err := os.Lstat(helperPath); err == nil {
			target, err := filepath.EvalSymlinks(helperPath)
			if err != nil || filepath.Base(target) != "containerfs" {
				t.Skipf("%s exists and is not containerfs (%q, %v): leaving it alone", helperPath, target, err)
			}
			t.Logf("using the installed %s -> %s", helperPath, target)
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		err := os.Symlink(bin, helperPath)
		if err == nil {
			t.Cleanup(func() {
				// Only if it is still ours.
				if target, err := os.Readlink(helperPath); err == nil && target == bin {
					os.Remove(helperPath)
				}
			})
			return
		}
		if !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		// Someone installed one meanwhile: look at it.
	}
	t.Fatalf("cannot install %s", helperPath)
}
