package cpuacct

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
)

// kernelCpuacct is the host's cgroup v1 cpuacct hierarchy.
const kernelCpuacct = "/sys/fs/cgroup/cpuacct"

// benchCgroup creates a bench-<random> child of the kernel's cpuacct
// hierarchy and removes it when the test ends, after the test's processes
// are gone. It is the only place under /sys/fs/cgroup the tests write to.
func benchCgroup(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(kernelCpuacct, "cpuacct.usage")); err != nil {
		t.Skipf("no kernel cgroup v1 cpuacct at %s: %v", kernelCpuacct, err)
	}
	var r [6]byte
	rand.Read(r[:])
	dir := filepath.Join(kernelCpuacct, "bench-"+hex.EncodeToString(r[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 250 {
			if err = os.Remove(dir); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("remove %s: %v", dir, err)
	})
	return dir
}

// TestBenchVsKernel runs CPU workloads whose processes are members of a
// containerfs cpuacct container and, at the same time, of a kernel cpuacct
// cgroup (two hierarchies, so a task is in both), and compares the two
// cpuacct.usage figures. Run with CONTAINERFS_BENCH=1:
//
//	CONTAINERFS_BENCH=1 go test -run TestBenchVsKernel -v ./internal/subsys/cpuacct/
func TestBenchVsKernel(t *testing.T) {
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("set CONTAINERFS_BENCH=1 to compare with the kernel's cpuacct")
	}
	kdir := benchCgroup(t)
	mnt := mount(t, "bench")
	odir := filepath.Join(mnt, "bench")

	type step struct {
		worker int
		cmd    string
	}
	cases := []struct {
		name    string
		workers int
		steps   []step // run concurrently, one goroutine per worker, in order per worker
	}{
		{"long: 2 busy loops of 2s", 2, []step{{0, "spin 2000"}, {1, "spin 2000"}}},
		{"short: 100 shell processes of ~25ms, 2 at a time", 1, []step{{0, "spawn 100 20000 2"}}},
		{"short: 400 shell processes of ~9ms, 2 at a time", 1, []step{{0, "spawn 400 2000 2"}}},
		{"threads: 40 threads of 50ms, 8 at a time", 1, []step{{0, "threads 8 50"}, {0, "threads 8 50"}, {0, "threads 8 50"}, {0, "threads 8 50"}, {0, "threads 8 50"}}},
		{"mix: a 2s loop beside 40 shell processes of ~55ms", 2, []step{{0, "spin 2000"}, {1, "spawn 40 50000 1"}}},
	}
	var report []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := make([]*workerProc, tc.workers)
			for i := range ws {
				ws[i] = startWorker(t)
				if err := testutil.WriteFile(t, filepath.Join(kdir, "cgroup.procs"), strconv.Itoa(ws[i].pid)); err != nil {
					t.Fatal(err)
				}
				moveIn(t, odir, ws[i].pid)
			}
			for _, f := range []string{filepath.Join(kdir, "cpuacct.usage"), filepath.Join(odir, "cpuacct.usage")} {
				if err := testutil.WriteFile(t, f, "0"); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			var wg sync.WaitGroup
			for i, w := range ws {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, s := range tc.steps {
						if s.worker == i {
							w.do("%s", s.cmd)
						}
					}
				}()
			}
			wg.Wait()
			wall := time.Since(start)
			time.Sleep(time.Second) // the last exit records, and the parents' cutime
			k := readU64(t, filepath.Join(kdir, "cpuacct.usage"))
			o := usage(t, odir)
			kpc := testutil.ReadFile(t, filepath.Join(kdir, "cpuacct.usage_percpu"))
			opc := testutil.ReadFile(t, filepath.Join(odir, "cpuacct.usage_percpu"))
			diff := 100 * float64(o-k) / float64(k)
			line := fmt.Sprintf("%-50s wall %6.2fs  kernel %9s  containerfs %9s  %+6.2f%%  per CPU: kernel [%s] ours [%s]",
				tc.name, wall.Seconds(), ms(k), ms(o), diff, pcMS(kpc), pcMS(opc))
			t.Log(line)
			report = append(report, line)
			// docs/deviations.md: every case came out within 0.6% of
			// the kernel's figure; 1% is the target.
			if math.Abs(diff) > maxDiffPct {
				t.Errorf("%s: containerfs %s against the kernel's %s: %+.2f%%, want within ±%.0f%%", tc.name, ms(o), ms(k), diff, maxDiffPct)
			}
			for _, w := range ws {
				w.in.Flush()
			}
		})
	}
	t.Logf("summary:\n%s", strings.Join(report, "\n"))
}

// maxDiffPct is how far, in percent, TestBenchVsKernel lets our usage be
// from the kernel's.
const maxDiffPct = 1.0

// maxOverhead is the most of one CPU the sampling of 1000 sleeping tasks
// may take (the sampler stretches its period to stay under 2%; doc.go).
const maxOverhead = 0.02

func pcMS(s string) string {
	var out []string
	for _, f := range strings.Fields(s) {
		v, _ := strconv.ParseInt(f, 10, 64)
		out = append(out, ms(v))
	}
	return strings.Join(out, " ")
}

// TestBenchOverhead measures what tracking costs: the daemon's CPU time
// while 1000 sleeping tasks sit in containers (the periodic sampling), and
// the latency of reading cpuacct.usage of a container whose subtree is
// sampled afresh on read (100 tasks) and of one too big for that (1000).
// Run with CONTAINERFS_BENCH=1.
func TestBenchOverhead(t *testing.T) {
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("set CONTAINERFS_BENCH=1 to measure the overhead")
	}
	d, mnt := mountD(t, "big", "big/small")
	big, small := filepath.Join(mnt, "big"), filepath.Join(mnt, "big/small")
	daemonCPU := func() int64 {
		st, err := proc.ReadStat("", d.Cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		return int64(st.UTime+st.STime) * nsPerTick
	}
	readLatency := func(dir string) time.Duration {
		const n = 200
		start := time.Now()
		for range n {
			usage(t, dir)
		}
		return time.Since(start) / n
	}
	idle0 := daemonCPU()
	time.Sleep(3 * time.Second)
	idle := daemonCPU() - idle0
	emptyRead := readLatency(small)

	// Two shells fork 900 and 100 sleepers inside the containers.
	spawnSleepers := func(dir string, n int) {
		sh := startShell(t, fmt.Sprintf("read x; i=0; while [ $i -lt %d ]; do sleep 60 & i=$((i+1)); done; echo started; wait", n))
		moveIn(t, dir, sh.cmd.Process.Pid)
		sh.send("go")
		sh.expect("started")
	}
	spawnSleepers(big, 900)
	spawnSleepers(small, 100)
	time.Sleep(500 * time.Millisecond)
	busy0 := daemonCPU()
	time.Sleep(3 * time.Second)
	busy := daemonCPU() - busy0
	smallRead, bigRead := readLatency(small), readLatency(big)
	t.Logf("daemon CPU over 3s: %s with no tracked task, %s with 1000 tracked sleepers (%.2f%% of a CPU)",
		ms(idle), ms(busy), 100*float64(busy)/3e9)
	t.Logf("read cpuacct.usage: empty container %v, 100 tasks (sampled on read) %v, 1000 tasks (last round's figures) %v",
		emptyRead, smallRead, bigRead)
	// /proc/PID/stat counts to the tick: allow two of them beyond the
	// target.
	if bound := int64(maxOverhead*3e9) + 2*nsPerTick; busy > bound {
		t.Errorf("daemon CPU over 3s with 1000 tracked sleepers: %s, want at most %s (%.0f%% of a CPU)", ms(busy), ms(bound), 100*maxOverhead)
	}
}

type shell struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Reader
}

// startShell runs a shell script in its own process group, killed (with
// everything it started) when the test ends.
func startShell(t *testing.T, script string) *shell {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return &shell{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
}

func (s *shell) send(line string) { io.WriteString(s.in, line+"\n") }

func (s *shell) expect(want string) {
	s.t.Helper()
	got := make(chan string, 1)
	go func() {
		l, _ := s.out.ReadString('\n')
		got <- strings.TrimSpace(l)
	}()
	select {
	case l := <-got:
		if l != want {
			s.t.Fatalf("shell said %q, want %q", l, want)
		}
	case <-time.After(60 * time.Second):
		s.t.Fatalf("shell did not say %q within 60 s", want)
	}
}
