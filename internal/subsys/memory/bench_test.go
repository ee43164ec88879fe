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
	"github.com/containerfs/containerfs/internal/testutil"
)

// There is no kernel comparison here: the tests never touch the kernel's
// memory hierarchy (/sys/fs/cgroup/memory), not even for a benchmark.

// TestBenchOOM measures how far an allocator gets past a 100 MiB limit
// (its peak RSS, ru_maxrss, above the limit) and how long after crossing it
// it dies, at a requested 100 MB/s and 1 GB/s (the machine's page-fault
// rate may cap the latter: the table shows the rate reached). For scale it
// also measures the teardown alone: the test kills an allocator holding
// 100 MiB itself and times its death. It runs only with CONTAINERFS_BENCH=1:
//
//	CONTAINERFS_BENCH=1 go test -run TestBenchOOM -v ./internal/subsys/memory/
func TestBenchOOM(t *testing.T) {
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("set CONTAINERFS_BENCH=1 to measure")
	}
	d := testutil.StartDaemon(t)
	mnt := d.Mount("memory")
	const limit = 100 << 20
	const runs = 5

	var teardown []time.Duration
	for i := 0; i < runs; i++ {
		a := startAlloc(t, 1000, 100)
		a.run(t)
		if !waitFor(60*time.Second, a.isFinished) {
			t.Fatal("allocator did not finish 100 MiB")
		}
		t0 := monoNow()
		syscall.Kill(a.pid(), syscall.SIGKILL)
		<-a.eof
		a.mu.Lock()
		teardown = append(teardown, time.Duration(a.eofNs-t0))
		a.mu.Unlock()
		a.wait()
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nallocator into a 100 MiB limit, %d runs each (median / max)\n", runs)
	fmt.Fprintf(&b, "| requested | reached (MB/s) | peak RSS over the limit (MiB) | crossing → death (ms) |\n|---|---|---|---|\n")
	for _, rate := range []int{100, 1000} {
		var rates []float64
		var over []int64
		var ttk []time.Duration
		for i := 0; i < runs; i++ {
			dir := container(t, mnt, fmt.Sprintf("bench-%d-%d", rate, i))
			testutil.MustWrite(t, filepath.Join(dir, "memory.limit_in_bytes"), strconv.Itoa(limit))
			r := runToOOM(t, dir, limit, rate, 1000)
			rates = append(rates, r.rate/1e6)
			over = append(over, r.overshoot)
			ttk = append(ttk, r.toKill)
		}
		slices.Sort(rates)
		slices.Sort(over)
		slices.Sort(ttk)
		fmt.Fprintf(&b, "| %d MB/s | %.0f / %.0f | %.1f / %.1f | %.1f / %.1f |\n", rate,
			rates[runs/2], rates[runs-1],
			float64(over[runs/2])/(1<<20), float64(over[runs-1])/(1<<20),
			ms(ttk[runs/2]), ms(ttk[runs-1]))
	}
	slices.Sort(teardown)
	fmt.Fprintf(&b, "\nteardown alone (SIGKILL by the test → death of a 100 MiB allocator): %.1f / %.1f ms\n",
		ms(teardown[runs/2]), ms(teardown[runs-1]))

	// The sampler alone: the subsystem in this process, on the real /proc,
	// its kill timed as it is sent.
	s := &Subsys{Pauser: &fakePauser{held: map[int]bool{}}, Logf: t.Logf}
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
		t.Fatal(err)
	}
	defer r.Unmount(h)
	fmt.Fprintf(&b, "\nthe sampler alone (in the test process): crossing → SIGKILL sent, median / max\n")
	for _, rate := range []int{100, 1000} {
		var detect []time.Duration
		var rates []float64
		for i := 0; i < runs; i++ {
			name := fmt.Sprintf("in-%d-%d", rate, i)
			c, err := r.Mkdir(h.Root(), name, 0o755, core.Caller{})
			if err != nil {
				t.Fatal(err)
			}
			for _, bf := range h.Files(c) {
				if bf.Name == "memory.limit_in_bytes" {
					if err := r.WriteFile(c, &bf, core.Caller{}, strconv.Itoa(limit)); err != nil {
						t.Fatal(err)
					}
				}
			}
			a := startAlloc(t, rate, 1000)
			if err := r.Attach(c, core.Caller{}, a.pid(), true); err != nil {
				t.Fatal(err)
			}
			a.run(t)
			select {
			case <-a.eof:
			case <-time.After(60 * time.Second):
				t.Fatalf("allocator not killed in 60 s")
			}
			a.wait()
			crossNs, rt := a.crossed(limit)
			mu.Lock()
			detect = append(detect, time.Duration(sentNs-crossNs))
			mu.Unlock()
			rates = append(rates, rt/1e6)
			t.Logf("run %s: detect %v", name, detect[len(detect)-1])
			waitFor(5*time.Second, func() bool { return r.Rmdir(h.Root(), name, core.Caller{}) == nil })
		}
		slices.Sort(detect)
		slices.Sort(rates)
		fmt.Fprintf(&b, "  requested %d MB/s (reached %.0f): %.1f / %.1f ms\n", rate, rates[runs/2],
			ms(detect[runs/2]), ms(detect[runs-1]))
	}
	t.Log(b.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestBenchSamplerCPU measures the sampler's CPU time while N idle
// processes sit in a container: without a limit (slow rounds every second),
// with a limit far above their usage (1 GiB of headroom: rounds every
// 250 ms, as no 4 GB/s allocator could reach it sooner), and with one
// 8 MiB above it (rounds every 10 ms, the worst case). The subsystem runs
// in the test process, on the real /proc, with its real sampler goroutine,
// so that the daemon's other work (it hears every fork and exit on the
// machine) does not blur the figures; CPU time is from schedstat (exact,
// unlike the tick-sampled utime). It runs only with CONTAINERFS_BENCH=1:
//
//	CONTAINERFS_BENCH=1 go test -run TestBenchSamplerCPU -v ./internal/subsys/memory/
func TestBenchSamplerCPU(t *testing.T) {
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("set CONTAINERFS_BENCH=1 to measure")
	}
	testutil.RequireRoot(t)
	const window = 5 * time.Second
	var b strings.Builder
	fmt.Fprintf(&b, "\nsampler CPU (%% of one CPU) while N idle processes sit in a container, %v each\n", window)
	fmt.Fprintf(&b, "| N | no limit | limit 1 GiB above usage | limit 8 MiB above usage |\n|---|---|---|---|\n")
	for _, n := range []int{0, 1, 10, 100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s := &Subsys{Pauser: &fakePauser{held: map[int]bool{}}, Logf: t.Logf}
			r := core.NewRegistry(core.ProcFS{Root: "/proc"}, s)
			h, err := r.Mount("memory")
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.Mkdir(h.Root(), "c", 0o755, core.Caller{})
			if err != nil {
				t.Fatal(err)
			}
			var limitFile, usageFile *core.BoundFile
			for _, bf := range h.Files(c) {
				switch bf.Name {
				case "memory.limit_in_bytes":
					limitFile = &bf
				case "memory.usage_in_bytes":
					usageFile = &bf
				}
			}
			var cmds []*exec.Cmd
			for i := 0; i < n; i++ {
				cmd := exec.Command("sleep", "600")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, cmd)
				if err := r.Attach(c, core.Caller{}, cmd.Process.Pid, true); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() {
				for _, cmd := range cmds {
					r.Attach(h.Root(), core.Caller{}, cmd.Process.Pid, true)
					cmd.Process.Kill()
					cmd.Wait()
				}
				r.Rmdir(h.Root(), "c", core.Caller{})
				r.Unmount(h)
			})
			time.Sleep(1500 * time.Millisecond) // the first slow round opens the files
			measure := func() float64 {
				c0, t0 := runtimeNs(os.Getpid()), time.Now()
				time.Sleep(window)
				c1, t1 := runtimeNs(os.Getpid()), time.Now()
				return float64(c1-c0) / float64(t1.Sub(t0)) * 100
			}
			none := measure()
			u, _ := r.ReadFile(c, usageFile)
			usage, _ := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
			if err := r.WriteFile(c, limitFile, core.Caller{}, strconv.FormatInt(usage+1<<30, 10)); err != nil {
				t.Fatal(err)
			}
			far := measure()
			if err := r.WriteFile(c, limitFile, core.Caller{}, strconv.FormatInt(usage+8<<20, 10)); err != nil {
				t.Fatal(err)
			}
			near := measure()
			fmt.Fprintf(&b, "| %d | %.2f%% | %.2f%% | %.2f%% |\n", n, none, far, near)
		})
	}
	t.Log(b.String())
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
		f := strings.Fields(string(b))
		if len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			sum += v
		}
	}
	return sum
}
