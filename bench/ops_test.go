package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/proc"
)

// The operations, as a program does them: plain system calls, no Go file
// wrappers, so what is timed is what the file system costs.

// writeFile is open+write+close, as `echo PID > tasks` does it, without
// O_TRUNC (which would add a SETATTR on FUSE and nothing on the kernel).
func writeFile(path string, data []byte) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	n, err := syscall.Write(fd, data)
	cerr := syscall.Close(fd)
	switch {
	case err != nil:
		return &os.PathError{Op: "write", Path: path, Err: err}
	case n != len(data):
		return fmt.Errorf("write %s: wrote %d of %d bytes", path, n, len(data))
	case cerr != nil:
		return &os.PathError{Op: "close", Path: path, Err: cerr}
	}
	return nil
}

// readFile is open, read(2) with buf until end of file, close, as cat does
// it; it returns how many bytes it read (the last chunk stays in buf).
func readFile(path string, buf []byte) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	total := 0
	for {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			syscall.Close(fd)
			return total, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		total += n
	}
	if err := syscall.Close(fd); err != nil {
		return total, &os.PathError{Op: "close", Path: path, Err: err}
	}
	return total, nil
}

// readBuf is the read size: 64 KiB, more than any tasks file here.
const readBuf = 64 << 10

// pidLines formats ids as a tasks file does: sorted, one per line.
func pidLines(ids []int) []byte {
	s := slices.Clone(ids)
	slices.Sort(s)
	var b []byte
	for _, id := range s {
		b = strconv.AppendInt(b, int64(id), 10)
		b = append(b, '\n')
	}
	return b
}

func readLines(tb testing.TB, path string) []string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Fields(string(b))
}

// compare runs op on every system, one sub-benchmark each, then all of them
// interleaved, one after the other in each iteration, so that a change in
// the machine's load (other work on a shared host) weighs on all alike. The
// interleaved sub-benchmark's ns/op is the sum over the systems; its metrics
// give each system's p50 and mean and containerfs's ratios. Both sets are
// also printed as a summary.
//
// The per-system sub-benchmarks also report CPU time per operation, of the
// serving process (srv-cpu-ns/op; 0 for the kernel, whose work is the
// client's system time) and of this process (cli-cpu-ns/op). Unlike
// latency, CPU time hardly depends on how busy the machine is.
func compare(b *testing.B, title string, ss []*system, op map[string]func() error) {
	res, inter := newResults(title), newResults(title+" (interleaved)")
	load0 := loadavg()
	idle := map[string]float64{}
	for _, s := range ss {
		if s.pid != 0 {
			idle[s.name] = idleCPU(s.pid, 300*time.Millisecond)
		}
	}
	self := os.Getpid()
	for _, s := range ss {
		do := op[s.name]
		b.Run(s.name, func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			srv0, cli0 := cpuTime(s.pid), cpuTime(self)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if err := do(); err != nil {
					b.Fatalf("%s: %v", s.name, err)
				}
				lat[i] = time.Since(t0)
			}
			b.StopTimer()
			srv, cli := (cpuTime(s.pid)-srv0)/time.Duration(b.N), (cpuTime(self)-cli0)/time.Duration(b.N)
			res.add(b, s.name, lat)
			res.cpu(s.name, srv, cli, idle[s.name])
			b.ReportMetric(float64(srv.Nanoseconds()), "srv-cpu-ns/op")
			b.ReportMetric(float64(cli.Nanoseconds()), "cli-cpu-ns/op")
		})
	}
	b.Run("interleaved", func(b *testing.B) {
		lat := make([][]time.Duration, len(ss))
		for j := range lat {
			lat[j] = make([]time.Duration, b.N)
		}
		b.ResetTimer()
		for i := range b.N {
			for j, s := range ss {
				t0 := time.Now()
				if err := op[s.name](); err != nil {
					b.Fatalf("%s: %v", s.name, err)
				}
				lat[j][i] = time.Since(t0)
			}
		}
		b.StopTimer()
		for j, s := range ss {
			st := inter.keep(s.name, lat[j])
			b.ReportMetric(float64(st.p50.Nanoseconds()), s.name+"-p50-ns")
		}
		c := inter.stats[cfsName]
		for _, ref := range []string{floorName, kernName} {
			if r, ok := inter.stats[ref]; ok && r.p50 > 0 {
				b.ReportMetric(ratio(c.p50, r.p50), "cfs/"+ref+"-p50")
				b.ReportMetric(ratio(c.mean, r.mean), "cfs/"+ref+"-mean")
			}
		}
	})
	fmt.Print(res.String() + inter.String())
	fmt.Printf("%s: load average %s at the start, %s at the end\n", title, load0, loadavg())
}

// cpuTime is the CPU time process pid's threads have run (the first field
// of /proc/PID/task/TID/schedstat, in ns); 0 for pid 0. It misses threads
// that exited meanwhile, which Go programs seldom have.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, _ := os.ReadDir(dir)
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if ss, err := proc.ParseSchedstat(b); err == nil {
			sum += time.Duration(ss.Run)
		}
	}
	return sum
}

// idleCPU is the share of a CPU process pid uses while no benchmark runs,
// measured over d: the containerfs daemon applies every fork and exit on
// the machine, so on a busy shared host it works when we do not.
func idleCPU(pid int, d time.Duration) float64 {
	c0, t0 := cpuTime(pid), time.Now()
	time.Sleep(d)
	return float64(cpuTime(pid)-c0) / float64(time.Since(t0))
}

// loadavg is the 1-minute load average: on a shared host, how busy the
// machine was, which the figures depend on.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// BenchmarkAttach is (a): open+write+close of tasks with the PID of a
// sleeping process, alternating between two containers so that every write
// moves it.
func BenchmarkAttach(b *testing.B) {
	sleeper := startHelper(b, 0)
	pid := []byte(strconv.Itoa(sleeper.PID) + "\n")
	ss := systems(b, setup{})
	op := map[string]func() error{}
	count := map[string]*int{}
	paths := map[string][2]string{}
	for _, s := range ss {
		var p [2]string
		for i, name := range []string{"a", "b"} {
			dir := filepath.Join(s.dir, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			p[i] = filepath.Join(dir, "tasks")
		}
		// Warm up, ending in b: the first timed write, to a, is a move,
		// and so is every one after it. k runs on across b.N rounds.
		for _, path := range p {
			if err := writeFile(path, pid); err != nil {
				b.Fatal(err)
			}
		}
		k := new(int)
		op[s.name] = func() error {
			err := writeFile(p[*k&1], pid)
			*k++
			return err
		}
		count[s.name], paths[s.name] = k, p
	}
	compare(b, "attach", ss, op)
	for _, s := range ss {
		if s.name == floorName {
			continue
		}
		// Every write moved it: it is where the last one put it.
		k, p := *count[s.name], paths[s.name]
		last, other := p[(k+1)&1], p[k&1]
		if !slices.Contains(readLines(b, last), strconv.Itoa(sleeper.PID)) ||
			slices.Contains(readLines(b, other), strconv.Itoa(sleeper.PID)) {
			b.Errorf("%s: pid %d is not (only) in %s after the benchmark", s.name, sleeper.PID, last)
		}
	}
}

// BenchmarkMkdirRmdir is (b): mkdir then rmdir of one container.
func BenchmarkMkdirRmdir(b *testing.B) {
	ss := systems(b, setup{})
	op := map[string]func() error{}
	for _, s := range ss {
		path := filepath.Join(s.dir, "mr")
		op[s.name] = func() error {
			if err := syscall.Mkdir(path, 0o755); err != nil {
				return &os.PathError{Op: "mkdir", Path: path, Err: err}
			}
			if err := syscall.Rmdir(path); err != nil {
				return &os.PathError{Op: "rmdir", Path: path, Err: err}
			}
			return nil
		}
	}
	compare(b, "mkdir+rmdir", ss, op)
}

// taskCounts are the container sizes of (c).
var taskCounts = []int{1, 100, 1000}

// BenchmarkReadTasks is (c): open+read-all+close of tasks of a container
// with 1, 100 and 1000 members: threads of helper processes, each TID
// written to tasks. The floor's file holds the same bytes.
func BenchmarkReadTasks(b *testing.B) {
	members := map[int][]int{}
	for _, n := range taskCounts {
		threads := n
		if n == 1 {
			threads = 0 // the member is the helper's own PID
		}
		h := startHelper(b, threads)
		members[n] = h.TIDs[:n]
	}
	ss := systems(b, setup{})
	for _, s := range ss {
		for _, n := range taskCounts {
			fillTasks(b, s, n, members[n])
		}
	}
	buf := make([]byte, readBuf)
	for _, n := range taskCounts {
		want := len(pidLines(members[n]))
		op := map[string]func() error{}
		for _, s := range ss {
			path := filepath.Join(s.dir, fmt.Sprintf("m%d", n), "tasks")
			op[s.name] = func() error {
				got, err := readFile(path, buf)
				if err == nil && got != want {
					err = fmt.Errorf("%s: read %d bytes, want %d", path, got, want)
				}
				return err
			}
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			compare(b, fmt.Sprintf("read tasks n=%d", n), ss, op)
		})
	}
}

// fillTasks makes container m<n> of s with tids as members; the floor's
// tasks file is given the content a tasks file with them has.
func fillTasks(tb testing.TB, s *system, n int, tids []int) {
	tb.Helper()
	dir := filepath.Join(s.dir, fmt.Sprintf("m%d", n))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tasks := filepath.Join(dir, "tasks")
	want := pidLines(tids)
	if s.name == floorName {
		if err := writeFile(tasks, want); err != nil {
			tb.Fatal(err)
		}
	} else {
		for _, tid := range tids {
			if err := writeFile(tasks, []byte(strconv.Itoa(tid))); err != nil {
				tb.Fatal(err)
			}
		}
	}
	got, err := os.ReadFile(tasks)
	if err != nil {
		tb.Fatal(err)
	}
	if string(got) != string(want) {
		tb.Fatalf("%s: %s holds %d bytes (%d lines), want %d bytes (%d lines)", s.name, tasks,
			len(got), strings.Count(string(got), "\n"), len(want), len(tids))
	}
}

// BenchmarkAttachParts times, outside FUSE, what containerfs's attach does
// besides the floor's work: core.ProcFS.Task, which reads /proc/PID/stat and
// /proc/PID/status of the task being moved, and, for comparison, raw reads
// (open, read, close) of each of the two files.
func BenchmarkAttachParts(b *testing.B) {
	sleeper := startHelper(b, 0)
	procs := core.ProcFS{Root: "/proc"}
	b.Run("procfs-task", func(b *testing.B) {
		for range b.N {
			if _, err := procs.Task(sleeper.PID); err != nil {
				b.Fatal(err)
			}
		}
	})
	buf := make([]byte, 4096)
	for _, name := range []string{"stat", "status"} {
		path := fmt.Sprintf("/proc/%d/%s", sleeper.PID, name)
		b.Run("raw-"+name+"-read", func(b *testing.B) {
			for range b.N {
				if _, err := readFile(path, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
