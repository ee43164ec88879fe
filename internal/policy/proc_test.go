package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/proc"
)

// statLine makes a /proc/PID/stat line: pid (comm) and fields 3 to 52,
// with ppid, flags, start time and policy where given.
func statLine(pid int, comm string, ppid int, flags uint64, start uint64, policy int) string {
	f := make([]string, 50) // fields 3..52
	for i := range f {
		f[i] = "0"
	}
	f[0] = "S"
	f[4-3] = fmt.Sprint(ppid)
	f[9-3] = fmt.Sprint(flags)
	f[22-3] = fmt.Sprint(start)
	f[41-3] = fmt.Sprint(policy)
	return fmt.Sprintf("%d (%s) %s\n", pid, comm, strings.Join(f, " "))
}

// fakeProc writes one process into a fake procfs under root.
func fakeProc(t *testing.T, root string, pid, tgid int, comm, exe string, cmdline []string, cwd string, policy int, flags uint64) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stat"), []byte(statLine(pid, comm, 1, flags, 4242, policy)), 0o644)
	status := fmt.Sprintf("Name:\t%s\nTgid:\t%d\nPid:\t%d\nUid:\t1000\t1001\t1001\t1001\nGid:\t2000\t2001\t2001\t2001\n", comm, tgid, pid)
	os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644)
	if exe != "" {
		os.Symlink(exe, filepath.Join(dir, "exe"))
	}
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(cmdline, "\x00")+"\x00"), 0o644)
	if cwd != "" {
		os.Symlink(cwd, filepath.Join(dir, "cwd"))
	}
}

func TestProcFSFake(t *testing.T) {
	root := t.TempDir()
	scripts := t.TempDir()
	script := filepath.Join(scripts, "backup-job")
	os.WriteFile(script, []byte("#!/usr/bin/python3\n"), 0o755)

	fakeProc(t, root, 10, 10, "sleep", "/usr/bin/sleep", []string{"sleep", "1"}, "", 0, 0)
	fakeProc(t, root, 11, 11, "cfs-policy-test", "/tmp/x/cfs-policy-test-sleep-abc (deleted)", []string{"x"}, "", 1, 0)
	fakeProc(t, root, 12, 12, "backup-job", "/usr/bin/python3.11", []string{"python3", "backup-job"}, scripts, 0, 0)
	fakeProc(t, root, 13, 13, "a) (b", "/usr/bin/busybox", []string{"a) (b"}, "", 2, 0)
	fakeProc(t, root, 14, 14, "kworker/0:1", "", nil, "", 0, proc.PFKthread)
	fakeProc(t, root, 15, 10, "sleep", "/usr/bin/sleep", nil, "", 0, 0)
	tests := []struct {
		pid      int
		name     string
		comm     string
		rt, kern bool
	}{
		{10, "/usr/bin/sleep", "sleep", false, false},
		{11, "/tmp/x/cfs-policy-test-sleep-abc", "cfs-policy-test", true, false},
		{12, script, "backup-job", false, false},
		{13, "a) (b", "a) (b", true, false},
		{14, "kworker/0:1", "kworker/0:1", false, true},
	}
	fs := ProcFS{Root: root}
	for _, tc := range tests {
		p, err := fs.Process(tc.pid)
		if err != nil {
			t.Errorf("%d: %v", tc.pid, err)
			continue
		}
		if p.Name != tc.name || p.Comm != tc.comm || p.RT != tc.rt || p.Kernel != tc.kern {
			t.Errorf("%d: got name %q comm %q rt %v kernel %v, want %q %q %v %v", tc.pid, p.Name, p.Comm, p.RT, p.Kernel, tc.name, tc.comm, tc.rt, tc.kern)
		}
		if p.EUID != 1001 || p.EGID != 2001 || p.Start != 4242 || p.PPID != 1 {
			t.Errorf("%d: got euid %d egid %d start %d ppid %d, want 1001 2001 4242 1", tc.pid, p.EUID, p.EGID, p.Start, p.PPID)
		}
	}
	if _, err := fs.Process(15); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("a thread's ID: got %v, want ESRCH", err)
	}
	if _, err := fs.Process(99); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("a missing process: got %v, want ESRCH", err)
	}
	pids, err := fs.PIDs()
	if err != nil || len(pids) != 6 {
		t.Errorf("PIDs: got %v, %v, want 6", pids, err)
	}
}

func TestProcFSSelf(t *testing.T) {
	p, err := ProcFS{}.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if p.Exe != exe || p.Name != exe {
		t.Errorf("got exe %q name %q, want %q", p.Exe, p.Name, exe)
	}
	if p.EUID != uint32(os.Geteuid()) || p.EGID != uint32(os.Getegid()) || p.PPID != os.Getppid() || p.Start == 0 {
		t.Errorf("got %+v, want our euid, egid, ppid and a start time", p)
	}
}
