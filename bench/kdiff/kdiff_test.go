// Package kdiff is a differential fuzzer of control-file writes: every
// writable control file that a child of the kernel's cgroup v1 cpu,
// cpuacct, cpuset, freezer and pids hierarchies and a child of the same
// containerfs hierarchy both have is given the same adversarial inputs,
// one write(2) each, from the same starting value, and the errno and the
// value read back must be the same. The differences are reported as one
// table. It runs only with CONTAINERFS_BENCH=1, as root.
//
// Safety: it writes only in the bench-<random> children it makes (never a
// kernel root's files, never the memory, devices, blkio or systemd
// hierarchies); to tasks and cgroup.procs it writes only inputs that
// cannot name a process, or the PID of a sleep it started, which it puts
// back in the root's tasks (the one root write, with that PID only) before
// removing its child.
package kdiff

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/testutil"
)

// hierarchies are the kernel hierarchies compared, each mounted alone.
// The memory, devices, blkio and systemd hierarchies are never touched.
var hierarchies = []string{"cpu", "cpuacct", "cpuset", "freezer", "pids"}

// procFiles are the files whose inputs must not name a process.
var procFiles = map[string]bool{"tasks": true, "cgroup.procs": true}

// diff is one input answered differently.
type diff struct {
	hier, file, input string
	kErr, oErr        syscall.Errno
	kVal, oVal        string
}

func gate(t *testing.T) {
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("a measurement against the kernel, not a test: set CONTAINERFS_BENCH=1 to run it")
	}
	testutil.RequireRoot(t)
}

// TestKernelDiff runs every input on every common writable file of every
// hierarchy and reports the differences.
func TestKernelDiff(t *testing.T) {
	gate(t)
	// One sleep for each side: a task frozen by the kernel's freezer
	// could not be stopped by ours.
	ksleep, osleep := startSleep(t), startSleep(t)
	// --strict-v1: clone_children off in new hierarchies, as the kernel's.
	d := testutil.StartDaemon(t, "--strict-v1")
	var diffs []diff
	total := 0
	for _, h := range hierarchies {
		kroot := filepath.Join("/sys/fs/cgroup", h)
		if !isCgroupV1(kroot) {
			t.Logf("%s: no cgroup v1 hierarchy at %s: skipped", h, kroot)
			continue
		}
		kdir := kernelChild(t, kroot, ksleep)
		mnt := d.Mount(h)
		odir := filepath.Join(mnt, "kdiff")
		if err := os.Mkdir(odir, 0o755); err != nil {
			t.Fatalf("mkdir %s: %v", odir, err)
		}
		s := side{kroot: kroot, kdir: kdir, oroot: mnt, odir: odir, ksleep: ksleep, osleep: osleep}
		files := commonWritable(t, kdir, odir)
		for _, file := range files {
			n, ds := s.fuzz(t, h, file)
			total += n
			diffs = append(diffs, ds...)
		}
		// Again with our sleep in both children: the files whose answer
		// depends on the tasks inside (cpuset's lists, freezer.state).
		if !s.populate(t, h) {
			continue
		}
		for _, file := range files {
			if procFiles[file] {
				continue
			}
			n, ds := s.fuzz(t, h+"+task", file)
			total += n
			diffs = append(diffs, ds...)
		}
		s.depopulate(t)
	}
	report(t, total, diffs)
}

// side is the pair of children compared, and the roots they are in.
type side struct {
	kroot, kdir, oroot, odir string
	ksleep, osleep           int // our sleeps: the kernel's side's, ours'

}

// fuzz writes every input for file to both children and returns how many
// it wrote and the differences.
func (s side) fuzz(t *testing.T, hier, file string) (int, []diff) {
	kpath, opath := filepath.Join(s.kdir, file), filepath.Join(s.odir, file)
	kInit, oInit := read(kpath), read(opath)
	var diffs []diff
	if kInit != oInit {
		diffs = append(diffs, diff{hier: hier, file: file, input: "(initial value)", kVal: kInit, oVal: oInit})
	}
	reset := resetData(kInit)
	n := 0
	for _, data := range inputsFor(file) {
		if procFiles[file] {
			s.depopulate(t) // our sleeps back in both roots: the one root write
		} else {
			ke, oe := write(kpath, reset), write(opath, reset)
			if ke != 0 || oe != 0 {
				t.Errorf("%s/%s: reset to %q: kernel %s, containerfs %s", hier, file, reset, name(ke), name(oe))
				continue
			}
		}
		n++
		ke, oe := write(kpath, subst(data, s.ksleep)), write(opath, subst(data, s.osleep))
		kv, ov := settle(kpath, opath)
		kv, ov = unsubst(kv, s.ksleep), unsubst(ov, s.osleep)
		if ke != oe || kv != ov {
			diffs = append(diffs, diff{hier, file, data, ke, oe, kv, ov})
		}
	}
	// Leave the file as it was, so the next file starts from the defaults.
	if procFiles[file] {
		s.depopulate(t)
	} else {
		write(kpath, reset)
		write(opath, reset)
	}
	return n, diffs
}

// populate puts our sleep in both children (in cpuset, after giving both
// the root's CPUs and nodes), and says whether it could.
func (s side) populate(t *testing.T, hier string) bool {
	t.Helper()
	if hier == "cpuset" {
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v := resetData(read(filepath.Join(s.kroot, f))) // a read: roots are never written
			if ke, oe := write(filepath.Join(s.kdir, f), v), write(filepath.Join(s.odir, f), v); ke != 0 || oe != 0 {
				t.Errorf("%s: %s <- %q: kernel %s, containerfs %s", hier, f, v, name(ke), name(oe))
				return false
			}
		}
	}
	ke := write(filepath.Join(s.kdir, "tasks"), strconv.Itoa(s.ksleep))
	oe := write(filepath.Join(s.odir, "tasks"), strconv.Itoa(s.osleep))
	if ke != 0 || oe != 0 {
		t.Errorf("%s: tasks <- our sleep: kernel %s, containerfs %s", hier, name(ke), name(oe))
		s.depopulate(t)
		return false
	}
	return true
}

// depopulate puts our sleeps back in both roots (in the kernel, the one
// root write, with our sleep's PID only).
func (s side) depopulate(t *testing.T) {
	write(filepath.Join(s.kroot, "tasks"), strconv.Itoa(s.ksleep))
	write(filepath.Join(s.oroot, "tasks"), strconv.Itoa(s.osleep))
}

// settle reads both files back; a state still moving (freezer's FREEZING)
// is read again for a while before the two are called different.
func settle(kpath, opath string) (string, string) {
	kv, ov := read(kpath), read(opath)
	for i := 0; kv != ov && i < 20 && (strings.Contains(kv+ov, "FREEZING")); i++ {
		time.Sleep(25 * time.Millisecond)
		kv, ov = read(kpath), read(opath)
	}
	return kv, ov
}

// resetData is what, written, gives the file its initial value back: the
// value read, without its newline ("\n" for an empty value, since an empty
// write changes nothing).
func resetData(v string) string {
	v = strings.TrimSuffix(v, "\n")
	if v == "" {
		return "\n"
	}
	return v
}

// commonWritable lists the files both children have that the owner may
// write, sorted.
func commonWritable(t *testing.T, kdir, odir string) []string {
	t.Helper()
	writable := func(dir string) map[string]bool {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, e := range ents {
			fi, err := e.Info()
			if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o200 != 0 {
				m[e.Name()] = true
			}
		}
		return m
	}
	k, o := writable(kdir), writable(odir)
	var both []string
	for f := range k {
		if o[f] {
			both = append(both, f)
		} else {
			t.Logf("%s: writable in the kernel only", filepath.Join(kdir, f))
		}
	}
	for f := range o {
		if !k[f] {
			t.Logf("%s: writable in containerfs only", filepath.Join(odir, f))
		}
	}
	sort.Strings(both)
	return both
}

func isCgroupV1(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC
}

// kernelChild makes a bench-<random> child of the kernel hierarchy root.
// When the test ends, even failed, our sleep is put back in the root's
// tasks (if it is in the child) and the child is removed.
func kernelChild(t *testing.T, root string, sleep int) string {
	t.Helper()
	var rnd [6]byte
	rand.Read(rnd[:])
	dir := filepath.Join(root, "bench-"+hex.EncodeToString(rnd[:]))
	if !strings.HasPrefix(filepath.Base(dir), "bench-") || filepath.Dir(dir) != root {
		t.Fatalf("refusing to make %s", dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "freezer.state")); err == nil {
			write(filepath.Join(dir, "freezer.state"), "THAWED")
		}
		if strings.Contains(" "+strings.ReplaceAll(read(filepath.Join(dir, "tasks")), "\n", " "), " "+strconv.Itoa(sleep)+" ") {
			write(filepath.Join(root, "tasks"), strconv.Itoa(sleep))
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				t.Errorf("rmdir %s: %v (tasks: %q)", dir, err, read(filepath.Join(dir, "tasks")))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

// startSleep starts a sleep of our own, the only process whose PID is
// written to tasks and cgroup.procs; it is killed when the test ends.
func startSleep(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := testutil.StartOwned(cmd, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return pid
}

// write is one write(2) of data to path, and its errno.
func write(path, data string) syscall.Errno {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err.(syscall.Errno)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(data)); err != nil {
		return err.(syscall.Errno)
	}
	return 0
}

func read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func name(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}

// show quotes s in ASCII, shortened past 40 bytes.
func show(s string) string {
	if len(s) > 40 {
		return strconv.QuoteToASCII(s[:20]) + "..." + strconv.Itoa(len(s)) + "B"
	}
	return strconv.QuoteToASCII(s)
}

// report logs every difference as one table, with the reason of the known
// ones (knownDiffs), and fails on the others.
func report(t *testing.T, total int, diffs []diff) {
	var b strings.Builder
	unknown := 0
	fmt.Fprintf(&b, "%d writes compared, %d differences\n", total, len(diffs))
	if len(diffs) > 0 {
		fmt.Fprintf(&b, "%-12s %-32s %-30s %-7s %-7s %-16s %-16s %s\n", "hier", "file", "input", "kernel", "ours", "kernel reads", "ours reads", "known: why")
		for _, d := range diffs {
			why := reason(d)
			if why == "" {
				unknown++
				why = "NEW"
			}
			fmt.Fprintf(&b, "%-12s %-32s %-30s %-7s %-7s %-16s %-16s %s\n", d.hier, d.file, show(d.input),
				name(d.kErr), name(d.oErr), show(d.kVal), show(d.oVal), why)
		}
	}
	t.Log("\n" + b.String())
	if unknown > 0 {
		t.Errorf("%d differences from the kernel not in knownDiffs (table above)", unknown)
	}
}
