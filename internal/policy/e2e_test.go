package policy_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

// copyUnique copies a system program under a name nothing else on the
// machine has, so that rules naming it match only what this test starts.
func copyUnique(t *testing.T, src, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	dst := filepath.Join(t.TempDir(), prefix+hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// waitCgroup waits until `containerfs cgroup PID` shows want.
func waitCgroup(t *testing.T, d *testutil.Daemon, pid int, want string) {
	t.Helper()
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var err error
		if out, err = d.CLI("cgroup", fmt.Sprint(pid)); err == nil && strings.Contains(out, want) {
			return
		}
	}
	t.Fatalf("process %d: cgroup is %q, want %q", pid, out, want)
}

func TestDaemonPolicy(t *testing.T) {
	testutil.Short(t) // builds and starts a daemon, mounts, runs processes
	var rnd [4]byte
	rand.Read(rnd[:])
	name := "pol" + hex.EncodeToString(rnd[:])
	sleep := copyUnique(t, "/bin/sleep", "cfs-policy-e2e-sleep-")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.conf")
	os.WriteFile(rules, []byte(fmt.Sprintf("*:%s  name=%s  /placed\n", filepath.Base(sleep), name)), 0o644)
	d := testutil.StartDaemon(t, "--rules", rules, "--rules-dir", "", "--config", "", "--config-dir", "")
	mnt := d.Mount("none,name=" + name)
	for _, p := range []string{"placed", "chosen"} {
		if err := os.Mkdir(filepath.Join(mnt, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) *exec.Cmd {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = d.Env()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}

	// The rules place a program on exec.
	a := run(sleep, "30")
	waitCgroup(t, d, a.Process.Pid, ":name="+name+":/placed")
	out, err := d.CLI("explain", fmt.Sprint(a.Process.Pid))
	if err != nil || !strings.Contains(out, "matched "+rules+":1:") {
		t.Errorf("explain: got %q, %v, want the rule named", out, err)
	}

	// exec -g places before exec, and the rules leave it there.
	b := run(d.Bin, "exec", "-g", "name="+name+":/chosen", "--", sleep, "30")
	waitCgroup(t, d, b.Process.Pid, ":name="+name+":/chosen")
	time.Sleep(100 * time.Millisecond)
	waitCgroup(t, d, b.Process.Pid, ":name="+name+":/chosen")

	// classify moves by hand; snapshot shows the tree.
	if _, err := d.CLI("classify", "-g", "name="+name+":/", fmt.Sprint(a.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	waitCgroup(t, d, a.Process.Pid, ":name="+name+":/\n")
	snap, err := d.CLI("snapshot")
	if err != nil || !strings.Contains(snap, "group chosen") || !strings.Contains(snap, `"name=`+name+`" = `+mnt) {
		t.Errorf("snapshot: got %q, %v", snap, err)
	}

	// A bad rules file is refused with its line, and the rules stay.
	os.WriteFile(rules, []byte("* cpu\n"), 0o644)
	if _, err := d.CLI("reload"); err == nil || !strings.Contains(err.Error(), rules+":1:") {
		t.Errorf("reload of a bad file: got %v, want an error at line 1", err)
	}
	d.Cmd.Process.Signal(syscall.SIGHUP)
	c := run(sleep, "30")
	waitCgroup(t, d, c.Process.Pid, ":name="+name+":/placed")
}
