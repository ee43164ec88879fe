package conformance

// A check's environment: the containers and processes it makes, and the
// cleanup that undoes them even when the server hangs.

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

	procfs "github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// env is what one test made: child containers and processes. Its cleanup
// moves the processes back to the suite's root and kills them, newest first,
// then removes the containers, deepest first.
type env struct {
	t     *testing.T
	s     *suite
	dirs  []string
	procs []*proc
}

func (s *suite) newEnv(t *testing.T) *env {
	e := &env{t: t, s: s}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) cleanup() {
	// Once one operation hangs, the server is stuck: kill the processes,
	// and leave the rest of the filesystem alone rather than wait for
	// every operation in turn.
	stuck := false
	fsop := func(what string, f func() error) error {
		if stuck {
			return errSkipped
		}
		err, ok := timed(f)
		if !ok {
			stuck = true
			e.t.Errorf("cleanup: %s: no reply within %v; skipping the rest of the filesystem cleanup", what, opTimeout)
			return errSkipped
		}
		return err
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop(e, fsop)
	}
	for i := len(e.dirs) - 1; i >= 0; i-- {
		dir := e.dirs[i]
		err := fsop("rmdir "+dir, func() error { return unix.Rmdir(dir) })
		if err != nil && err != errSkipped && err != unix.ENOENT {
			e.t.Errorf("cleanup: rmdir %s: %v", dir, errnoName(err))
		}
	}
}

var errSkipped = errors.New("skipped")

// name makes a container name unlikely to clash with anything already in a
// hierarchy that outlives the test (a kernel one).
func name(s string) string { return fmt.Sprintf("cf%d-%s", os.Getpid(), s) }

// mkdir creates container name under parent, to be removed by the cleanup,
// and readies it for tasks.
func (e *env) mkdir(parent, base string) string {
	e.t.Helper()
	dir := filepath.Join(parent, base)
	if err := testutil.Do(e.t, "mkdir "+dir, func() error { return unix.Mkdir(dir, 0o755) }); err != nil {
		e.t.Fatalf("mkdir %s: %v", dir, errnoName(err))
	}
	e.dirs = append(e.dirs, dir)
	e.prepare(dir)
	return dir
}

// prepare fills in what a hierarchy's subsystems need before a task can be
// attached, as a user would: a new cpuset has empty cpus and mems (unless
// clone_children is set), and attaching to it is ENOSPC.
func (e *env) prepare(dir string) {
	e.t.Helper()
	for _, pair := range [][]string{{"cpuset.cpus", "cpuset.mems"}, {"cpus", "mems"}} {
		for _, f := range pair {
			if !exists(e.t, filepath.Join(dir, f)) {
				continue
			}
			if strings.TrimSpace(testutil.ReadFile(e.t, filepath.Join(dir, f))) != "" {
				continue
			}
			testutil.MustWrite(e.t, filepath.Join(dir, f), testutil.ReadFile(e.t, filepath.Join(filepath.Dir(dir), f)))
		}
	}
}

// proc is a process the test started, directly (cmd) or through a child of
// its own (a shell's background job).
type proc struct {
	pid  int
	cmd  *exec.Cmd // nil for a grandchild
	done chan struct{}
	out  *output
}

// start starts a child process that the cleanup moves back to the root and
// kills. cred, if not nil, is the user it runs as.
func (e *env) start(cred *syscall.Credential, name string, args ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	p := &proc{cmd: cmd, done: make(chan struct{}), out: newOutput()}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	// A shell's background job keeps the pipe open: do not wait for it.
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	go func() { cmd.Wait(); close(p.done) }()
	e.procs = append(e.procs, p)
	return p
}

// sleeper starts `sleep 600`.
func (e *env) sleeper(cred *syscall.Credential) *proc {
	e.t.Helper()
	return e.start(cred, "sleep", "600")
}

// adopt registers a grandchild, started by one of the test's children, for
// the cleanup. Register it while its parent lives, so its PID cannot have
// been reused.
func (e *env) adopt(pid int) *proc {
	p := &proc{pid: pid}
	e.procs = append(e.procs, p)
	return p
}

// kill kills the process and waits until it is gone.
func (p *proc) kill() error {
	if p.cmd == nil {
		if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return err
		}
		// Reaped by its parent or by init: wait until it is no longer
		// running (a zombie's state is Z).
		return eventually(10*time.Second, func() error {
			if st, err := procfs.ReadStat("", p.pid); err != nil || st.Zombie() {
				return nil
			}
			return fmt.Errorf("process %d still runs", p.pid)
		})
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("process %d not reaped within 10s", p.pid)
	}
}

func (p *proc) stop(e *env, fsop func(string, func() error) error) {
	select {
	case <-p.done:
		return
	default:
	}
	// Back to the root, so that its container can be removed even where
	// exits are not tracked; errors are expected for a process already gone.
	pid := strconv.Itoa(p.pid)
	fsop("moving "+pid+" back to the root", func() error { return writeOnce(filepath.Join(e.s.root, "cgroup.procs"), pid) })
	if err := p.kill(); err != nil {
		e.t.Errorf("cleanup: %v", err)
	}
}

// moveTo writes the process's PID to file (tasks or cgroup.procs) and fails
// the test if that fails.
func (e *env) moveTo(file string, pid int) {
	e.t.Helper()
	testutil.MustWrite(e.t, file, strconv.Itoa(pid))
}
