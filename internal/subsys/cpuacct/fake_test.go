package cpuacct

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/taskstats"
)

// world is a fake machine: the tasks /proc would show and what sampling
// them gives.
type world struct {
	mu      sync.Mutex
	info    map[int]core.TaskInfo
	samples map[int]sample // what /proc gives now; missing: the task is gone
	now     time.Time
	root    procStat
}

func newWorld() *world {
	return &world{info: map[int]core.TaskInfo{}, samples: map[int]sample{}, now: time.Unix(1e9, 0)}
}

// Task and Threads make the world a core.Procs.
func (w *world) Task(tid int) (core.TaskInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ti, ok := w.info[tid]
	if !ok {
		return core.TaskInfo{}, syscall.ESRCH
	}
	return ti, nil
}

func (w *world) Threads(tgid int) ([]int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var tids []int
	for tid, ti := range w.info {
		if ti.TGID == tgid {
			tids = append(tids, tid)
		}
	}
	if len(tids) == 0 {
		return nil, syscall.ESRCH
	}
	return tids, nil
}

// set makes /proc show tid with run ns (split in the ticks given) on cpu.
func (w *world) set(tid int, run, uticks, sticks uint64, cpu int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.samples[tid]
	sm := splitRun(run, uticks, sticks)
	sm.cpu = cpu
	sm.kids, sm.ppid, sm.hasStat = old.kids, old.ppid, true
	w.samples[tid] = sm
}

// setKids makes /proc show tid's thread group's cutime+cstime (ns) and
// its parent.
func (w *world) setKids(tid int, kids uint64, ppid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sm := w.samples[tid]
	sm.kids, sm.ppid = kids, ppid
	w.samples[tid] = sm
}

func (w *world) gone(tid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.samples, tid)
}

type fakeSource struct {
	w   *world
	tid int
}

func (w *world) open(tid int, start uint64) (source, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.samples[tid]; !ok {
		return nil, syscall.ESRCH
	}
	return &fakeSource{w, tid}, nil
}

func (f *fakeSource) read(lastRun uint64) (sample, error) {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	sm, ok := f.w.samples[f.tid]
	if !ok {
		return sample{}, syscall.ESRCH
	}
	return sm, nil
}

func (f *fakeSource) close() {}

// rig is a registry with cpuacct mounted on a fake world.
type rig struct {
	t *testing.T
	w *world
	s *Subsys
	r *core.Registry
	h *core.Hierarchy
}

func newRig(t *testing.T) *rig {
	w := newWorld()
	s := &Subsys{noBG: true, noThrottle: true, cpus: 2, open: w.open, now: func() time.Time {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.now
	}, readRoot: func() (procStat, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.root, nil
	}}
	r := core.NewRegistry(w, s)
	h, err := r.Mount("cpuacct")
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, w: w, s: s, r: r, h: h}
}

// acct is the hierarchy's accounting.
func (g *rig) acct() *acct { return g.s.group(g.h.Root()).a }

// mkdir makes container path ("a/b"), parents first as needed.
func (g *rig) mkdir(path string) *core.Container {
	c := g.h.Root()
	for name := range strings.SplitSeq(path, "/") {
		if e, ok := c.Lookup(name); ok && e.Child != nil {
			c = e.Child
			continue
		}
		var err error
		if c, err = g.r.Mkdir(c, name, 0o755, core.Caller{}); err != nil {
			g.t.Fatal(err)
		}
	}
	return c
}

// spawn makes a task that exists in the root, with run ns so far.
func (g *rig) spawn(tid, tgid int, run uint64) {
	g.w.mu.Lock()
	g.w.info[tid] = core.TaskInfo{TID: tid, TGID: tgid, Start: 1000}
	g.w.mu.Unlock()
	g.w.set(tid, run, 0, 0, 0)
	g.r.AddTask(core.TaskInfo{TID: tid, TGID: tgid, Start: 1000})
}

// fork records a fork event: child (a new process) of parent.
func (g *rig) fork(parent, child int) {
	info := core.TaskInfo{TID: child, TGID: child, Start: 1000}
	g.w.mu.Lock()
	g.w.info[child] = info
	g.w.mu.Unlock()
	g.w.set(child, 0, 0, 0, 0)
	if !g.r.Fork(parent, info) {
		g.t.Fatalf("fork %d→%d: parent unknown", parent, child)
	}
}

func (g *rig) attach(c *core.Container, tid int) {
	if err := g.r.Attach(c, core.Caller{}, tid, false); err != nil {
		g.t.Fatalf("attach %d: %v", tid, err)
	}
}

func (g *rig) exit(tid int) {
	g.w.gone(tid)
	g.w.mu.Lock()
	delete(g.w.info, tid)
	g.w.mu.Unlock()
	g.r.Exit(tid, 0)
}

// record delivers an exit record as the listener of cpu would.
func (g *rig) record(cpu, tid, tgid, ppid int, run, userUS, sysUS uint64) {
	g.acct().onRecords(nil, cpu, []taskstats.Record{{ID: tid, Stats: taskstats.Stats{
		PID: tid, TGID: tgid, PPID: ppid, RunVirtualNS: run, UserUS: userUS, SysUS: sysUS,
	}}})
}

func (g *rig) advance(d time.Duration) {
	g.w.mu.Lock()
	g.w.now = g.w.now.Add(d)
	g.w.mu.Unlock()
}

func (g *rig) read(c *core.Container, name string) string {
	g.t.Helper()
	e, ok := c.Lookup("cpuacct." + name)
	if !ok || e.File == nil {
		g.t.Fatalf("no file cpuacct.%s in %s", name, c.Path())
	}
	s, err := g.r.ReadFile(c, e.File)
	if err != nil {
		g.t.Fatalf("read cpuacct.%s: %v", name, err)
	}
	return s
}

func (g *rig) usage(c *core.Container) uint64 {
	g.t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(g.read(c, "usage")), 10, 64)
	if err != nil {
		g.t.Fatal(err)
	}
	return v
}

func (g *rig) write(c *core.Container, name, data string) error {
	e, ok := c.Lookup("cpuacct." + name)
	if !ok {
		return fmt.Errorf("no file %s", name)
	}
	return g.r.WriteFile(c, e.File, core.Caller{}, data)
}
