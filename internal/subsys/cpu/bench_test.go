// Side-by-side benchmarks of containerfs's cpu subsystem against the
// kernel's CFS on this machine (CONTAINERFS_BENCH=1 only).

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
	"github.com/containerfs/containerfs/internal/testutil"
)

// The benchmarks compare containerfs's cpu subsystem with the kernel's CFS
// on this machine, side by side: the same busy loops, the same settings,
// once in a bench-<random> cgroup of /sys/fs/cgroup/cpu (made and removed
// here; only the benchmark's own busy loops are moved into it) and once in
// a containerfs mount. Figures are CPU-time ratios from
// /proc/PID/schedstat, which other load on the machine does not skew the
// way wall-clock shares would be. Run with:
//
//	CONTAINERFS_BENCH=1 go test -run Bench -v ./internal/subsys/cpu/
//
// CONTAINERFS_BENCH_RUNS (default 3) and CONTAINERFS_BENCH_SECONDS
// (default 5) set the repetitions and the length of each measurement.

func benchEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("set CONTAINERFS_BENCH=1 to compare with the kernel")
	}
	testutil.RequireRoot(t)
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err != nil {
		t.Skip("no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// side is where a scenario runs: the kernel's cpu hierarchy or ours.
type side struct {
	name string
	root string // a directory standing for the hierarchy root
	// cleanup removes what setup made, after the test's processes died.
	dirs []string
}

func kernelSide(t *testing.T) *side {
	t.Helper()
	dir := fmt.Sprintf("/sys/fs/cgroup/cpu/bench-%08x", rand.Uint32())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &side{name: "kernel", root: dir, dirs: []string{dir}}
	t.Cleanup(func() { s.remove(t) })
	return s
}

func ourSide(t *testing.T, d *testutil.Daemon) *side {
	t.Helper()
	mnt := d.Mount("cpu")
	dir := filepath.Join(mnt, fmt.Sprintf("bench-%08x", rand.Uint32()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &side{name: "containerfs", root: dir, dirs: []string{dir}}
	t.Cleanup(func() { s.remove(t) })
	return s
}

// mkdir makes a group under the side's root with settings (file, value).
func (s *side) mkdir(t *testing.T, rel string, settings ...string) string {
	t.Helper()
	dir := filepath.Join(s.root, rel)
	mkdir(t, dir, settings...)
	s.dirs = append(s.dirs, dir)
	return dir
}

// remove removes the groups, deepest first, once their tasks are gone
// (killed processes leave their cgroup when reaped).
func (s *side) remove(t *testing.T) {
	for i := len(s.dirs) - 1; i >= 0; i-- {
		dir := s.dirs[i]
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("remove %s: %v", dir, err)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.dirs = nil
}

// run is one measurement: busy loops placed in groups, their CPU time over
// d, as a percentage of all of theirs (or of wall time, for wall).
type scenario struct {
	name string
	// setup makes the groups on s and starts the processes; it returns
	// the sets of processes whose shares are reported, by label.
	setup func(t *testing.T, s *side) (labels []string, sets [][]*child)
	// wall reports each set's CPU time as a percentage of one CPU's
	// wall time instead of a share of the sets' total.
	wall bool
	// want is the target of each label's mean over the runs, within tol:
	// the test fails if containerfs misses it.
	want []float64
	tol  float64
	// spread adds, for each set, a row with how far apart its tasks' CPU
	// times are: (max-min)/mean, in %.
	spread bool
}

// target is the scenario's target as the table shows it: "90 ± 2",
// "45/45/10 ± 3".
func (sc scenario) target() string {
	var ws []string
	for _, w := range sc.want {
		ws = append(ws, strconv.FormatFloat(w, 'f', -1, 64))
	}
	return fmt.Sprintf("%s ± %g", strings.Join(ws, "/"), sc.tol)
}

// mean is the mean of xs, NaN for none.
func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// within fails the test unless the mean of xs is want ± tol.
func within(t *testing.T, what string, xs []float64, want, tol float64) {
	t.Helper()
	if m := mean(xs); !(math.Abs(m-want) <= tol) {
		t.Errorf("%s: mean %.2f over %d runs (%s), want %g ± %g", what, m, len(xs), stats(xs), want, tol)
	}
}

// below fails the test unless the mean of xs is under limit.
func below(t *testing.T, what string, xs []float64, limit float64) {
	t.Helper()
	if m := mean(xs); !(m < limit) {
		t.Errorf("%s: mean %.2f over %d runs (%s), want < %g", what, m, len(xs), stats(xs), limit)
	}
}

func measure(t *testing.T, d time.Duration, sets [][]*child, wall bool) []float64 {
	got, _ := measureTasks(t, d, sets, wall)
	return got
}

// measureTasks is measure, and the spread among each set's tasks:
// (max-min)/mean of their CPU times, in %.
func measureTasks(t *testing.T, d time.Duration, sets [][]*child, wall bool) (got, spread []float64) {
	t.Helper()
	time.Sleep(time.Second) // warm up: let both schedulers settle
	c0 := make([][]int64, len(sets))
	for i, ps := range sets {
		for _, p := range ps {
			c0[i] = append(c0[i], cpuTime(t, p.pid))
		}
	}
	w0 := time.Now()
	time.Sleep(d)
	elapsed := time.Since(w0)
	got = make([]float64, len(sets))
	spread = make([]float64, len(sets))
	var total int64
	for i, ps := range sets {
		var c, lo, hi int64
		for j, p := range ps {
			cj := cpuTime(t, p.pid) - c0[i][j]
			c += cj
			if j == 0 || cj < lo {
				lo = cj
			}
			if j == 0 || cj > hi {
				hi = cj
			}
		}
		if c > 0 {
			spread[i] = 100 * float64(hi-lo) * float64(len(ps)) / float64(c)
		}
		got[i] = float64(c)
		total += c
	}
	for i := range got {
		if wall {
			got[i] = 100 * got[i] / float64(elapsed)
		} else if total > 0 {
			got[i] = 100 * got[i] / float64(total)
		}
	}
	return got, spread
}

// stats formats a series as "mean (min–max)".
func stats(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, x := range xs {
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	return fmt.Sprintf("%.1f (%.1f–%.1f)", sum/float64(len(xs)), lo, hi)
}

func runScenarios(t *testing.T, scs []scenario) {
	benchEnabled(t)
	runs := envInt("CONTAINERFS_BENCH_RUNS", 3)
	secs := time.Duration(envInt("CONTAINERFS_BENCH_SECONDS", 5)) * time.Second
	d := testutil.StartDaemon(t)
	var table []string
	for _, sc := range scs {
		results := map[string]map[string][]float64{} // side → label → runs
		spreads := map[string]map[string][]float64{}
		var labels []string
		for r := 0; r < runs; r++ {
			for _, which := range []string{"kernel", "containerfs"} {
				func() {
					t.Run(fmt.Sprintf("%s/%s/%d", sc.name, which, r), func(t *testing.T) {
						var s *side
						if which == "kernel" {
							s = kernelSide(t)
						} else {
							s = ourSide(t, d)
						}
						ls, sets := sc.setup(t, s)
						labels = ls
						got, spread := measureTasks(t, secs, sets, sc.wall)
						if results[which] == nil {
							results[which] = map[string][]float64{}
							spreads[which] = map[string][]float64{}
						}
						for i, l := range ls {
							results[which][l] = append(results[which][l], got[i])
							spreads[which][l] = append(spreads[which][l], spread[i])
						}
						t.Logf("%s on %s: %v %v, spread among each's tasks %v", sc.name, which, ls, got, spread)
						// Kill the busy loops now, so the groups can go.
						for _, ps := range sets {
							for _, p := range ps {
								syscall.Kill(p.pid, syscall.SIGKILL)
								p.cmd.Wait()
							}
						}
					})
				}()
			}
		}
		for i, l := range labels {
			table = append(table, fmt.Sprintf("| %s | %s | %s | %s | %s |", sc.name, l,
				stats(results["kernel"][l]), stats(results["containerfs"][l]), sc.target()))
			if i < len(sc.want) {
				within(t, sc.name+", "+l, results["containerfs"][l], sc.want[i], sc.tol)
			}
		}
		if sc.spread {
			for _, l := range labels {
				table = append(table, fmt.Sprintf("| %s | spread among %s's tasks, (max-min)/mean %% | %s | %s | |", sc.name, l,
					stats(spreads["kernel"][l]), stats(spreads["containerfs"][l])))
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("\n%d runs of %v each, load average at the end: %s\n| scenario | group | kernel CFS %% | containerfs %% | target |\n|---|---|---|---|---|\n%s",
		runs, secs, strings.TrimSpace(string(load)), strings.Join(table, "\n"))
}

func busyIn(t *testing.T, dir string, n int, setsid bool, cpus ...int) []*child {
	t.Helper()
	var ps []*child
	for i := 0; i < n; i++ {
		p := spawn(t, busyLoop, setsid, cpus...)
		attach(t, dir, p)
		ps = append(ps, p)
	}
	return ps
}

func TestBenchShares(t *testing.T) {
	testutil.Short(t)
	runScenarios(t, []scenario{
		{
			name: "shares 9216:1024, one CPU",
			want: []float64{90}, tol: 2,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				g := s.mkdir(t, "guests", "cpu.shares", "9216")
				y := s.mkdir(t, "system", "cpu.shares", "1024")
				return []string{"guests"}, [][]*child{busyIn(t, g, 1, false, 0), busyIn(t, y, 1, false, 0)}
			},
		},
		{
			name: "3 tasks vs 1, equal shares, one CPU",
			want: []float64{50}, tol: 3,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				a := s.mkdir(t, "three")
				b := s.mkdir(t, "one")
				return []string{"three"}, [][]*child{busyIn(t, a, 3, false, 0), busyIn(t, b, 1, false, 0)}
			},
		},
		{
			name: "9216:1024, every task its own session",
			want: []float64{90}, tol: 2,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				g := s.mkdir(t, "guests", "cpu.shares", "9216")
				y := s.mkdir(t, "system", "cpu.shares", "1024")
				return []string{"guests"}, [][]*child{busyIn(t, g, 2, true, 0), busyIn(t, y, 2, true, 0)}
			},
		},
		{
			name: "nested Guests{a,b}/System",
			want: []float64{45, 45, 10}, tol: 3,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				g := s.mkdir(t, "guests", "cpu.shares", "9216")
				a := s.mkdir(t, "guests/guest-a")
				b := s.mkdir(t, "guests/guest-b")
				y := s.mkdir(t, "system", "cpu.shares", "1024")
				_ = g
				return []string{"guest-a", "guest-b", "system"},
					[][]*child{busyIn(t, a, 1, true, 0), busyIn(t, b, 2, true, 0), busyIn(t, y, 1, true, 0)}
			},
		},
	})
}

// TestBenchPartial is the case partial holds are for: on both CPUs,
// unpinned, 3 busy loops beside 1 at equal shares, all in one session.
// Without groups the kernel's per-task fairness gives 75/25; its group
// scheduling gives each group one CPU. Then the same with the 3 in a child
// of the group, and split between two children.
func TestBenchPartial(t *testing.T) {
	testutil.Short(t)
	runScenarios(t, []scenario{
		{
			name: "3 tasks vs 1, equal shares, 2 CPUs unpinned",
			want: []float64{50, 50}, tol: 3,
			spread: true,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				a := s.mkdir(t, "three")
				b := s.mkdir(t, "one")
				return []string{"three", "one"}, [][]*child{busyIn(t, a, 3, false), busyIn(t, b, 1, false)}
			},
		},
		{
			name: "Guests{a: 3 tasks}/System{1}, 2 CPUs unpinned",
			want: []float64{50, 50}, tol: 3,
			spread: true,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				s.mkdir(t, "guests")
				a := s.mkdir(t, "guests/a")
				y := s.mkdir(t, "system")
				return []string{"guests", "system"}, [][]*child{busyIn(t, a, 3, false), busyIn(t, y, 1, false)}
			},
		},
		{
			name: "Guests{a: 2 tasks, b: 1}/System{1}, 2 CPUs unpinned",
			want: []float64{25, 25, 50}, tol: 3,
			spread: true,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				s.mkdir(t, "guests")
				a := s.mkdir(t, "guests/a")
				b := s.mkdir(t, "guests/b")
				y := s.mkdir(t, "system")
				return []string{"guest-a", "guest-b", "system"}, [][]*child{busyIn(t, a, 2, false), busyIn(t, b, 1, false), busyIn(t, y, 1, false)}
			},
		},
	})
}

func TestBenchQuota(t *testing.T) {
	testutil.Short(t)
	runScenarios(t, []scenario{
		{
			name: "quota 20ms/100ms (% of one CPU)",
			want: []float64{20}, tol: 1,
			wall: true,
			setup: func(t *testing.T, s *side) ([]string, [][]*child) {
				q := s.mkdir(t, "q", "cpu.cfs_quota_us", "20000")
				return []string{"q"}, [][]*child{busyIn(t, q, 1, false)}
			},
		},
	})
}

// TestBenchDaemonCPU measures the daemon's own CPU time while it enforces
// 9216:1024 on 100 busy tasks on one CPU, against the same daemon's CPU
// time just before, with the same tasks in the root (the daemon also
// follows every fork and exit on the machine, which costs it CPU time
// whatever the cpu subsystem does). With 90+10 tasks in one session the
// kernel's own per-task fairness already gives 90:10 and few holds are
// needed; with 50+50 the system group is held most of the time.
func TestBenchDaemonCPU(t *testing.T) {
	testutil.Short(t)
	benchEnabled(t)
	secs := time.Duration(envInt("CONTAINERFS_BENCH_SECONDS", 5)) * time.Second
	runs := envInt("CONTAINERFS_BENCH_RUNS", 3)
	d := testutil.StartDaemon(t)
	pid := d.Cmd.Process.Pid
	var rows []string
	for _, nGuests := range []int{90, 50} {
		var base, cpu, shares []float64
		for r := 0; r < runs; r++ {
			t.Run(fmt.Sprintf("%d+%d/%d", nGuests, 100-nGuests, r), func(t *testing.T) {
				s := ourSide(t, d)
				g := s.mkdir(t, "guests", "cpu.shares", "9216")
				y := s.mkdir(t, "system", "cpu.shares", "1024")
				var gs, ys []*child
				for i := 0; i < 100; i++ {
					p := spawn(t, busyLoop, false, 0)
					if i < nGuests {
						gs = append(gs, p)
					} else {
						ys = append(ys, p)
					}
				}
				time.Sleep(time.Second)
				d0, w0 := procCPU(t, pid), time.Now()
				time.Sleep(secs)
				b := 100 * (procCPU(t, pid) - d0).Seconds() / time.Since(w0).Seconds()
				attach(t, g, gs...)
				attach(t, y, ys...)
				d1, w1 := procCPU(t, pid), time.Now()
				got := measure(t, secs, [][]*child{gs, ys}, false)
				pct := 100 * (procCPU(t, pid) - d1).Seconds() / time.Since(w1).Seconds()
				base = append(base, b)
				cpu = append(cpu, pct)
				shares = append(shares, got[0])
				t.Logf("daemon CPU %.2f%% of a core enforcing, %.2f%% before; guests %.1f%%", pct, b, got[0])
				for _, ps := range [][]*child{gs, ys} {
					for _, p := range ps {
						syscall.Kill(p.pid, syscall.SIGKILL)
						p.cmd.Wait()
					}
				}
			})
		}
		rows = append(rows,
			fmt.Sprintf("| daemon CPU enforcing 9216:1024 on %d+%d busy tasks on one CPU, %% of a core | %s | < 2 |", nGuests, 100-nGuests, stats(cpu)),
			fmt.Sprintf("| the same daemon just before, tasks in the root, %% of a core | %s | |", stats(base)),
			fmt.Sprintf("| guests' share in that run, %% | %s | 90 ± 2 |", stats(shares)))
		below(t, fmt.Sprintf("daemon CPU enforcing on %d+%d tasks, %% of a core", nGuests, 100-nGuests), cpu, 2)
		within(t, fmt.Sprintf("guests' share with %d+%d tasks, %%", nGuests, 100-nGuests), shares, 90, 2)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("\n%d runs of %v each, load average at the end: %s\n| scenario | containerfs | target |\n|---|---|---|\n%s",
		runs, secs, strings.TrimSpace(string(load)), strings.Join(rows, "\n"))
}

// procCPU is a process's user+system time, from /proc/PID/stat (ticks).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	st, err := proc.ReadStat("", pid)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(st.UTime+st.STime) * (time.Second / 100)
}

// TestBenchKernelParity makes the same writes in a bench-* cgroup of the
// kernel and in a containerfs mount and compares every errno and every
// value read back. It writes under /sys/fs/cgroup, so it runs with the
// benchmarks.
func TestBenchKernelParity(t *testing.T) {
	testutil.Short(t)
	benchEnabled(t)
	d := testutil.StartDaemon(t)
	steps := []struct{ file, value string }{
		{"p/cpu.shares", "0"}, {"p/cpu.shares", "262145"}, {"p/cpu.shares", "-1"}, {"p/cpu.shares", " 5"},
		{"p/cpu.shares", "5 "}, {"p/cpu.shares", "0x10"}, {"p/cpu.shares", "010"}, {"p/cpu.shares", "0x"},
		{"p/cpu.shares", "+7"}, {"p/cpu.shares", "7\n"}, {"p/cpu.shares", "7\n\n"}, {"p/cpu.shares", "18446744073709551616"},
		{"p/cpu.shares", "18014398509481984"}, {"p/cpu.shares", "1024"},
		{"p/cpu.cfs_quota_us", "50000"}, {"p/c/cpu.cfs_quota_us", "60000"}, {"p/c/cpu.cfs_quota_us", "50000"},
		{"p/c/cpu.cfs_period_us", "50000"}, {"p/c/cpu.cfs_quota_us", "-1"}, {"p/c/cpu.cfs_period_us", "50000"},
		{"p/c/cpu.cfs_quota_us", "30000"}, {"p/c/cpu.cfs_quota_us", "25000"}, {"p/cpu.cfs_quota_us", "20000"},
		{"p/cpu.cfs_period_us", "200000"}, {"p/cpu.cfs_quota_us", "-1"}, {"p/cpu.cfs_period_us", "1000000"},
		{"p/cpu.cfs_quota_us", "400000"}, {"p/cpu.cfs_quota_us", "500000"}, {"p/cpu.cfs_quota_us", "-9223372036854775808"},
		{"p/cpu.cfs_quota_us", "-9223372036854775809"}, {"p/cpu.cfs_quota_us", "9223372036854775807"},
		{"p/cpu.cfs_period_us", "18446744073709551615"}, {"p/cpu.cfs_period_us", "18446744073709552"},
		{"p/cpu.cfs_quota_us", "1000"}, {"p/cpu.cfs_period_us", "999"}, {"p/cpu.cfs_quota_us", "-1"},
		{"p/cpu.cfs_quota_us", "17592186044415"}, {"p/c/cpu.cfs_quota_us", "17592186044415"},
		{"p/c/cpu.cfs_period_us", "1000"},
	}
	run := func(s *side) []string {
		s.mkdir(t, "p")
		s.mkdir(t, "p/c")
		var out []string
		for _, st := range steps {
			path := filepath.Join(s.root, st.file)
			err := testutil.WriteFile(t, path, st.value)
			b, _ := os.ReadFile(path)
			out = append(out, fmt.Sprintf("%s <- %q: %v, reads %q", st.file, st.value, errnoOf(err), strings.TrimSpace(string(b))))
		}
		return out
	}
	kernel := run(kernelSide(t))
	ours := run(ourSide(t, d))
	for i := range steps {
		if kernel[i] != ours[i] {
			t.Errorf("got %s, want (kernel) %s", ours[i], kernel[i])
		} else {
			t.Logf("same: %s", ours[i])
		}
	}
}

// TestBenchEnforcerCPU measures what the cpu subsystem alone costs: an
// enforcer and a Stopper in this process (no daemon, so no fork tracking,
// which is most of an idle daemon's CPU time on a busy machine), enforcing
// 9216:1024 on 100 busy tasks pinned to one CPU, as this process's CPU time
// (getrusage) over the measurement.
func TestBenchEnforcerCPU(t *testing.T) {
	testutil.Short(t)
	benchEnabled(t)
	secs := time.Duration(envInt("CONTAINERFS_BENCH_SECONDS", 5)) * time.Second
	runs := envInt("CONTAINERFS_BENCH_RUNS", 3)
	var rows []string
	for _, nGuests := range []int{90, 50} {
		var cpu, shares []float64
		for r := 0; r < runs; r++ {
			t.Run(fmt.Sprintf("%d+%d/%d", nGuests, 100-nGuests, r), func(t *testing.T) {
				sp := stopper.New(stopper.Options{Logf: t.Logf})
				defer sp.Close()
				e := newEnforcer(sched.DefaultConfig, sp, t.Logf)
				e.start()
				defer e.close()
				g := e.newGroup(e.model.Root(), "guests")
				y := e.newGroup(e.model.Root(), "system")
				e.setShares(g, 9216)
				// The busy loops are children of a shell, not of this
				// process: the Stopper does not stop its own children.
				parent := spawn(t, "for i in $(seq 100); do taskset -c 0 sh -c '"+busyLoop+"' & done; wait", true)
				killChildrenAtEnd(t, parent)
				var kids []int
				if !eventually(30*time.Second, func() bool { kids = childrenOf(parent.pid); return len(kids) == 100 }) {
					t.Fatalf("got %d busy loops, want 100", len(kids))
				}
				var gs, ys []*child
				for i, k := range kids {
					st, err := proc.ReadStat("", k)
					if err != nil {
						t.Fatal(err)
					}
					start := st.Start
					p := &child{pid: k}
					if i < nGuests {
						e.addTask(k, start, g, false)
						gs = append(gs, p)
					} else {
						e.addTask(k, start, y, false)
						ys = append(ys, p)
					}
				}
				time.Sleep(time.Second)
				var ru0, ru1 syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
				w0 := time.Now()
				got := measure(t, secs, [][]*child{gs, ys}, false)
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
				used := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) -
					syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
				pct := 100 * used.Seconds() / time.Since(w0).Seconds()
				cpu = append(cpu, pct)
				shares = append(shares, got[0])
				st := e.Stats()
				t.Logf("enforcer+stopper CPU %.2f%% of a core; guests %.1f%%; %d ticks, %d stops", pct, got[0], st.Ticks, st.Stops)
			})
		}
		rows = append(rows,
			fmt.Sprintf("| cpu subsystem alone (enforcer + stopper), 9216:1024 on %d+%d busy tasks on one CPU, %% of a core | %s | < 2 |", nGuests, 100-nGuests, stats(cpu)),
			fmt.Sprintf("| guests' share in that run, %% | %s | 90 ± 2 |", stats(shares)))
		below(t, fmt.Sprintf("cpu subsystem CPU enforcing on %d+%d tasks, %% of a core", nGuests, 100-nGuests), cpu, 2)
		within(t, fmt.Sprintf("guests' share with %d+%d tasks, %%", nGuests, 100-nGuests), shares, 90, 2)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("\n%d runs of %v each, load average at the end: %s\n| scenario | containerfs | target |\n|---|---|---|\n%s",
		runs, secs, strings.TrimSpace(string(load)), strings.Join(rows, "\n"))
}

// TestBenchEnforcerCPUPartial is TestBenchEnforcerCPU for partial holds: 3
// busy loops beside 1, equal shares, unpinned on every CPU, so that the
// group of 3 runs one task at a time, rotated.
func TestBenchEnforcerCPUPartial(t *testing.T) {
	testutil.Short(t)
	benchEnabled(t)
	secs := time.Duration(envInt("CONTAINERFS_BENCH_SECONDS", 5)) * time.Second
	runs := envInt("CONTAINERFS_BENCH_RUNS", 3)
	var cpu, shares []float64
	for r := 0; r < runs; r++ {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			sp := stopper.New(stopper.Options{Logf: t.Logf})
			defer sp.Close()
			e := newEnforcer(sched.DefaultConfig, sp, t.Logf)
			e.start()
			defer e.close()
			a := e.newGroup(e.model.Root(), "three")
			b := e.newGroup(e.model.Root(), "one")
			parent := spawn(t, "for i in 1 2 3 4; do sh -c '"+busyLoop+"' & done; wait", true)
			killChildrenAtEnd(t, parent)
			var kids []int
			if !eventually(30*time.Second, func() bool { kids = childrenOf(parent.pid); return len(kids) == 4 }) {
				t.Fatalf("got %d busy loops, want 4", len(kids))
			}
			var as, bs []*child
			for i, k := range kids {
				st, err := proc.ReadStat("", k)
				if err != nil {
					t.Fatal(err)
				}
				start := st.Start
				if i < 3 {
					e.addTask(k, start, a, false)
					as = append(as, &child{pid: k})
				} else {
					e.addTask(k, start, b, false)
					bs = append(bs, &child{pid: k})
				}
			}
			time.Sleep(time.Second)
			st0 := e.Stats()
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			w0 := time.Now()
			got := measure(t, secs, [][]*child{as, bs}, false)
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			used := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) -
				syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
			el := time.Since(w0)
			pct := 100 * used.Seconds() / el.Seconds()
			cpu = append(cpu, pct)
			shares = append(shares, got[0])
			st := e.Stats()
			t.Logf("enforcer+stopper CPU %.2f%% of a core; the 3: %.1f%%; %.0f ticks/s, %.0f stops/s", pct, got[0],
				float64(st.Ticks-st0.Ticks)/el.Seconds(), float64(st.Stops-st0.Stops)/el.Seconds())
		})
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("\n%d runs of %v each, load average at the end: %s\n| cpu subsystem alone (enforcer + stopper), 3 vs 1 unpinned, %% of a core | %s |\n| the 3's share, %% | %s |",
		runs, secs, strings.TrimSpace(string(load)), stats(cpu), stats(shares))
	// The share's target is TestBenchPartial's for the same scenario; the
	// CPU time has none of its own.
	within(t, "the 3's share, %", shares, 50, 3)
}
