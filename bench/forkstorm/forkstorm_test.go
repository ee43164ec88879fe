// Package forkstorm benchmarks task tracking (issue 3): a storm of forks
// from processes in a non-root container, as fast as both cores allow,
// with and without the daemon, and a verifier that checks where every
// surviving child was placed. Run it with
//
//	CONTAINERFS_BENCH=1 go test ./bench/forkstorm -run Storm -v -timeout 20m
//
// It needs root, /dev/fuse and gcc. It acts only on the processes it starts.
package forkstorm

import (
	"bufio"
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
)

const (
	forks    = 100000
	workers  = 2
	survivor = 100 // every 100th child survives: 1,000 to verify
)

func TestStorm(t *testing.T) {
	testutil.Short(t)
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("benchmark: set CONTAINERFS_BENCH=1")
	}
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "forkstorm")
	if out, err := exec.Command("gcc", "-O2", "-o", bin, "testdata/forkstorm.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}

	// Baseline: no daemon of ours running (another daemon on the machine
	// would also listen to the connector: say so).
	base := storm(t, bin, "")
	t.Logf("without daemon: %s", base.line)

	d := testutil.StartDaemon(t)
	mnt := d.Mount("none,name=storm")
	dir := filepath.Join(mnt, "storm")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cpu0 := daemonCPU(t, d.Cmd.Process.Pid)
	with := storm(t, bin, dir)
	cpu1 := daemonCPU(t, d.Cmd.Process.Pid)
	t.Logf("with daemon:    %s (daemon CPU %.2f s)", with.line, (cpu1 - cpu0).Seconds())

	// Every survivor must be in the storm's container.
	b, err := os.ReadFile(filepath.Join(dir, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	in := map[int]bool{}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		in[pid] = true
	}
	misplaced := 0
	for _, pid := range with.survivors {
		if !in[pid] {
			misplaced++
		}
	}
	stats, err := d.CLI("stats")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("daemon stats:\n%s", stats)
	ratio := with.rate / base.rate
	t.Logf("survivors %d, misplaced %d; fork rate with/without daemon %.1f%%", len(with.survivors), misplaced, 100*ratio)
	if misplaced > 0 {
		t.Errorf("misplaced tasks: got %d, want 0", misplaced)
	}

	// Idle: the daemon must not poll.
	time.Sleep(time.Second)
	c0 := daemonCPU(t, d.Cmd.Process.Pid)
	time.Sleep(10 * time.Second)
	idle := daemonCPU(t, d.Cmd.Process.Pid) - c0
	t.Logf("daemon CPU while idle: %.3f%% of a core (machine-wide forks by others still count)", 100*idle.Seconds()/10)
}

type result struct {
	line      string
	rate      float64
	survivors []int
}

// storm runs the storm, inside container dir if not "", kills its survivors
// when the test ends, and returns its figures.
func storm(t *testing.T, bin, dir string) result {
	tmp := t.TempDir()
	out, report := filepath.Join(tmp, "survivors"), filepath.Join(tmp, "report")
	// stdout goes to a file: survivors inherit it and would hold a pipe open.
	script := fmt.Sprintf("exec %s %d %d %d %s >%s", bin, forks, workers, survivor, out, report)
	if dir != "" {
		script = fmt.Sprintf("echo $$ > %s/tasks && %s", dir, script)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Run(); close(done) }()
	var survivors []int
	t.Cleanup(func() {
		for _, pid := range survivors {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatal("storm did not finish in 5 minutes")
	}
	f, ferr := os.Open(out)
	if ferr == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if pid, e := strconv.Atoi(sc.Text()); e == nil {
				survivors = append(survivors, pid)
			}
		}
		f.Close()
	}
	if err != nil {
		t.Fatalf("storm: %v", err)
	}
	stdout, _ := os.ReadFile(report)
	var r result
	r.line = strings.TrimSpace(string(stdout))
	r.survivors = survivors
	var n int
	var secs float64
	fmt.Sscanf(r.line, "forks %d seconds %f rate %f", &n, &secs, &r.rate)
	// Let the last events arrive before anyone looks.
	time.Sleep(200 * time.Millisecond)
	return r
}

// daemonCPU is the user+system time the daemon has used.
func daemonCPU(t *testing.T, pid int) time.Duration {
	st, err := proc.ReadStat("", pid)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(st.UTime+st.STime) * 10 * time.Millisecond
}
