// Package testutil runs real containerfs daemons for end-to-end tests and
// benchmarks: it builds the binary once per test process, starts an isolated
// daemon on its own control socket, mounts hierarchies in temporary
// directories, and undoes all of it when the test ends, failed or not.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// RequireRoot skips a test that needs root and /dev/fuse, except under
// CI=true, where the environment must provide them and the test fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	_, err := os.Stat("/dev/fuse")
	if os.Geteuid() == 0 && err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but this test needs root and /dev/fuse (euid %d, /dev/fuse: %v)", os.Geteuid(), err)
	}
	t.Skip("needs root and /dev/fuse")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/containerfs once and returns its path. A test built
// with the lockrank tag gets a daemon built with it too, so the lock
// ladder is checked in the daemon the end-to-end tests run.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		removeStaleBinaries()
		dir, err := os.MkdirTemp("", "containerfs-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "containerfs")
		args := []string{"build", "-o", binPath}
		if lockrank.Enabled {
			args = append(args, "-tags", "lockrank")
		}
		cmd := exec.Command("go", append(args, "./cmd/containerfs")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// removeStaleBinaries removes the binaries earlier test processes built:
// nothing runs after the last test of a package to remove its own, so each
// build removes those older than an hour.
func removeStaleBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "containerfs-bin-*"))
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(dir)
		}
	}
}

// Daemon is a containerfs daemon started for one test.
type Daemon struct {
	Bin    string
	Socket string
	Log    string
	Cmd    *exec.Cmd
	t      testing.TB
	mounts []string
}

// StartDaemon starts `containerfs serve` on a private socket. It is stopped,
// and every mount made through it is removed, when the test ends.
func StartDaemon(t testing.TB, args ...string) *Daemon {
	t.Helper()
	RequireRoot(t)
	bin := Binary(t)
	dir, err := os.MkdirTemp("", "containerfs-test-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Bin: bin, Socket: filepath.Join(dir, "sock"), Log: filepath.Join(dir, "log"), t: t}
	logf, err := os.Create(d.Log)
	if err != nil {
		t.Fatal(err)
	}
	// No rules or setup from /etc: a test's daemon sees only what it is given.
	base := []string{"serve", "--socket", d.Socket, "--rules", "", "--rules-dir", "", "--config", "", "--config-dir", ""}
	d.Cmd = exec.Command(bin, append(base, args...)...)
	d.Cmd.Stdout, d.Cmd.Stderr = logf, logf
	d.Cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// If the test process dies without its cleanups (go test -timeout
	// panics, or it is killed), the daemon is told to stop and unmounts
	// everything it serves.
	if err := StartOwned(d.Cmd, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() { d.Cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		d.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			d.Cmd.Process.Kill()
			<-exited
		}
		for _, m := range d.mounts {
			syscall.Unmount(m, syscall.MNT_DETACH) // harmless if already gone
		}
		if t.Failed() {
			b, _ := os.ReadFile(d.Log)
			t.Logf("daemon log:\n%s", b)
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := d.CLI("lssubsys"); err == nil {
			return d
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(d.Log)
			t.Fatalf("daemon exited at start-up:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon did not answer within 10s")
		}
	}
}

// Env is the environment for a client of this daemon.
func (d *Daemon) Env() []string {
	return append(os.Environ(), "CONTAINERFS_SOCKET="+d.Socket, "CONTAINERFS_LOG="+d.Log)
}

// CLI runs the containerfs CLI against this daemon and returns its stdout.
func (d *Daemon) CLI(args ...string) (string, error) {
	cmd := exec.Command(d.Bin, args...)
	cmd.Env = d.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("containerfs %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// Mount mounts a hierarchy with the given options (as after -o) in a new
// temporary directory, and returns the directory. It is unmounted when the
// test ends.
func (d *Daemon) Mount(opts string) string {
	d.t.Helper()
	dir, err := os.MkdirTemp("", "containerfs-mnt-")
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.TryMount(opts, dir); err != nil {
		os.Remove(dir)
		d.t.Fatal(err)
	}
	return dir
}

// TryMount mounts at dir and reports the helper's error, if any. A mount
// that succeeds is unmounted when the test ends.
func (d *Daemon) TryMount(opts, dir string) error {
	args := []string{"mount", "container", dir}
	if opts != "" {
		args = []string{"mount", "-o", opts, "container", dir}
	}
	_, err := d.CLI(args...)
	if err == nil {
		d.mounts = append(d.mounts, dir)
		d.t.Cleanup(func() {
			syscall.Unmount(dir, 0)
			os.Remove(dir)
		})
	}
	return err
}

// Sh runs a shell command, with this daemon's socket in its environment.
func (d *Daemon) Sh(script string) (string, error) {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = d.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// StartOwned starts cmd so that it gets sig when the test process dies,
// however it dies (a go test -timeout panic skips every cleanup). The
// kernel sends PR_SET_PDEATHSIG's signal when the parent *thread* exits, and
// the Go runtime ends threads of its own accord, so every such process is
// started from one thread kept for the life of the test process.
func StartOwned(cmd *exec.Cmd, sig syscall.Signal) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread is the parent
			for r := range spawnReqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	errc := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, err: errc}
	return <-errc
}
