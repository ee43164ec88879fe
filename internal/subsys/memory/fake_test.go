package memory

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
)

// fakePauser records the tasks held.
type fakePauser struct {
	held map[int]bool
	log  []string
}

func (f *fakePauser) Stop(tid int, start uint64, reason string) {
	f.held[tid] = true
	f.log = append(f.log, fmt.Sprintf("stop %d", tid))
}

func (f *fakePauser) Forget(tid int, reason string) {
	delete(f.held, tid)
	f.log = append(f.log, fmt.Sprintf("forget %d", tid))
}

// fixture is a registry with a memory hierarchy over a fake /proc, whose
// sampler is run by hand and kills nothing real.
type fixture struct {
	*testutil.Model
	t      *testing.T
	s      *Subsys
	h      *core.Hierarchy
	e      *engine // the hierarchy's, from the root's state
	proc   string  // the fake procfs
	pauser *fakePauser
	killed []int
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, proc: t.TempDir(), pauser: &fakePauser{held: map[int]bool{}},
		now: time.Unix(1000, 0)}
	f.s = &Subsys{manual: true, procRoot: f.proc, Pauser: f.pauser, Logf: t.Logf,
		clock: func() time.Time { return f.now }}
	f.s.sendKill = func(tgid int, start uint64) error {
		f.killed = append(f.killed, tgid)
		return nil
	}
	f.writeProc("vmstat", "nr_file_pages 1000\nnr_anon_pages 500\nnr_mapped 300\nnr_shmem 10\npgfault 123456\nnr_active_anon 400\n")
	f.writeProc("meminfo", "MemTotal: 1000 kB\nSwapTotal: 100 kB\nSwapFree: 60 kB\nAnonHugePages: 2048 kB\n")
	f.writeProc("sys/vm/swappiness", "30\n")
	f.writeProc("swaps", "Filename\tType\tSize\tUsed\tPriority\n")
	f.Model = testutil.NewModel(t, f.s)
	h := f.Mount("memory")
	f.h = h
	f.e = f.s.state(h.Root()).e
	t.Cleanup(func() { f.Reg.Unmount(h) })
	return f
}

func (f *fixture) writeProc(name, data string) {
	f.t.Helper()
	path := filepath.Join(f.proc, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// mem is what the fake /proc says of a process's memory, in MiB.
type mem struct {
	rss, shared float64 // statm: resident, and its file part
	pss, anon   float64 // smaps_rollup: Pss, and Pss_Anon (the rest is file)
	adj         int     // oom_score_adj
}

// process makes process tgid (one thread) known to /proc and to the model,
// in the root container.
func (f *fixture) process(tgid int, start uint64, m mem) {
	f.t.Helper()
	f.thread(tgid, tgid, start)
	f.setMem(tgid, m)
	f.writeProc(fmt.Sprintf("%d/comm", tgid), fmt.Sprintf("proc%d\n", tgid))
}

// thread makes a thread known to /proc and to the model.
func (f *fixture) thread(tid, tgid int, start uint64) {
	f.t.Helper()
	stat := fmt.Sprintf("%d (proc%d) S 1 1 1 0 -1 0 %d 0 %d 0 0 0 0 0 20 0 1 0 %d 0 0\n", tid, tgid, 10*tid, tid, start)
	if tid == tgid {
		f.writeProc(fmt.Sprintf("%d/stat", tgid), stat)
	}
	f.writeProc(fmt.Sprintf("%d/task/%d/stat", tgid, tid), stat)
	f.Task(tid, tgid, start)
}

// setMem rewrites a process's statm, smaps_rollup and oom_score_adj. The
// sampler's open files see the new content: they are preads of the same
// inode.
func (f *fixture) setMem(tgid int, m mem) {
	pages := func(mib float64) int64 { return int64(mib * 256) }
	kb := func(mib float64) int64 { return int64(mib * 1024) }
	f.writeProc(fmt.Sprintf("%d/statm", tgid), fmt.Sprintf("100000 %d %d 10 0 5000 0\n", pages(m.rss), pages(m.shared)))
	f.writeProc(fmt.Sprintf("%d/smaps_rollup", tgid), fmt.Sprintf(
		"00400000-7fff00000000 ---p 00000000 00:00 0  [rollup]\nRss: %d kB\nPss: %d kB\nPss_Anon: %d kB\nPss_File: %d kB\nPss_Shmem: 0 kB\nAnonymous: %d kB\nAnonHugePages: 0 kB\nSwapPss: 0 kB\nLocked: 0 kB\n",
		kb(m.rss), kb(m.pss), kb(m.anon), kb(m.pss-m.anon), kb(m.rss-m.shared)))
	f.writeProc(fmt.Sprintf("%d/oom_score_adj", tgid), fmt.Sprintf("%d\n", m.adj))
}

// exit makes a process a zombie in /proc (statm all zeros, no rollup) and
// reports its threads' exits to the model.
func (f *fixture) exit(tgid int) {
	f.t.Helper()
	f.writeProc(fmt.Sprintf("%d/statm", tgid), "0 0 0 0 0 0 0\n")
	f.writeProc(fmt.Sprintf("%d/smaps_rollup", tgid), "")
	for tid, ti := range f.Procs {
		if ti.TGID == tgid {
			f.Exit(tid)
		}
	}
}

func (f *fixture) attach(c *core.Container, pid int, group bool) {
	f.t.Helper()
	if err := f.Reg.Attach(c, core.Caller{}, pid, group); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) fork(parent, tid, tgid int, start uint64) {
	f.t.Helper()
	stat := fmt.Sprintf("%d (proc%d) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", tid, tgid, start)
	if tid == tgid {
		f.writeProc(fmt.Sprintf("%d/stat", tgid), stat)
	}
	f.writeProc(fmt.Sprintf("%d/task/%d/stat", tgid, tid), stat)
	f.Fork(parent, tid, tgid, start)
}

// stat reads one key of memory.stat.
func (f *fixture) stat(c *core.Container, key string) int64 {
	f.t.Helper()
	for _, line := range strings.Split(f.Read(c, "memory.stat"), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	f.t.Fatalf("%s/memory.stat has no %s", c.Path(), key)
	return 0
}

// tick runs one sampling round after advancing the clock by 10 ms.
func (f *fixture) tick(slow bool) {
	f.now = f.now.Add(10 * time.Millisecond)
	f.e.tick(slow)
}

const mib = 1 << 20
