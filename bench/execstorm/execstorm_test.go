// Package execstorm benchmarks the policy engine (issue 7): a storm of
// 10,000 execs of a program that a rule sends to a container, started from
// a shell in the root container, then a check that every process that
// should be there is. Run it with
//
//	CONTAINERFS_BENCH=1 go test ./bench/execstorm -run Storm -v -timeout 20m
//
// The programs are copies of /bin/true and /bin/sleep under names unique to
// the run, so the rules match nothing the benchmark did not start.
package execstorm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

const (
	execs    = 10000
	survivor = 100 // every 100th exec is a sleeper that stays to be checked
)

func TestStorm(t *testing.T) {
	testutil.Short(t)
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("benchmark: set CONTAINERFS_BENCH=1")
	}
	testutil.RequireRoot(t)
	dir := t.TempDir()
	tag := fmt.Sprintf("cfs-storm-%06d", rand.IntN(1e6))
	quick, sleeper := filepath.Join(dir, tag+"-t"), filepath.Join(dir, tag+"-s")
	for src, dst := range map[string]string{"/bin/true": quick, "/bin/sleep": sleeper} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rules := filepath.Join(dir, "rules.conf")
	rule := fmt.Sprintf("*:%s * /storm\n*:%s * /storm\n", filepath.Base(quick), filepath.Base(sleeper))
	if err := os.WriteFile(rules, []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	d := testutil.StartDaemon(t, "--rules", rules)
	mnt := d.Mount("none,name=execstorm")
	if err := os.Mkdir(filepath.Join(mnt, "storm"), 0o755); err != nil {
		t.Fatal(err)
	}

	// The shell stays in the root container; each program it runs must be
	// moved by the rules.
	pidfile := filepath.Join(dir, "sleepers")
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do
		if [ $((i %% %d)) -eq 0 ]; then %s 600 & echo $! >> %s; else %s; fi
		i=$((i+1)); done`, execs, survivor, sleeper, pidfile, quick)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		b, _ := os.ReadFile(pidfile)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	start := time.Now()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("storm: %v", err)
		}
	case <-time.After(10 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("storm did not finish in 10 minutes")
	}
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond) // the last events

	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadFile(filepath.Join(mnt, "storm", "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, f := range strings.Fields(string(tasks)) {
		in[f] = true
	}
	sleepers := strings.Fields(string(b))
	misplaced := 0
	for _, pid := range sleepers {
		if !in[pid] {
			misplaced++
		}
	}
	stats, _ := d.CLI("stats")
	t.Logf("%d execs in %v (%.0f/s); %d sleepers, %d misplaced\n%s", execs, elapsed.Round(time.Millisecond),
		execs/elapsed.Seconds(), len(sleepers), misplaced, stats)
	if misplaced > 0 {
		t.Errorf("misplaced: got %d, want 0", misplaced)
	}
}
