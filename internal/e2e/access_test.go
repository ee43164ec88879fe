package e2e

// Who may do what: mount -o ro, and what a user other than root may ask
// the daemon, both as the kernel's cgroupfs decides.

import (
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

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// mountOptions is the options field /proc/mounts shows at dir (the top
// mount), or "".
func mountOptions(t testing.TB, dir string) string {
	t.Helper()
	opts := ""
	for _, line := range strings.Split(testutil.ReadFile(t, "/proc/self/mounts"), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == dir {
			opts = f[3]
		}
	}
	return opts
}

// wantErrno fails the test unless err is errno.
func wantErrno(t testing.TB, what string, err, errno error) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("%s: got %v, want %v", what, err, errno)
	}
}

// A hierarchy mounted ro answers EROFS to every change, through the VFS,
// and reads work; a second mount of it, rw, stays writable (ro is per
// mount, as in the kernel).
func TestReadOnlyMount(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	installHelper(t, d.Bin)
	ro, rw := mountDir(t), mountDir(t)
	out, code := sh(t, d, fmt.Sprintf("mount -t container -o ro,debug none %s && mount -t container -o debug none %s", ro, rw))
	if code != 0 {
		t.Fatalf("mount: exit %d: %s", code, out)
	}
	if o := mountOptions(t, ro); !strings.HasPrefix(o, "ro,") {
		t.Errorf("/proc/mounts options at the ro mount: %q, want ro first", o)
	}
	if o := mountOptions(t, rw); !strings.HasPrefix(o, "rw,") {
		t.Errorf("/proc/mounts options at the rw mount: %q, want rw first", o)
	}
	mkdir(t, filepath.Join(rw, "c"))
	if !exists(t, filepath.Join(ro, "c")) {
		t.Fatal("a group made through the rw mount is not seen through the ro one")
	}
	do := func(what string, f func() error) error { return testutil.Do(t, what, f) }
	wantErrno(t, "mkdir on ro", do("mkdir", func() error { return unix.Mkdir(filepath.Join(ro, "d"), 0o755) }), syscall.EROFS)
	wantErrno(t, "rmdir on ro", do("rmdir", func() error { return unix.Rmdir(filepath.Join(ro, "c")) }), syscall.EROFS)
	wantErrno(t, "rename on ro", do("rename", func() error { return unix.Rename(filepath.Join(ro, "c"), filepath.Join(ro, "e")) }), syscall.EROFS)
	wantErrno(t, "write tasks on ro", testutil.WriteFile(t, filepath.Join(ro, "c", "tasks"), strconv.Itoa(os.Getpid())), syscall.EROFS)
	wantErrno(t, "chmod on ro", do("chmod", func() error { return unix.Chmod(filepath.Join(ro, "c", "tasks"), 0o666) }), syscall.EROFS)
	wantErrno(t, "chown on ro", do("chown", func() error { return unix.Chown(filepath.Join(ro, "c"), 1, 1) }), syscall.EROFS)
	if s := testutil.ReadFile(t, filepath.Join(ro, "cgroup.clone_children")); s == "" {
		t.Error("read of cgroup.clone_children on ro: empty")
	}
	testutil.ReadFile(t, filepath.Join(ro, "tasks"))
	// The same changes through the rw mount work.
	testutil.MustWrite(t, filepath.Join(rw, "c", "cgroup.clone_children"), "0")
	if err := do("chmod", func() error { return unix.Chmod(filepath.Join(rw, "c", "tasks"), 0o664) }); err != nil {
		t.Errorf("chmod on rw: %v", err)
	}
	rmdir(t, filepath.Join(rw, "c"))
	umount(t, ro)
	umount(t, rw)
}

// asUser is a command run as u.
func asUser(u testutil.User, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	return cmd
}

// runAs runs a command as u, bounded in time, and returns its combined
// output and exit status.
func runAs(t *testing.T, u testutil.User, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := asUser(u, env, name, args...)
	cmd.WaitDelay = time.Second
	timer := time.AfterFunc(cmdTimeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("%s %v as %s: %v", name, args, u.Name, err)
	return "", -1
}

// sharedDir is a new directory every user may enter (t.TempDir's parent
// is root's alone), removed when the test ends.
func sharedDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "containerfs-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// userBinary is a copy of the containerfs binary that any user may run
// (testutil.Binary's directory is root's alone).
func userBinary(t *testing.T, bin string) string {
	t.Helper()
	dir := sharedDir(t, 0o755)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "containerfs")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// sleeperAs starts a sleep owned by u and returns its PID; it is killed
// when the test ends.
func sleeperAs(t *testing.T, u testutil.User) int {
	t.Helper()
	cmd := asUser(u, nil, "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// A user other than root may ask the daemon what every user may read in
// the kernel, and move its own processes into groups whose cgroup.procs it
// may write; anything else is refused with a clear EPERM, never a broken
// pipe, and the mount helper starts no daemon for it.
func TestUnprivilegedClient(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	// The test daemon's socket is in a private temporary directory: let the
	// user reach it, as it reaches /run/containerfs.sock.
	if err := os.Chmod(filepath.Dir(d.Socket), 0o755); err != nil {
		t.Fatal(err)
	}
	u := testutil.NewUser(t)
	dir := d.Mount("debug")
	mkdir(t, filepath.Join(dir, "mine"))
	mkdir(t, filepath.Join(dir, "roots"))
	for _, p := range []string{"mine", "mine/cgroup.procs", "mine/tasks"} {
		if err := os.Chown(filepath.Join(dir, p), int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	env := d.Env()
	bin := userBinary(t, d.Bin)
	own := sleeperAs(t, u)
	theirs := sleeper(t)

	for _, args := range [][]string{{"cgroup", strconv.Itoa(own)}, {"lssubsys"}, {"lscgroup"}, {"cgget", "-g", "debug:/mine"}, {"stats"}} {
		out, code := runAs(t, u, env, bin, args...)
		if code != 0 {
			t.Errorf("containerfs %s as %s: exit %d: %s", strings.Join(args, " "), u.Name, code, out)
		}
		if args[0] == "cgroup" && !strings.Contains(out, "debug:/") {
			t.Errorf("containerfs cgroup as %s: %q, want a debug line", u.Name, out)
		}
	}

	// Its own process into its own group: allowed, as echo PID > mine/cgroup.procs is.
	if out, code := runAs(t, u, env, bin, "classify", "-g", "debug:/mine", strconv.Itoa(own)); code != 0 {
		t.Errorf("classify own process into own group: exit %d: %s", code, out)
	}
	if tasks := testutil.ReadFile(t, filepath.Join(dir, "mine", "tasks")); !strings.Contains(tasks, strconv.Itoa(own)) {
		t.Errorf("mine/tasks %q: want %d", tasks, own)
	}
	// Into root's group (cgroup.procs 0644 root): EACCES, as open(2) gives.
	out, code := runAs(t, u, env, bin, "classify", "-g", "debug:/roots", strconv.Itoa(own))
	if code == 0 || !strings.Contains(out, syscall.EACCES.Error()) {
		t.Errorf("classify into root's group: exit %d: %q, want %q", code, out, syscall.EACCES.Error())
	}
	// Root's process into its own group: EACCES (the uid check of cgroup v1's procs write).
	out, code = runAs(t, u, env, bin, "classify", "-g", "debug:/mine", strconv.Itoa(theirs))
	if code == 0 || !strings.Contains(out, syscall.EACCES.Error()) {
		t.Errorf("classify root's process: exit %d: %q, want %q", code, out, syscall.EACCES.Error())
	}
	if tasks := testutil.ReadFile(t, filepath.Join(dir, "mine", "tasks")); strings.Contains(tasks, strconv.Itoa(theirs)+"\n") {
		t.Errorf("root's process %d moved by %s", theirs, u.Name)
	}
	// What is root's: a clear EPERM.
	for _, args := range [][]string{{"umount", dir}, {"reload"}, {"cgcreate", "-g", "debug:/x"}, {"classify", strconv.Itoa(own)}} {
		out, code := runAs(t, u, env, bin, args...)
		if code == 0 || !strings.Contains(out, syscall.EPERM.Error()) || strings.Contains(out, "broken pipe") {
			t.Errorf("containerfs %s as %s: exit %d: %q, want %q", strings.Join(args, " "), u.Name, code, out, syscall.EPERM.Error())
		}
	}
	if mountType(t, dir) != "fuse.container" || exists(t, filepath.Join(dir, "x")) {
		t.Error("a refused request changed something")
	}
}

// The mount helper refuses, with EPERM, to mount or start a daemon for a
// user other than root, and for root of another user namespace.
func TestHelperNeedsInitialRoot(t *testing.T) {
	testutil.Short(t)
	testutil.RequireRoot(t)
	bin := userBinary(t, testutil.Binary(t))
	u := testutil.NewUser(t)
	sockDir := sharedDir(t, 0o777)
	socket := filepath.Join(sockDir, "sock")
	env := append(os.Environ(), "CONTAINERFS_SOCKET="+socket)
	mnt := mountDir(t)
	if err := os.Chmod(mnt, 0o777); err != nil {
		t.Fatal(err)
	}
	check := func(who, out string, code int) {
		t.Helper()
		if code == 0 || !strings.Contains(out, syscall.EPERM.Error()) {
			t.Errorf("helper as %s: exit %d: %q, want a refusal with %q", who, code, out, syscall.EPERM.Error())
		}
		if _, err := os.Stat(socket); err == nil {
			t.Errorf("helper as %s started a daemon on %s", who, socket)
		}
		if typ := mountType(t, mnt); typ != "" {
			t.Errorf("helper as %s mounted %s", who, typ)
		}
	}
	out, code := runAs(t, u, env, bin, "mount", "-o", "debug", "container", mnt)
	check(u.Name, out, code)
	out, code = run(t, env, "unshare", "-Ur", bin, "mount", "-o", "debug", "container", mnt)
	check("root of unshare -Ur", out, code)
	if out, code := runAs(t, u, env, "unshare", "-Ur", "true"); code == 0 {
		out, code = runAs(t, u, env, "unshare", "-Ur", bin, "mount", "-o", "debug", "container", mnt)
		check(u.Name+" in unshare -Ur", out, code)
	} else {
		t.Logf("no user namespace for %s (%s): that case is not run", u.Name, strings.TrimSpace(out))
	}
}
