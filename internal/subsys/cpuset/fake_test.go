package cpuset

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/subsys/cpulist"
)

// fakeKernel is a machine in memory: 4 of 8 possible CPUs online, nodes
// 0-1 of 64, and an affinity per task. It records every sched_setaffinity
// and migrate_pages asked of it.
type fakeKernel struct {
	mu       sync.Mutex
	topo     Topology
	aff      map[int]cpulist.Set
	start    map[int]uint64
	sets     []string // "tid:cpus" per SetAffinity, in order
	migrated []string // "pid:from>to" per MigratePages
	refuse   map[int]bool
}

var _ Kernel = (*fakeKernel)(nil)

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		topo: Topology{
			CPUs: cpulist.Range(0, 3), Mems: cpulist.Of(0, 1),
			NrCPUIDs: 8, NrCPUs: 8, MaxNodes: 64,
		},
		aff:    map[int]cpulist.Set{},
		start:  map[int]uint64{},
		refuse: map[int]bool{},
	}
}

func (k *fakeKernel) Topology() (Topology, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.topo, nil
}

func (k *fakeKernel) Affinity(tid int) (cpulist.Set, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	a, ok := k.aff[tid]
	if !ok {
		return cpulist.Set{}, fmt.Errorf("fake task %d: %w", tid, syscall.ESRCH)
	}
	return a, nil
}

func (k *fakeKernel) SetAffinity(tid int, cpus cpulist.Set) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.aff[tid]; !ok {
		return fmt.Errorf("fake task %d: %w", tid, syscall.ESRCH)
	}
	if k.refuse[tid] {
		return fmt.Errorf("fake task %d: %w", tid, syscall.EINVAL)
	}
	k.aff[tid] = cpus
	k.sets = append(k.sets, fmt.Sprintf("%d:%s", tid, cpus))
	return nil
}

func (k *fakeKernel) StartTime(tid int) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, ok := k.start[tid]
	if !ok {
		return 0, syscall.ESRCH
	}
	return st, nil
}

func (k *fakeKernel) MigratePages(pid int, from, to cpulist.Set) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.migrated = append(k.migrated, fmt.Sprintf("%d:%s>%s", pid, from, to))
	return nil
}

// task sets what the kernel knows of a task: its start time and affinity.
func (k *fakeKernel) task(tid int, start uint64, aff cpulist.Set) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.start[tid] = start
	k.aff[tid] = aff
}

// setAff is a task calling sched_setaffinity on itself.
func (k *fakeKernel) setAff(tid int, aff cpulist.Set) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.aff[tid] = aff
}

func (k *fakeKernel) affinity(tid int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.aff[tid].String()
}

// takeSets returns the SetAffinity calls since the last take.
func (k *fakeKernel) takeSets() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sets
	k.sets = nil
	return s
}

// fakeProcs is the core's view of the machine's tasks.
type fakeProcs struct {
	mu    sync.Mutex
	tasks map[int]core.TaskInfo
}

var _ core.Procs = (*fakeProcs)(nil)

func (p *fakeProcs) Task(tid int) (core.TaskInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ti, ok := p.tasks[tid]
	if !ok {
		return core.TaskInfo{}, fmt.Errorf("fake task %d: %w", tid, syscall.ESRCH)
	}
	return ti, nil
}

func (p *fakeProcs) Threads(tgid int) ([]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var tids []int
	for tid, ti := range p.tasks {
		if ti.TGID == tgid {
			tids = append(tids, tid)
		}
	}
	if len(tids) == 0 {
		return nil, syscall.ESRCH
	}
	slices.Sort(tids)
	return tids, nil
}

// rig is a registry with the cpuset subsystem on a fake machine, mounted.
type rig struct {
	t     *testing.T
	k     *fakeKernel
	procs *fakeProcs
	ss    *Subsys
	r     *core.Registry
	h     *core.Hierarchy
	root  *core.Container
	logs  []string
	logMu sync.Mutex
}

var rootCaller = core.Caller{PID: 1}

func newRig(t *testing.T, opts string) *rig {
	t.Helper()
	return newRigInterval(t, opts, time.Hour)
}

// newRigInterval is newRig with the checker running every interval.
func newRigInterval(t *testing.T, opts string, interval time.Duration) *rig {
	t.Helper()
	g := &rig{t: t, k: newFakeKernel(), procs: &fakeProcs{tasks: map[int]core.TaskInfo{}}}
	// With an hour's interval the checker never runs by itself: tests
	// call check.
	g.ss = &Subsys{Kernel: g.k, Interval: interval, Logf: func(f string, a ...any) {
		g.logMu.Lock()
		defer g.logMu.Unlock()
		g.logs = append(g.logs, fmt.Sprintf(f, a...))
	}}
	g.r = core.NewRegistry(g.procs, g.ss)
	h, err := g.r.Mount(opts)
	if err != nil {
		t.Fatalf("Mount(%q): got error %v, want nil", opts, err)
	}
	g.h, g.root = h, h.Root()
	t.Cleanup(func() { g.enforcer().close() })
	return g
}

func (g *rig) enforcer() *enforcer { return g.ss.state(g.root).e }

// proc adds a process (TGID == TID) with the given affinity, started at
// tick tid (distinct per task).
func (g *rig) proc(tid int, aff cpulist.Set) {
	g.thread(tid, tid, aff)
}

func (g *rig) thread(tid, tgid int, aff cpulist.Set) {
	g.procs.mu.Lock()
	g.procs.tasks[tid] = core.TaskInfo{TID: tid, TGID: tgid, Start: uint64(tid)}
	g.procs.mu.Unlock()
	g.k.task(tid, uint64(tid), aff)
}

// fork is a fork event: child (a new process, or a thread of tgid) of
// parent, with the affinity it inherited.
func (g *rig) fork(parent, child, tgid int, aff cpulist.Set) {
	g.t.Helper()
	g.thread(child, tgid, aff)
	if !g.r.Fork(parent, core.TaskInfo{TID: child, TGID: tgid, Start: uint64(child)}) {
		g.t.Fatalf("Fork(%d, %d): got false, want true", parent, child)
	}
}

func (g *rig) exit(tid int) {
	g.r.Exit(tid, 0)
	g.k.mu.Lock()
	delete(g.k.aff, tid)
	g.k.mu.Unlock()
}

func (g *rig) mkdir(parent *core.Container, name string) *core.Container {
	g.t.Helper()
	c, err := g.r.Mkdir(parent, name, 0o755, rootCaller)
	if err != nil {
		g.t.Fatalf("Mkdir(%q): got error %v, want nil", name, err)
	}
	return c
}

func (g *rig) file(c *core.Container, name string) *core.BoundFile {
	g.t.Helper()
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		g.t.Fatalf("%s has no file %q", c.Path(), name)
	}
	return e.File
}

func (g *rig) read(c *core.Container, name string) string {
	g.t.Helper()
	s, err := g.r.ReadFile(c, g.file(c, name))
	if err != nil {
		g.t.Fatalf("read %s%s: got error %v, want nil", c.Path(), name, err)
	}
	return s
}

func (g *rig) write(c *core.Container, name, data string) error {
	g.t.Helper()
	return g.r.WriteFile(c, g.file(c, name), rootCaller, data)
}

func (g *rig) mustWrite(c *core.Container, name, data string) {
	g.t.Helper()
	if err := g.write(c, name, data); err != nil {
		g.t.Fatalf("write %q to %s %s: got error %v, want nil", data, c.Path(), name, err)
	}
}

// cpuset makes a child of parent with the given cpus and mems.
func (g *rig) cpuset(parent *core.Container, name, cpus, mems string) *core.Container {
	g.t.Helper()
	c := g.mkdir(parent, name)
	g.mustWrite(c, "cpuset.cpus", cpus)
	g.mustWrite(c, "cpuset.mems", mems)
	return c
}

func (g *rig) attach(c *core.Container, tid int) error {
	return g.r.WriteFile(c, g.file(c, "tasks"), rootCaller, strconv.Itoa(tid))
}

func (g *rig) mustAttach(c *core.Container, tid int) {
	g.t.Helper()
	if err := g.attach(c, tid); err != nil {
		g.t.Fatalf("attach %d to %s: got error %v, want nil", tid, c.Path(), err)
	}
}

// errnoOf is the errno err wraps, or 0.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
