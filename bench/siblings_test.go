package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

// gate skips the slow measurements unless CONTAINERFS_BENCH=1.
func gate(t *testing.T) {
	t.Helper()
	if os.Getenv("CONTAINERFS_BENCH") != "1" {
		t.Skip("a measurement, not a test: set CONTAINERFS_BENCH=1 to run it")
	}
}

// siblings is how many containers TestSiblings makes:
// $CONTAINERFS_BENCH_SIBLINGS, 10,000 by default.
func siblings(t *testing.T) int {
	if v := os.Getenv("CONTAINERFS_BENCH_SIBLINGS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("CONTAINERFS_BENCH_SIBLINGS=%q: want a positive count", v)
		}
		return n
	}
	return 10000
}

// meminfo reads fields of /proc/meminfo, in KB.
func meminfo(t *testing.T, fields ...string) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sum int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, want := range fields {
			if k == want {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// vmRSS is process pid's resident set, in KB.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// kernelKB is the kernel memory that containers can account for, in KB:
// slab and per-CPU allocations. It is machine-wide, so only a rough figure.
func kernelKB(t *testing.T) int64 { return meminfo(t, "Slab", "Percpu") }

type heapStat struct{ bytes, objects int64 }

// settle is how long TestSiblings waits for FORGETs before it measures what
// removed containers left on the heap.
const settle = 3 * time.Second

// liveHeap collects garbage and returns what is live on this process's heap:
// when containerfs is served in this process (CONTAINERFS_BENCH_INPROC=1),
// the forced GC that the daemon does not allow from outside.
func liveHeap() heapStat {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return heapStat{bytes: int64(ms.HeapAlloc), objects: int64(ms.HeapObjects)}
}

// heapProfile writes this process's heap profile to
// $CONTAINERFS_BENCH_HEAPPROFILE-<label>-<i>.pprof, if that is set: compare
// two with go tool pprof -base.
func heapProfile(t *testing.T, label string, i int) {
	prefix := os.Getenv("CONTAINERFS_BENCH_HEAPPROFILE")
	if prefix == "" {
		return
	}
	name := fmt.Sprintf("%s-%s-%d.pprof", prefix, strings.ReplaceAll(label, " ", "_"), i)
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

// TestSiblings is (d): make 10,000 sibling containers, then remove them,
// timing each phase, with the serving process's resident memory before and
// after (there is no way to make the daemon collect garbage from outside, so
// the figure includes whatever garbage its last GC left; the GOGC=10 rows,
// where the collector runs ten times as often, show how much of it is live),
// and the kernel's slab and per-CPU memory.
//
// Its targets (bench/README.md, "Verdicts", (d)): containerfs makes 10,000
// containers in under 2 s (scaled to $CONTAINERFS_BENCH_SIBLINGS), and its
// daemon grows by under 14 KB per container, the kernel's own figure. A
// miss fails the test.
func TestSiblings(t *testing.T) {
	gate(t)
	testutil.Short(t)
	n := siblings(t)
	load0 := loadavg()
	type row struct {
		system              string
		create, remove      time.Duration
		mk, rm              stat  // per mkdir, per rmdir
		rss0, rss1, rss2    int64 // KB: before, after making, after removing
		kern0, kern1, kern2 int64 // KB
		rss4                int64 // KB: after a second round of making and removing
		create2, remove2    time.Duration
		heap                [4]heapStat // in-process only: before, made, removed, second round
	}
	var rows []row
	measure := func(s *system, label string) {
		names := make([]string, n)
		for i := range names {
			names[i] = filepath.Join(s.dir, fmt.Sprintf("s%05d", i))
		}
		r := row{system: label}
		rss := func() int64 {
			if s.pid == 0 {
				return 0
			}
			return vmRSS(t, s.pid)
		}
		inproc := s.pid == os.Getpid()
		if inproc {
			r.heap[0] = liveHeap()
			heapProfile(t, label, 0)
		}
		r.rss0, r.kern0 = rss(), kernelKB(t)
		lat := make([]time.Duration, n)
		t0 := time.Now()
		for i, name := range names {
			t1 := time.Now()
			if err := syscall.Mkdir(name, 0o755); err != nil {
				t.Fatalf("%s: mkdir %s: %v", label, name, err)
			}
			lat[i] = time.Since(t1)
		}
		r.create = time.Since(t0)
		r.mk = summarize(lat)
		r.rss1, r.kern1 = rss(), kernelKB(t)
		if inproc {
			r.heap[1] = liveHeap()
		}
		t0 = time.Now()
		for i, name := range names {
			t1 := time.Now()
			if err := syscall.Rmdir(name); err != nil {
				t.Fatalf("%s: rmdir %s: %v", label, name, err)
			}
			lat[i] = time.Since(t1)
		}
		r.remove = time.Since(t0)
		r.rm = summarize(lat)
		r.rss2, r.kern2 = rss(), kernelKB(t)
		if inproc {
			// The kernel sends the FORGETs of removed directories later,
			// in batches: give them time before looking for leftovers.
			time.Sleep(settle)
			r.heap[2] = liveHeap()
			heapProfile(t, label, 2)
		}
		// A second round: memory that stays after it, too, is leaked;
		// memory that the first round left and this one reuses is not.
		t0 = time.Now()
		for _, name := range names {
			if err := syscall.Mkdir(name, 0o755); err != nil {
				t.Fatalf("%s: mkdir %s: %v", label, name, err)
			}
		}
		r.create2 = time.Since(t0)
		t0 = time.Now()
		for _, name := range names {
			if err := syscall.Rmdir(name); err != nil {
				t.Fatalf("%s: rmdir %s: %v", label, name, err)
			}
		}
		r.remove2 = time.Since(t0)
		r.rss4 = rss()
		if inproc {
			time.Sleep(settle)
			r.heap[3] = liveHeap()
		}
		rows = append(rows, r)
	}
	for _, s := range systems(t, setup{}) {
		measure(s, s.name)
	}
	for _, s := range systems(t, setup{env: []string{"GOGC=10"}, noKernel: true}) {
		measure(s, s.name+" GOGC=10")
	}

	perC := func(kb int64) float64 { return float64(kb) / float64(n) }
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d sibling containers\n", n)
	fmt.Fprintf(&sb, "%-20s %9s %9s %9s %9s %9s %10s %10s %10s\n", "system", "create", "remove",
		"create2", "remove2", "RSS0 MB", "RSS KB/c", "left MB", "left2 MB")
	for _, r := range rows {
		rssPer, rss0, left, left2 := "-", "-", "-", "-"
		if r.rss0 != 0 {
			rssPer = fmt.Sprintf("%.2f", perC(r.rss1-r.rss0))
			rss0 = fmt.Sprintf("%.1f", float64(r.rss0)/1024)
			left = fmt.Sprintf("%+.1f", float64(r.rss2-r.rss0)/1024)
			left2 = fmt.Sprintf("%+.1f", float64(r.rss4-r.rss0)/1024)
		}
		fmt.Fprintf(&sb, "%-20s %8.3fs %8.3fs %8.3fs %8.3fs %9s %10s %10s %10s\n", r.system,
			r.create.Seconds(), r.remove.Seconds(), r.create2.Seconds(), r.remove2.Seconds(),
			rss0, rssPer, left, left2)
	}
	fmt.Fprintf(&sb, "\n%-20s %24s %24s %10s\n", "", "mkdir p50 / p99", "rmdir p50 / p99", "kmem KB/c")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-20s %11v / %10v %11v / %10v %10.2f\n", r.system,
			r.mk.p50.Round(time.Microsecond), r.mk.p99.Round(time.Microsecond),
			r.rm.p50.Round(time.Microsecond), r.rm.p99.Round(time.Microsecond), perC(r.kern1-r.kern0))
	}
	for _, r := range rows {
		if r.heap[0].bytes == 0 {
			continue
		}
		h := r.heap
		fmt.Fprintf(&sb, "\n%s served in this process, live heap after a forced GC (leftovers measured %v after the last rmdir):\n"+
			"  per container made: %.2f KB, %.1f objects\n"+
			"  left after removing them: %+.1f MB, %+d objects; after the second round: %+.1f MB, %+d objects\n",
			r.system, settle, float64(h[1].bytes-h[0].bytes)/1024/float64(n), float64(h[1].objects-h[0].objects)/float64(n),
			float64(h[2].bytes-h[0].bytes)/(1<<20), h[2].objects-h[0].objects,
			float64(h[3].bytes-h[0].bytes)/(1<<20), h[3].objects-h[0].objects)
	}
	sb.WriteString("create, remove: wall time of each phase; create2, remove2: the same, a second round.\n" +
		"RSS KB/c: the serving process's VmRSS growth per container made.\n" +
		"left, left2: VmRSS after removing them all, after the first and the second round,\n" +
		"  against before the first.\n" +
		"kmem KB/c: machine-wide Slab+Percpu growth per container made (rough).\n" +
		"load average: " + load0 + " at the start, " + loadavg() + " at the end.\n")
	fmt.Print(sb.String())

	budget := siblingsTime * time.Duration(n) / 10000
	for _, r := range rows {
		if r.system != cfsName {
			continue
		}
		if r.create >= budget {
			t.Errorf("containerfs made %d containers in %v: want under %v", n, r.create.Round(time.Millisecond), budget)
		}
		if r.rss0 != 0 {
			if per := perC(r.rss1 - r.rss0); per >= siblingsKB {
				t.Errorf("containerfs grew by %.2f KB per container: want under %d KB", per, siblingsKB)
			}
		}
	}
}

// The targets of TestSiblings, for 10,000 containers.
const (
	siblingsTime = 2 * time.Second
	siblingsKB   = 14
)
