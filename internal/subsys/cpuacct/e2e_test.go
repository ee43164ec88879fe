package cpuacct

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

// mount starts a daemon, mounts cpuacct, and makes the containers named
// (paths like "a/b", parents first). Containers are removed when the test
// ends, after its processes are gone (cleanups run last-registered first).
func mount(t *testing.T, dirs ...string) string {
	t.Helper()
	_, mnt := mountD(t, dirs...)
	return mnt
}

// mountD is mount, also returning the daemon.
func mountD(t *testing.T, dirs ...string) (*testutil.Daemon, string) {
	t.Helper()
	d := testutil.StartDaemon(t)
	mnt := d.Mount("cpuacct")
	for _, name := range dirs {
		dir := filepath.Join(mnt, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
				time.Sleep(20 * time.Millisecond) // exits still on their way
			}
		})
	}
	return d, mnt
}

func readU64(t *testing.T, path string) int64 {
	t.Helper()
	s := testutil.ReadFile(t, path)
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", path, s, err)
	}
	return v
}

func usage(t *testing.T, dir string) int64 { return readU64(t, filepath.Join(dir, "cpuacct.usage")) }

func moveIn(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := testutil.WriteFile(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		t.Fatalf("move %d into %s: %v", pid, dir, err)
	}
}

// near tells whether got is within frac of want, or within slack.
func near(got, want int64, frac float64, slack time.Duration) bool {
	d := math.Abs(float64(got - want))
	return d <= frac*float64(want) || d <= float64(slack)
}

func ms(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 1, 64) + "ms" }

func sumFields(t *testing.T, s string) int64 {
	t.Helper()
	var sum int64
	for _, f := range strings.Fields(s) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		sum += v
	}
	return sum
}

// TestFiles checks the files, their modes and their formats, in the root
// and in a child, against the kernel's cpuacct.
func TestFiles(t *testing.T) {
	testutil.Short(t)
	mnt := mount(t, "c")
	ncpu := possibleCPUs()
	modes := map[string]os.FileMode{
		"cpuacct.usage": 0o644, "cpuacct.usage_user": 0o444, "cpuacct.usage_sys": 0o444,
		"cpuacct.usage_percpu": 0o444, "cpuacct.usage_percpu_user": 0o444,
		"cpuacct.usage_percpu_sys": 0o444, "cpuacct.usage_all": 0o444, "cpuacct.stat": 0o444,
	}
	for _, dir := range []string{mnt, filepath.Join(mnt, "c")} {
		for name, mode := range modes {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s mode: got %v, want %v", name, fi.Mode().Perm(), mode)
			}
		}
		for _, name := range []string{"usage_percpu", "usage_percpu_user", "usage_percpu_sys"} {
			s := testutil.ReadFile(t, filepath.Join(dir, "cpuacct."+name))
			// cgroup v1 prints "%llu " per CPU, then "\n".
			if !strings.HasSuffix(s, " \n") || len(strings.Fields(s)) != ncpu {
				t.Errorf("%s: got %q, want %d numbers each followed by a space, then a newline", name, s, ncpu)
			}
		}
		all := strings.Split(testutil.ReadFile(t, filepath.Join(dir, "cpuacct.usage_all")), "\n")
		if len(all) != ncpu+2 || all[0] != "cpu user system" || all[ncpu+1] != "" {
			t.Errorf("usage_all: got %q, want a header and %d lines", all, ncpu)
		}
		for i := 1; i <= ncpu && i < len(all); i++ {
			if f := strings.Fields(all[i]); len(f) != 3 || f[0] != strconv.Itoa(i-1) {
				t.Errorf("usage_all line %d: got %q, want \"%d USER SYSTEM\"", i, all[i], i-1)
			}
		}
		stat := testutil.ReadFile(t, filepath.Join(dir, "cpuacct.stat"))
		var u, s int64
		if n, _ := fmtSscanf(stat, "user %d\nsystem %d\n", &u, &s); n != 2 || !strings.HasSuffix(stat, "\n") {
			t.Errorf("stat: got %q, want \"user N\\nsystem N\\n\"", stat)
		}
	}
	// The root shows the machine, as the kernel's root does.
	root := usage(t, mnt)
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil {
		k, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if !near(root, k, 0.05, 0) {
			t.Errorf("root usage: got %s, want within 5%% of the kernel's root cpuacct.usage %s", ms(root), ms(k))
		}
		t.Logf("root usage %s, the kernel's %s", ms(root), ms(k))
	}
	if c := usage(t, filepath.Join(mnt, "c")); c != 0 {
		t.Errorf("usage of a new container: got %d, want 0", c)
	}
}

// TestBusyLoop: a busy loop in a container for a second is charged what
// it used while a member, within 3%, to the container and its parent; the
// time it spent before, in the root, is not.
func TestBusyLoop(t *testing.T) {
	testutil.Short(t)
	mnt := mount(t, "a", "a/b")
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "a/b")
	w := startWorker(t)
	w.do("spin 300") // in the root: must not count
	moveIn(t, b, w.pid)
	c0 := w.do("cpu")
	c1 := w.do("spin 1000")
	ub, ua := usage(t, b), usage(t, a)
	c2 := w.do("cpu")
	t.Logf("worker used %s between the move and the read; a/b shows %s, a %s", ms(c1-c0), ms(ub), ms(ua))
	if ub < c1-c0-(c1-c0)*3/100 || ub > c2-c0+(c1-c0)*3/100 {
		t.Errorf("a/b usage: got %s, want %s to %s within 3%%", ms(ub), ms(c1-c0), ms(c2-c0))
	}
	if ua < ub {
		t.Errorf("a usage %s below its child's %s: charges must reach ancestors", ms(ua), ms(ub))
	}
	// The figures agree with each other.
	pc := sumFields(t, testutil.ReadFile(t, filepath.Join(b, "cpuacct.usage_percpu")))
	u := readU64(t, filepath.Join(b, "cpuacct.usage_user"))
	s := readU64(t, filepath.Join(b, "cpuacct.usage_sys"))
	total := usage(t, b)
	if pc < ub || pc > total {
		t.Errorf("sum of usage_percpu %d, want between the usage before (%d) and after (%d)", pc, ub, total)
	}
	if u+s > total || u < total*8/10 {
		t.Errorf("usage_user %s + usage_sys %s against usage %s: want the sum no more than usage, and user at least 80%% of a busy loop", ms(u), ms(s), ms(total))
	}
	var su, ss int64
	fmtSscanf(testutil.ReadFile(t, filepath.Join(b, "cpuacct.stat")), "user %d\nsystem %d\n", &su, &ss)
	if d := (su+ss)*nsPerTick - total; d > 2*nsPerTick || d < -2*nsPerTick {
		t.Errorf("stat user %d + system %d ticks: want usage %s in ticks", su, ss, ms(total))
	}
}

// TestMovedInBringsNothing: a task that ran a second in the root brings
// none of it along; then it is charged from the move.
func TestMovedInBringsNothing(t *testing.T) {
	testutil.Short(t)
	mnt := mount(t, "c")
	c := filepath.Join(mnt, "c")
	w := startWorker(t)
	w.do("spin 1000")
	moveIn(t, c, w.pid)
	if u := usage(t, c); u > 20e6 {
		t.Errorf("usage right after moving in a task that ran 1s: got %s, want under 20ms", ms(u))
	}
	c0 := w.do("cpu")
	c1 := w.do("spin 300")
	if u := usage(t, c); !near(u, c1-c0, 0.03, 5*time.Millisecond) {
		t.Errorf("usage: got %s, want %s within 3%%", ms(u), ms(c1-c0))
	}
}

// TestMoveBetween: the old container keeps what the task used there, and
// the parent has both.
func TestMoveBetween(t *testing.T) {
	testutil.Short(t)
	mnt := mount(t, "p", "p/x", "p/y")
	p, x, y := filepath.Join(mnt, "p"), filepath.Join(mnt, "p/x"), filepath.Join(mnt, "p/y")
	w := startWorker(t)
	moveIn(t, x, w.pid)
	c0 := w.do("cpu")
	c1 := w.do("spin 300")
	moveIn(t, y, w.pid)
	c2 := w.do("spin 300")
	ux, uy, up := usage(t, x), usage(t, y), usage(t, p)
	c3 := w.do("cpu")
	t.Logf("x %s (worker %s), y %s (worker %s), p %s", ms(ux), ms(c1-c0), ms(uy), ms(c2-c1), ms(up))
	if !near(ux, c1-c0, 0.03, 5*time.Millisecond) {
		t.Errorf("x usage: got %s, want %s", ms(ux), ms(c1-c0))
	}
	if !near(uy, c2-c1, 0.03, 5*time.Millisecond) {
		t.Errorf("y usage: got %s, want %s", ms(uy), ms(c2-c1))
	}
	if up < ux+uy || up > c3-c0+5e6 {
		t.Errorf("p usage: got %s, want at least x+y %s and at most %s", ms(up), ms(ux+uy), ms(c3-c0))
	}
	// Moving back to the root ends the charging.
	moveIn(t, mnt, w.pid)
	before := usage(t, y)
	w.do("spin 200")
	if after := usage(t, y); after != before {
		t.Errorf("y usage after its task left: got %s, want %s as it was", ms(after), ms(before))
	}
}

// TestShortLived: children that live for tens of milliseconds, and
// threads that exit, are charged in full: through their exit records, and
// for what the records miss at the end of each child, through the parent's
// cutime once it has reaped them.
func TestShortLived(t *testing.T) {
	testutil.Short(t)
	mnt := mount(t, "c")
	c := filepath.Join(mnt, "c")
	w := startWorker(t)
	moveIn(t, c, w.pid)
	c0 := w.do("cpu")
	children := w.do("spawn 40 20000 2")
	c1 := w.do("threads 4 100")
	want := children + c1 - c0
	var got int64
	// Reconciling with the parent's cutime takes a few hundred ms.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got = usage(t, c); near(got, want, 0.01, 0) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("40 children used %s, the worker %s (4 threads of 100ms that exited); usage %s (%+.2f%%)",
		ms(children), ms(c1-c0), ms(got), 100*float64(got-want)/float64(want))
	if !near(got, want, 0.02, 0) {
		t.Errorf("usage: got %s, want %s within 2%%", ms(got), ms(want))
	}
}

// TestReset: writing 0 resets the container's own counters, and not its
// parent's; anything else is EINVAL and changes nothing. The root accepts
// 0 and stays as it is, as the kernel's does.
func TestReset(t *testing.T) {
	testutil.Short(t)
	mnt := mount(t, "a", "a/b")
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "a/b")
	w := startWorker(t)
	moveIn(t, b, w.pid)
	w.do("spin 200")
	ua := usage(t, a)
	for _, bad := range []string{"1", "-1", "abc", "0 0", " 0", "0 "} { // write_u64: kstrtoull strips nothing
		err := testutil.WriteFile(t, filepath.Join(b, "cpuacct.usage"), bad)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("write %q: got %v, want EINVAL", bad, err)
		}
	}
	if ub := usage(t, b); ub < 150e6 {
		t.Errorf("usage after refused writes: got %s, want about 200ms", ms(ub))
	}
	for _, zero := range []string{"0", "0\n", "0x0", "+00"} {
		if err := testutil.WriteFile(t, filepath.Join(b, "cpuacct.usage"), zero); err != nil {
			t.Fatalf("write %q: %v", zero, err)
		}
		if ub := usage(t, b); ub > 2e6 {
			t.Errorf("usage after writing %q: got %s, want about 0", zero, ms(ub))
		}
	}
	if s := sumFields(t, testutil.ReadFile(t, filepath.Join(b, "cpuacct.usage_percpu"))); s > 2e6 {
		t.Errorf("usage_percpu after reset sums to %s, want about 0", ms(s))
	}
	if got := usage(t, a); got < ua {
		t.Errorf("parent usage after the child's reset: got %s, want at least %s", ms(got), ms(ua))
	}
	c0 := w.do("cpu")
	c1 := w.do("spin 200")
	if ub := usage(t, b); !near(ub, c1-c0, 0.03, 5*time.Millisecond) {
		t.Errorf("usage after reset and 200ms: got %s, want %s", ms(ub), ms(c1-c0))
	}
	r0 := usage(t, mnt)
	if err := testutil.WriteFile(t, filepath.Join(mnt, "cpuacct.usage"), "0"); err != nil {
		t.Errorf("root write 0: got %v, want success", err)
	}
	if r1 := usage(t, mnt); r1 < r0 {
		t.Errorf("root usage after write 0: got %s, want it unchanged (%s)", ms(r1), ms(r0))
	}
	if err := testutil.WriteFile(t, filepath.Join(mnt, "cpuacct.usage"), "7"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("root write 7: got %v, want EINVAL", err)
	}
}
