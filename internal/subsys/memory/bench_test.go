package memory

import (
	"fmt"
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

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
)

// There is no kernel comparison here: the tests never touch the kernel's
// memory hierarchy (/sys/fs/cgroup/memory), not even for a benchmark.

// BenchmarkOOM measures how far an allocator gets past a 100 MiB limit
// (its peak RSS, ru_maxrss, above the limit) and how long after crossing it
// it dies, at a requested 100 MB/s and 1 GB/s (the machine's page-fault
// rate may cap the latter: the table shows the rate reached). For scale it
// also measures the teardown alone: the benchmark kills an allocator
// holding 100 MiB itself and times its death. Each iteration is the whole
// measurement (about a minute); the medians are reported as metrics and the
// table is logged:
//
//	go test -run '^$' -bench BenchmarkOOM -benchtime 1x ./internal/subsys/memory/
func BenchmarkOOM(b *testing.B) {
	for range b.N {
		benchOOM(b)
	}
}

// benchOOM is one iteration of BenchmarkOOM.
func benchOOM(b *testing.B) {
	d := testutil.StartDaemon(b)
	mnt := d.Mount("memory")
	const limit = 100 << 20
	const runs = 5

	var teardown []time.Duration
	for i := 0; i < runs; i++ {
		a := startAlloc(b, 1000, 100)
		a.run(b)
		if !waitFor(60*time.Second, a.isFinished) {
			b.Fatal("allocator did not finish 100 MiB")
		}
		t0 := monoNow()
		syscall.Kill(a.pid(), syscall.SIGKILL)
		<-a.eof
		a.mu.Lock()
		teardown = append(teardown, time.Duration(a.eofNs-t0))
		a.mu.Unlock()
		a.wait()
	}

	var tab strings.Builder
	fmt.Fprintf(&tab, "\nallocator into a 100 MiB limit, %d runs each (median / max)\n", runs)
	fmt.Fprintf(&tab, "| requested | reached (MB/s) | peak RSS over the limit (MiB) | crossing → death (ms) |\n|---|---|---|---|\n")
	for _, rate := range []int{100, 1000} {
		var rates []float64
		var over []int64
		var ttk []time.Duration
		for i := 0; i < runs; i++ {
			dir := container(b, mnt, fmt.Sprintf("bench-%d-%d", rate, i))
			testutil.MustWrite(b, filepath.Join(dir, "memory.limit_in_bytes"), strconv.Itoa(limit))
			r := runToOOM(b, dir, limit, rate, 1000)
			rates = append(rates, r.rate/1e6)
			over = append(over, r.overshoot)
			ttk = append(ttk, r.toKill)
		}
		slices.Sort(rates)
		slices.Sort(over)
		slices.Sort(ttk)
		fmt.Fprintf(&tab, "| %d MB/s | %.0f / %.0f | %.1f / %.1f | %.1f / %.1f |\n", rate,
			rates[runs/2], rates[runs-1],
			float64(over[runs/2])/(1<<20), float64(over[runs-1])/(1<<20),
			ms(ttk[runs/2]), ms(ttk[runs-1]))
		b.ReportMetric(float64(over[runs/2])/(1<<20), fmt.Sprintf("MiB-over@%dMB/s", rate))
		b.ReportMetric(ms(ttk[runs/2]), fmt.Sprintf("ms-to-death@%dMB/s", rate))
	}
	slices.Sort(teardown)
	fmt.Fprintf(&tab, "\nteardown alone (SIGKILL by the test → death of a 100 MiB allocator): %.1f / %.1f ms\n",
		ms(teardown[runs/2]), ms(teardown[runs-1]))

	// The sampler alone: the subsystem in this process, on the real /proc,
	// its kill timed as it is sent.
	s := &Subsys{Pauser: &fakePauser{held: map[int]bool{}}, Logf: b.Logf}
	var mu sync.Mutex
	var sentNs int64
	s.sendKill = func(tgid int, start uint64) error {
		mu.Lock()
		sentNs = monoNow()
		mu.Unlock()
		return pidfdKill("/proc", tgid, start)
	}
	r := core.NewRegistry(core.ProcFS{Root: "/proc"}, s)
	h, err := r.Mount("memory")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Unmount(h)
	fmt.Fprintf(&tab, "\nthe sampler alone (in the test process): crossing → SIGKILL sent, median / max\n")
	for _, rate := range []int{100, 1000} {
		var detect []time.Duration
		var rates []float64
		for i := 0; i < runs; i++ {
			name := fmt.Sprintf("in-%d-%d", rate, i)
			c, err := r.Mkdir(h.Root(), name, 0o755, core.Caller{})
			if err != nil {
				b.Fatal(err)
			}
			for _, bf := range h.Files(c) {
				if bf.Name == "memory.limit_in_bytes" {
					if err := r.WriteFile(c, &bf, core.Caller{}, strconv.Itoa(limit)); err != nil {
						b.Fatal(err)
					}
				}
			}
			a := startAlloc(b, rate, 1000)
			if err := r.Attach(c, core.Caller{}, a.pid(), true); err != nil {
				b.Fatal(err)
			}
			a.run(b)
			select {
			case <-a.eof:
			case <-time.After(60 * time.Second):
				b.Fatalf("allocator not killed in 60 s")
			}
			a.wait()
			crossNs, rt := a.crossed(limit)
			mu.Lock()
			detect = append(detect, time.Duration(sentNs-crossNs))
			mu.Unlock()
			rates = append(rates, rt/1e6)
			b.Logf("run %s: detect %v", name, detect[len(detect)-1])
			waitFor(5*time.Second, func() bool { return r.Rmdir(h.Root(), name, core.Caller{}) == nil })
		}
		slices.Sort(detect)
		slices.Sort(rates)
		fmt.Fprintf(&tab, "  requested %d MB/s (reached %.0f): %.1f / %.1f ms\n", rate, rates[runs/2],
			ms(detect[runs/2]), ms(detect[runs-1]))
		b.ReportMetric(ms(detect[runs/2]), fmt.Sprintf("ms-to-SIGKILL@%dMB/s", rate))
	}
	b.Log(tab.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkSamplerCPU measures the sampler's CPU time while N idle
// processes sit in a container: without a limit (slow rounds every second),
// with a limit far above their usage (1 GiB of headroom: rounds every
// 250 ms, as no 4 GB/s allocator could reach it sooner), and with one
// 8 MiB above it (rounds every 10 ms, the worst case). The subsystem runs
// in the benchmark's process, on the real /proc, with its real sampler
// goroutine, so that the daemon's other work (it hears every fork and exit
// on the machine) does not blur the figures; CPU time is from schedstat
// (exact, unlike the tick-sampled utime). Each sub-benchmark (N processes)
// reports the three figures, in percent of one CPU, as metrics; an
// iteration takes about 17 s:
//
//	go test -run '^$' -bench BenchmarkSamplerCPU -benchtime 1x ./internal/subsys/memory/
func BenchmarkSamplerCPU(b *testing.B) {
	testutil.RequireRoot(b)
	const window = 5 * time.Second
	for _, n := range []int{0, 1, 10, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				none, far, near := samplerCPU(b, n, window)
				b.ReportMetric(none, "%cpu-nolimit")
				b.ReportMetric(far, "%cpu-limit+1GiB")
				b.ReportMetric(near, "%cpu-limit+8MiB")
			}
		})
	}
}

// samplerCPU is one measurement of BenchmarkSamplerCPU, with n processes:
// the sampler's CPU share without a limit, far from one and near one.
func samplerCPU(b *testing.B, n int, window time.Duration) (none, far, near float64) {
	s := &Subsys{Pauser: &fakePauser{held: map[int]bool{}}, Logf: b.Logf}
	r := core.NewRegistry(core.ProcFS{Root: "/proc"}, s)
	h, err := r.Mount("memory")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Unmount(h)
	c, err := r.Mkdir(h.Root(), "c", 0o755, core.Caller{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Rmdir(h.Root(), "c", core.Caller{})
	var cmds []*exec.Cmd
	defer func() {
		for _, cmd := range cmds {
			r.Attach(h.Root(), core.Caller{}, cmd.Process.Pid, true)
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	for i := 0; i < n; i++ {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
		if err := r.Attach(c, core.Caller{}, cmd.Process.Pid, true); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // the first slow round opens the files
	measure := func() float64 {
		c0, t0 := runtimeNs(os.Getpid()), time.Now()
		time.Sleep(window)
		c1, t1 := runtimeNs(os.Getpid()), time.Now()
		return float64(c1-c0) / float64(t1.Sub(t0)) * 100
	}
	none = measure()
	usage, err := r.ReadFile(c, testutil.File(b, c, "memory.usage_in_bytes"))
	if err != nil {
		b.Fatal(err)
	}
	u, _ := strconv.ParseInt(strings.TrimSpace(usage), 10, 64)
	limit := testutil.File(b, c, "memory.limit_in_bytes")
	if err := r.WriteFile(c, limit, core.Caller{}, strconv.FormatInt(u+1<<30, 10)); err != nil {
		b.Fatal(err)
	}
	far = measure()
	if err := r.WriteFile(c, limit, core.Caller{}, strconv.FormatInt(u+8<<20, 10)); err != nil {
		b.Fatal(err)
	}
	near = measure()
	return none, far, near
}

// runtimeNs is the CPU time of every thread of a process so far, from
// /proc/PID/task/*/schedstat.
func runtimeNs(pid int) int64 {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var sum int64
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, e.Name()))
		if err != nil {
			continue
		}
		if ss, err := proc.ParseSchedstat(b); err == nil {
			sum += ss.Run
		}
	}
	return sum
}
