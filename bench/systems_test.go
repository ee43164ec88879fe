package bench

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
)

// A system is one of the things compared: the floor, containerfs or the
// kernel. Containers are made as directories of dir.
type system struct {
	name string
	dir  string
	pid  int    // the serving process; 0 for the kernel
	log  string // its log (every FUSE request with debug)
	note string // the kernel's hierarchy
}

const (
	floorName = "floor"
	cfsName   = "containerfs"
	kernName  = "kernel"
)

// setup options.
type setup struct {
	debug    bool     // log every FUSE request
	env      []string // extra environment of the serving processes
	noKernel bool     // no kernel column
}

// systems starts the floor and containerfs and makes a kernel cgroup, if
// the kernel has a cgroup v1 hierarchy we may use. All of it is undone when
// the test ends.
func systems(tb testing.TB, o setup) []*system {
	tb.Helper()
	testutil.RequireRoot(tb)
	ss := []*system{startFloor(tb, o), startContainerfs(tb, o)}
	if o.noKernel {
		return ss
	}
	if k := kernelCgroup(tb); k != nil {
		ss = append(ss, k)
	}
	return ss
}

// moduleRoot is the directory of go.mod.
func moduleRoot(tb testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

var (
	floorOnce sync.Once
	floorBin  string
	floorErr  error
)

// floorBinary builds bench/floorfs once per test process.
func floorBinary(tb testing.TB) string {
	tb.Helper()
	floorOnce.Do(func() {
		root := moduleRoot(tb)
		dir, err := os.MkdirTemp("", "floorfs-bin-")
		if err != nil {
			floorErr = err
			return
		}
		keepBinDir(dir)
		floorBin = filepath.Join(dir, "floorfs")
		cmd := exec.Command("go", "build", "-o", floorBin, "./bench/floorfs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			floorErr = fmt.Errorf("go build ./bench/floorfs: %v\n%s", err, out)
		}
	})
	if floorErr != nil {
		tb.Fatal(floorErr)
	}
	return floorBin
}

// startFloor mounts a floorfs in a new temporary directory.
func startFloor(tb testing.TB, o setup) *system {
	tb.Helper()
	bin := floorBinary(tb)
	mnt, err := os.MkdirTemp("", "floorfs-mnt-")
	if err != nil {
		tb.Fatal(err)
	}
	logf, err := os.CreateTemp("", "floorfs-log-")
	if err != nil {
		os.Remove(mnt)
		tb.Fatal(err)
	}
	args := []string{"-nice", strconv.Itoa(floorNice(tb))}
	args = append(args, floorFlags()...)
	if o.debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(bin, append(args, mnt)...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Stderr = logf
	// In its own session, as testutil starts the daemon, so that it has its
	// own autogroup as the daemon has.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// floorfs unmounts and exits when its stdin closes: when we close it,
	// or when this process dies, however it dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	always(tb, func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH) // harmless if gone
		os.Remove(mnt)
		if tb.Failed() {
			b, _ := os.ReadFile(logf.Name())
			tb.Logf("floorfs log:\n%s", b)
		}
		os.Remove(logf.Name())
	})
	ready := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-ready:
		if strings.TrimSpace(s) != "ready" {
			b, _ := os.ReadFile(logf.Name())
			tb.Fatalf("floorfs: got %q, want ready; log:\n%s", s, b)
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("floorfs did not mount within 10s")
	}
	return &system{name: floorName, dir: mnt, pid: cmd.Process.Pid, log: logf.Name()}
}

// floorNice is the floor's nice value: $CONTAINERFS_BENCH_FLOOR_NICE, by
// default -10, the value the containerfs daemon gives itself (see
// raisePriority in internal/daemon), so that both serve under the same
// scheduling.
func floorNice(tb testing.TB) int {
	v := os.Getenv("CONTAINERFS_BENCH_FLOOR_NICE")
	if v == "" {
		return -10
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("CONTAINERFS_BENCH_FLOOR_NICE=%q: want a number", v)
	}
	return n
}

// floorFlags are floorfs's other flags: $CONTAINERFS_BENCH_FLOOR_FLAGS if
// set, else -noflush, because containerfs's control files are opened with
// FOPEN_NOFLUSH (internal/cgfs, since 4351290) and the floor must open its
// file as containerfs does. Set it to -noflush=false for a floor that
// receives FLUSH on close.
func floorFlags() []string {
	if v, ok := os.LookupEnv("CONTAINERFS_BENCH_FLOOR_FLAGS"); ok {
		return strings.Fields(v)
	}
	return []string{"-noflush"}
}

// cfsOptions are the mount options of the benchmarked hierarchy:
// $CONTAINERFS_BENCH_OPTS, by default the debug subsystem (the only one
// there is as this is written).
func cfsOptions() string {
	if o := os.Getenv("CONTAINERFS_BENCH_OPTS"); o != "" {
		return o
	}
	return "debug"
}

// startContainerfs starts a daemon and mounts one hierarchy.
func startContainerfs(tb testing.TB, o setup) *system {
	tb.Helper()
	if inProc() {
		return startContainerfsInProc(tb, o)
	}
	var args []string
	if o.debug {
		args = append(args, "--debug")
	}
	// testutil starts the daemon with this process's environment.
	for _, kv := range o.env {
		k, v, _ := strings.Cut(kv, "=")
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		if had {
			defer os.Setenv(k, old)
		} else {
			defer os.Unsetenv(k)
		}
	}
	d := testutil.StartDaemon(tb, args...)
	keepBinDir(filepath.Dir(d.Bin))
	var mnt string
	pid := d.Cmd.Process.Pid
	always(tb, func() {
		// testutil stops the daemon and unmounts on Cleanup; this is for
		// the watchdog, which runs when Cleanup would not.
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(5 * time.Second)
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) && !isZombie(pid) {
				time.Sleep(20 * time.Millisecond)
			}
			if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if mnt != "" {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			os.Remove(mnt)
		}
		os.RemoveAll(filepath.Dir(d.Socket)) // testutil's, with the log
	})
	mnt = d.Mount(cfsOptions())
	return &system{name: cfsName, dir: mnt, pid: pid, log: d.Log}
}

// isZombie tells whether pid has exited (gone, or a zombie).
func isZombie(pid int) bool {
	st, err := proc.ReadStat("", pid)
	return err != nil || st.Zombie()
}

// kernelHierarchies are the cgroup v1 hierarchies a benchmark may use, in
// order of preference. Never the memory hierarchy.
var kernelHierarchies = []string{"freezer", "pids"}

// kernelRoot finds the mount point of a cgroup v1 hierarchy we may use:
// $CONTAINERFS_BENCH_KERNEL names it ("off" for none).
func kernelRoot() (root, subsys string) {
	want := kernelHierarchies
	switch v := os.Getenv("CONTAINERFS_BENCH_KERNEL"); {
	case v == "off":
		return "", ""
	case slices.Contains(kernelHierarchies, v):
		want = []string{v}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	found := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		opts := strings.Split(g[2], ",")
		for _, name := range want {
			// Only a hierarchy with that one subsystem: moving tasks in
			// a co-mounted one (cpu,cpuacct; memory) is another matter.
			if slices.Contains(opts, name) && !slices.Contains(opts, "memory") && found[name] == "" {
				found[name] = f[4]
			}
		}
	}
	for _, name := range want {
		if found[name] != "" {
			return found[name], name
		}
	}
	return "", ""
}

// kernelCgroup makes a bench-<random> child of a kernel cgroup v1
// hierarchy, or returns nil if there is none to use. When the test ends our
// processes are moved back to the hierarchy's root and every cgroup made
// under it is removed.
func kernelCgroup(tb testing.TB) *system {
	tb.Helper()
	root, ss := kernelRoot()
	if root == "" {
		tb.Logf("no cgroup v1 %v hierarchy: no kernel column", kernelHierarchies)
		return nil
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	dir := filepath.Join(root, "bench-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Logf("kernel cgroup %s: %v: no kernel column", dir, err)
		return nil
	}
	always(tb, func() {
		if err := removeKernelTree(root, dir, time.Now().Add(60*time.Second)); err != nil {
			fmt.Fprintf(os.Stderr, "bench: removing kernel cgroup %s: %v\n", dir, err)
			tb.Errorf("removing kernel cgroup %s: %v", dir, err)
		}
	})
	return &system{name: kernName, dir: dir, note: ss}
}

// removeKernelTree removes the cgroup dir and all below it, first moving
// our own processes in them back to root. A process not ours is left alone
// (and the rmdir then fails).
func removeKernelTree(root, dir string, deadline time.Time) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			if err := removeKernelTree(root, filepath.Join(dir, e.Name()), deadline); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for {
		evacuate(root, dir)
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return errors.Join(errs...)
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return errors.Join(append(errs, fmt.Errorf("rmdir %s: %w", dir, err))...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// evacuate moves our processes in cgroup dir back to the root cgroup.
func evacuate(root, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if !isOurs(pid) {
			fmt.Fprintf(os.Stderr, "bench: %s holds process %d, which is not ours: left alone\n", dir, pid)
			continue
		}
		writeFile(filepath.Join(root, "cgroup.procs"), []byte(f)) // ESRCH if it exited
	}
}
