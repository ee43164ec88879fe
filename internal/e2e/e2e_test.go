package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestSeedSession is the seed article's session as the README gives it,
// typed into one root shell, with mount(8) finding the helper:
//
//	mount -t container none /containers
//	mkdir /containers/new_container
//	echo $$ > /containers/new_container/tasks
//
// "fresh" starts from a daemon with nothing mounted, as mount.container
// leaves it when it starts one; "readme" first runs the README's set-up,
// serve --mount, so that the session's mount is a second view stacked on it.
func TestSeedSession(t *testing.T) {
	testutil.Short(t)
	t.Run("fresh", func(t *testing.T) {
		d := testutil.StartDaemon(t)
		installHelper(t, d.Bin)
		seedSession(t, d, mountDir(t), mountDir(t), false)
	})
	t.Run("readme", func(t *testing.T) {
		dir, dir2 := mountDir(t), mountDir(t)
		d := testutil.StartDaemon(t, "--mount", dir)
		installHelper(t, d.Bin)
		if typ := mountType(t, dir); typ != "fuse.container" {
			t.Fatalf("serve --mount %s: /proc/mounts type %q, want fuse.container", dir, typ)
		}
		seedSession(t, d, dir, dir2, true)
	})
}

func seedSession(t *testing.T, d *testutil.Daemon, dir, dir2 string, stacked bool) {
	all := knownSubsys(t, d)
	dir3 := mountDir(t)
	// Stop at once if the mount did not happen: the session's writes would
	// go to the plain directory underneath.
	script := fmt.Sprintf(`mount -t container none %[1]s; echo "mount $?"
type=$(awk '$2 == "%[1]s" { t = $3 } END { print t }' /proc/mounts); echo "type $type"
[ "$type" = fuse.container ] || exit 1
mkdir %[1]s/new_container; echo "mkdir $?"
echo $$ > %[1]s/new_container/tasks; st=$?; echo "echo $st"
[ $st = 0 ] || { /bin/echo $$ > %[1]s/new_container/tasks; cat %[1]s/cgroup.clone_children %[1]s/new_container/cpuset.cpus; } >&2
echo "shell $$"
cat %[1]s/new_container/tasks; echo "cat $?"
mount -t container -o debug debug %[2]s; echo "debug $?"
mount -t container -o debug,name=other debug %[3]s; echo "named $?"
echo $$ > %[1]s/tasks; echo "back $?"
rmdir %[1]s/new_container; echo "rmdir $?"
umount %[1]s; echo "umount $?"
`, dir, dir2, dir3)
	out, _ := sh(t, d, script)
	t.Logf("session:\n%s", out)
	status := map[string]string{}
	var catLines []string
	inCat := false
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch {
		case k == "shell":
			inCat = true
		case k == "cat":
			inCat = false
		case inCat:
			catLines = append(catLines, line)
			continue
		}
		if _, dup := status[k]; !dup {
			status[k] = v
		}
	}
	want := func(step, v, why string) {
		t.Helper()
		if status[step] != v {
			t.Errorf("%s: got %q, want %q (%s)", step, status[step], v, why)
		}
	}
	want("mount", "0", "mount -t container none DIR")
	want("type", "fuse.container", "/proc/mounts during the mount")
	want("mkdir", "0", "mkdir new_container")
	// The shell's echo hides the errno ("I/O error"): on failure the
	// script shows /bin/echo's, then the root's clone_children and
	// new_container's cpuset.cpus.
	want("echo", "0", "echo $$ > new_container/tasks moves the shell; see the session's log")
	if !slices.Contains(catLines, status["shell"]) {
		t.Errorf("cat new_container/tasks after echo $$: got %q, want the shell's PID %s in it", catLines, status["shell"])
	}
	// -o debug asks for exactly {debug}. While debug is the only subsystem,
	// that is the set of the first mount, so it is another view of the
	// same hierarchy; once there are others, debug is bound elsewhere.
	if slices.Equal(all, []string{"debug"}) {
		want("debug", "0", "-o debug, the same set as all: another view")
	} else {
		want("debug", "32", fmt.Sprintf("-o debug while debug is bound with %v: EBUSY", all))
		if !strings.Contains(strings.ToLower(out), "busy") {
			t.Errorf("mount -o debug printed no EBUSY message")
		}
	}
	// debug is bound to the first hierarchy: a hierarchy with another
	// name cannot have it.
	want("named", "32", "-o debug,name=other while debug is bound: EBUSY")
	if typ := mountType(t, dir3); typ != "" {
		t.Errorf("%s is mounted (%s) after a failed mount", dir3, typ)
	}
	want("back", "0", "echo $$ > tasks, back to the root")
	want("rmdir", "0", "rmdir new_container")
	want("umount", "0", "umount DIR")
	wantType := ""
	if stacked {
		wantType = "fuse.container" // serve --mount's view is still there
	}
	if typ := mountType(t, dir); typ != wantType {
		t.Errorf("%s after the session's umount: /proc/mounts type %q, want %q", dir, typ, wantType)
	}
}

// knownSubsys lists the daemon's subsystems.
func knownSubsys(t *testing.T, d *testutil.Daemon) []string {
	t.Helper()
	out, err := d.CLI("lssubsys")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

// TestTwoHierarchies: a task is in one container per hierarchy, and the CLI
// prints the kernel's tables.
func TestTwoHierarchies(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	a := d.Mount("name=a,none")
	dbg := d.Mount("debug")
	mkdir(t, filepath.Join(a, "x"))
	mkdir(t, filepath.Join(dbg, "y"))
	mkdir(t, filepath.Join(dbg, "y", "z"))
	pid := sleeper(t)
	for _, tasks := range []string{filepath.Join(a, "x", "tasks"), filepath.Join(dbg, "y", "z", "tasks")} {
		if err := testutil.WriteFile(t, tasks, strconv.Itoa(pid)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := d.CLI("cgroup", strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/cgroup lists the newest hierarchy first.
	if want := "2:debug:/y/z\n1:name=a:/x\n"; out != want {
		t.Errorf("containerfs cgroup %d: got %q, want %q", pid, out, want)
	}
	header, rows := lssubsys(t, d)
	if want := "#subsys_name\thierarchy\tnum_cgroups\tenabled"; header != want {
		t.Errorf("lssubsys header: got %q, want %q", header, want)
	}
	for name, row := range rows {
		want := [3]int{0, 1, 1} // unbound: the default hierarchy's root
		if name == "debug" {
			want = [3]int{2, 3, 1}
		}
		if row != want {
			t.Errorf("lssubsys %s: got %v, want %v", name, row, want)
		}
	}
	if _, ok := rows["debug"]; !ok {
		t.Errorf("lssubsys does not list debug")
	}
	// Moving the task in one hierarchy leaves it where it is in the other.
	if err := testutil.WriteFile(t, filepath.Join(dbg, "tasks"), strconv.Itoa(pid)); err != nil {
		t.Fatal(err)
	}
	out, err = d.CLI("cgroup", strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := "2:debug:/\n1:name=a:/x\n"; out != want {
		t.Errorf("containerfs cgroup %d after moving it to debug's root: got %q, want %q", pid, out, want)
	}
}

// TestHierarchyLifetime: a hierarchy with a child container outlives its
// last mount and comes back, child and all, with the next matching mount;
// an empty one is torn down and its subsystems are free again.
func TestHierarchyLifetime(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	t.Run("subsystem", func(t *testing.T) {
		first := d.Mount("debug")
		mkdir(t, filepath.Join(first, "keep"))
		debugRow(t, d, [3]int{1, 2, 1})
		umount(t, first)
		debugRow(t, d, [3]int{1, 2, 1})

		again := d.Mount("debug")
		if !exists(t, filepath.Join(again, "keep", "tasks")) {
			t.Fatalf("%s: the child made before the umount is gone", again)
		}
		if got := testutil.ReadFile(t, filepath.Join(again, "debug.hierarchy_id")); got != "1\n" {
			t.Errorf("debug.hierarchy_id of the mount that came back: got %q, want %q", got, "1\n")
		}
		rmdir(t, filepath.Join(again, "keep"))
		umount(t, again)
		debugRow(t, d, [3]int{0, 1, 1})

		// Free again: a hierarchy with another name can take it.
		other := d.Mount("debug,name=other")
		if exists(t, filepath.Join(other, "keep")) {
			t.Errorf("%s: a new hierarchy shows the old one's child", other)
		}
		umount(t, other)
		debugRow(t, d, [3]int{0, 1, 1})
	})
	t.Run("named", func(t *testing.T) {
		first := d.Mount("none,name=keep")
		mkdir(t, filepath.Join(first, "child"))
		umount(t, first)
		// name= alone finds an existing hierarchy.
		again := d.Mount("name=keep")
		if !exists(t, filepath.Join(again, "child", "tasks")) {
			t.Fatalf("%s: the child made before the umount is gone", again)
		}
		rmdir(t, filepath.Join(again, "child"))
		umount(t, again)
		dir := mountDir(t)
		eventually(t, 5*time.Second, func() error {
			err := d.TryMount("name=keep", dir)
			if err == nil {
				umount(t, dir)
				return errors.New("mount -o name=keep succeeded after the empty hierarchy's last umount")
			}
			if !strings.Contains(err.Error(), "invalid argument") {
				t.Fatalf("mount -o name=keep of a torn-down hierarchy: got %v, want EINVAL", err)
			}
			return nil
		})
	})
}

// TestDaemonStaysInRoot: the daemon refuses to move itself, by PID, by
// thread ID, or by thread group.
func TestDaemonStaysInRoot(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	root := d.Mount("debug")
	dir := filepath.Join(root, "c")
	mkdir(t, dir)
	self := d.Cmd.Process.Pid
	ids := []int{self}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", self))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil && tid != self {
			ids = append(ids, tid)
			break
		}
	}
	for _, id := range ids {
		for _, file := range []string{"tasks", "cgroup.procs"} {
			err := testutil.WriteFile(t, filepath.Join(dir, file), strconv.Itoa(id))
			if !errors.Is(err, syscall.EPERM) {
				t.Errorf("writing the daemon's %d (PID %d) to %s: got %v, want EPERM", id, self, file, err)
			}
		}
	}
	if got := testutil.ReadFile(t, filepath.Join(dir, "tasks")); got != "" {
		t.Errorf("%s/tasks: got %q, want it empty", dir, got)
	}
	if got := testutil.ReadFile(t, filepath.Join(root, "tasks")); !slices.Contains(strings.Fields(got), strconv.Itoa(self)) {
		t.Errorf("root's tasks does not list the daemon %d", self)
	}
}

// TestSIGTERMUnmountsEverything: the daemon unmounts every mount when told
// to stop, a busy one too.
func TestSIGTERMUnmountsEverything(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	a := d.Mount("debug")
	b := d.Mount("none,name=b")
	c := d.Mount("name=b") // a second view of b
	mkdir(t, filepath.Join(a, "child"))
	// Keep one mount busy with an open file.
	var f *os.File
	if err := testutil.Do(t, "open", func() error {
		var err error
		f, err = os.Open(filepath.Join(b, "tasks"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer testutil.Do(t, "close", f.Close)
	pid := d.Cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() error {
		for _, dir := range []string{a, b, c} {
			if typ := mountType(t, dir); typ != "" {
				return fmt.Errorf("%s still mounted (%s) after SIGTERM", dir, typ)
			}
		}
		if !processGone(pid) {
			return fmt.Errorf("daemon %d still runs after SIGTERM", pid)
		}
		return nil
	})
}

// TestSIGTERMUnmountsServeMount: the mount made by `serve --mount` is gone
// when the daemon has exited after SIGTERM (the daemon once returned from
// its serving loop, and exited, before unmounting).
func TestSIGTERMUnmountsServeMount(t *testing.T) {
	testutil.Short(t)
	dir := mountDir(t)
	d := testutil.StartDaemon(t, "--mount", dir, "-o", "debug")
	eventually(t, 10*time.Second, func() error {
		if typ := mountType(t, dir); typ != "fuse.container" {
			return fmt.Errorf("%s: mount type %q, want fuse.container", dir, typ)
		}
		return nil
	})
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pid := d.Cmd.Process.Pid
	eventually(t, 15*time.Second, func() error {
		if !processGone(pid) {
			return fmt.Errorf("daemon %d still runs after SIGTERM", pid)
		}
		return nil
	})
	if typ := mountType(t, dir); typ != "" {
		t.Errorf("%s still mounted (%s) after the daemon exited", dir, typ)
	}
}

// TestHelperStartsDaemon: mount.container starts the daemon when none
// answers, and the next mount uses the same daemon.
func TestHelperStartsDaemon(t *testing.T) {
	testutil.Short(t)
	testutil.RequireRoot(t)
	bin := testutil.Binary(t)
	tmp, err := os.MkdirTemp("", "containerfs-e2e-helper-")
	if err != nil {
		t.Fatal(err)
	}
	sock, logPath, link := filepath.Join(tmp, "sock"), filepath.Join(tmp, "log"), filepath.Join(tmp, "mount.container")
	mnt1, mnt2 := filepath.Join(tmp, "m1"), filepath.Join(tmp, "m2")
	for _, dir := range []string{mnt1, mnt2} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CONTAINERFS_SOCKET="+sock, "CONTAINERFS_LOG="+logPath)
	t.Cleanup(func() {
		// Unmount first, then stop the daemon the helper started, if it
		// is the one on our socket; remove only what the test made.
		for _, dir := range []string{mnt2, mnt1} {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
		if pid := daemonPID(logPath); pid > 0 && isDaemonOn(pid, sock) {
			syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(10 * time.Second)
			for !processGone(pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !processGone(pid) {
				t.Errorf("cleanup: daemon %d ignored SIGTERM; killing it", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("daemon log:\n%s", b)
		}
		for _, p := range []string{mnt1, mnt2, link, sock, logPath, tmp} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	// As mount(8) calls it: SOURCE DIR -o OPTIONS.
	if out, code := run(t, env, link, "none", mnt1, "-o", "rw,debug"); code != 0 {
		t.Fatalf("mount.container with no daemon running: exit %d: %s", code, out)
	}
	if typ := mountType(t, mnt1); typ != "fuse.container" {
		t.Fatalf("/proc/mounts type of %s: got %q, want fuse.container", mnt1, typ)
	}
	pid := daemonPID(logPath)
	if pid == 0 || !isDaemonOn(pid, sock) {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("no daemon on %s found from its log:\n%s", sock, b)
	}
	if out, code := run(t, env, link, "none", mnt2, "-o", "none,name=second"); code != 0 {
		t.Fatalf("second mount.container: exit %d: %s", code, out)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), " listening on "); n != 1 {
		t.Errorf("daemons started: %d, want 1 (the second mount should use the first daemon):\n%s", n, b)
	}
	if !strings.Contains(testutil.ReadFile(t, filepath.Join(mnt2, "tasks")), "\n") {
		t.Errorf("%s/tasks is empty", mnt2)
	}
	out, code := run(t, env, bin, "lssubsys")
	if code != 0 || !strings.Contains(out, "debug\t1\t1\t1\n") {
		t.Errorf("lssubsys from the started daemon: exit %d, %q; want debug on hierarchy 1", code, out)
	}
}

var listening = regexp.MustCompile(`containerfs daemon (\d+) listening on `)

// daemonPID reads the started daemon's PID from its log, 0 if none.
func daemonPID(logPath string) int {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	m := listening.FindSubmatch(b)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// isDaemonOn tells whether pid is `containerfs serve --socket sock`, so that
// a test never signals a process it did not start.
func isDaemonOn(pid int, sock string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	return len(args) >= 4 && filepath.Base(args[0]) == "containerfs" &&
		slices.Equal(args[1:4], []string{"serve", "--socket", sock})
}

// TestStaleMountRemoved: a daemon killed with SIGKILL leaves its mounts
// answering ENOTCONN; the next daemon removes them at start-up, and the
// directory can be mounted again.
func TestStaleMountRemoved(t *testing.T) {
	testutil.Short(t)
	d1 := testutil.StartDaemon(t)
	dir := d1.Mount("debug")
	mkdir(t, filepath.Join(dir, "child"))
	if err := d1.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Any daemon that starts meanwhile (another test's) removes the stale
	// mount, as this test wants its own second daemon to.
	removed := false
	eventually(t, 10*time.Second, func() error {
		if mountType(t, dir) == "" {
			removed = true
			return nil
		}
		var st unix.Statfs_t
		err := testutil.Do(t, "statfs "+dir, func() error { return unix.Statfs(dir, &st) })
		if !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("statfs %s after SIGKILL: got %v, want ENOTCONN", dir, err)
		}
		return nil
	})
	if removed {
		t.Skip("another process's daemon started and removed the stale mount first; nothing left to check")
	}

	d2 := testutil.StartDaemon(t)
	if typ := mountType(t, dir); typ != "" {
		t.Fatalf("%s still mounted (%s) after a new daemon started", dir, typ)
	}
	if err := d2.TryMount("debug", dir); err != nil {
		t.Fatalf("mounting %s again: %v", dir, err)
	}
	if exists(t, filepath.Join(dir, "child")) {
		t.Errorf("%s: the new daemon's hierarchy shows the dead one's child", dir)
	}
}
