package cpuacct

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// The subsystem: its hooks, the hierarchy's accounting (acct) and its
// control files.

// Subsys is the cpuacct subsystem. The zero value is ready to register.
// Its fields are configuration; what a hierarchy tracks is in its root's
// state (acct).
type Subsys struct {
	// Logf reports what accounting could not do; nil is log.Printf.
	Logf core.Logf

	// Test seams; nil or zero in production.
	cpus       int                                         // possible CPUs; 0 reads sysfs
	proc       string                                      // procfs root, "/proc"
	open       func(tid int, start uint64) (source, error) // how tasks are sampled
	now        func() time.Time                            // the clock of exitWait
	noBG       bool                                        // start no goroutines
	noThrottle bool                                        // sample on every read
	readRoot   func() (procStat, error)                    // the root's figures
	period     time.Duration                               // sampling period
}

// acct is one hierarchy's accounting: the tasks it tracks, the records it
// waits for, its sampler. The root's group owns it and every group of the
// hierarchy points to it. It reads its configuration through the Subsys.
type acct struct {
	*Subsys
	ncpu int // possible CPUs: the per-CPU columns

	mu lockrank.Mutex[lockrank.Subsys]
	// The fields below are guarded by mu.
	bg      *worker.Worker        // the running sampler and listeners; nil once destroyed
	tasks   map[*core.Task]*task  // members of non-root containers; nil once destroyed
	byTID   map[int]*task         // the same, and exited tasks awaiting their exit record
	groups  map[int]int           // how many tracked tasks each thread group has
	records map[int]pendingRecord // exit records not matched to a task yet
	kin     map[int]*kin          // tracked thread groups' reaped children, by TGID
	stats   Stats
	btime   uint64 // boot time in seconds since the epoch, to check records
}

var (
	_ core.Subsys   = (*Subsys)(nil)
	_ core.Attacher = (*Subsys)(nil)
	_ core.Forker   = (*Subsys)(nil)
	_ core.Exiter   = (*Subsys)(nil)
)

// Stats count how the accounting went, for tests and debugging.
type Stats struct {
	Records      int // exit records received
	Matched      int // of those, charged to a tracked task
	Zombie       int // exits whose final figure came from /proc (a zombie)
	TimedOut     int // exits whose record never came: charged to the last sample
	Lost         int // times the kernel dropped records (ENOBUFS)
	Samples      int // periodic sampling rounds
	ListenErrors int // listeners that could not be registered
	// Reconciled is the ns charged from parents' cutime and cstime for
	// what children's exit records missed.
	Reconciled uint64
}

const (
	defaultPeriod = 100 * time.Millisecond
	// exitWait is how long an exited task waits for its exit record, and
	// an unmatched record for its task: the proc connector's exit event
	// and the taskstats record come on different sockets, in either order.
	exitWait = 5 * time.Second
	// refreshMax bounds how many tasks a read samples afresh under the
	// registry lock (5 to 10 µs each); a bigger subtree shows the figures
	// of the last periodic sample.
	refreshMax = 128
	// refreshEvery is how fresh a read's sample must be: reads of several
	// files of one container in a row (cat cpuacct.*) sample once.
	refreshEvery = 2 * time.Millisecond
	// maxPending bounds the unmatched records kept: every task on the
	// machine sends one when it exits.
	maxPending = 1 << 17
)

// Name implements core.Subsys.
func (*Subsys) Name() string { return "cpuacct" }

func (s *Subsys) nowNS() int64 {
	if s.now != nil {
		return s.now().UnixNano()
	}
	return time.Now().UnixNano()
}

func (s *Subsys) procRoot() string {
	if s.proc == "" {
		return "/proc"
	}
	return s.proc
}

// Create implements core.Subsys. The root's Create makes the hierarchy's
// accounting and starts its sampler and taskstats listeners; they run
// until the root is destroyed.
func (s *Subsys) Create(c *core.Container) (any, error) {
	if !c.IsRoot() {
		p := s.group(c.Parent())
		return newGroup(p, p.a), nil
	}
	a := &acct{
		Subsys:  s,
		ncpu:    s.cpus,
		tasks:   map[*core.Task]*task{},
		byTID:   map[int]*task{},
		groups:  map[int]int{},
		kin:     map[int]*kin{},
		records: map[int]pendingRecord{},
	}
	if a.ncpu == 0 {
		a.ncpu = possibleCPUs()
	}
	if ps, err := a.rootStat(a.ncpu); err == nil {
		a.btime = ps.btime
	}
	if !s.noBG {
		a.mu.Lock()
		a.bg = a.startBackground()
		a.mu.Unlock()
	}
	return newGroup(nil, a), nil
}

// Destroy implements core.Subsys. A destroyed child's group may still be
// charged by its exited tasks' late records, which reach its ancestors as
// they do in the kernel, where an exiting task keeps charging its cgroup.
func (s *Subsys) Destroy(c *core.Container) {
	if !c.IsRoot() {
		return
	}
	a := s.group(c).a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bg != nil {
		a.bg.Stop()
		a.bg = nil
	}
	for _, tk := range a.tasks {
		tk.closeSource()
	}
	a.tasks, a.byTID, a.groups, a.records, a.kin = nil, nil, nil, nil, nil
}

func (s *Subsys) group(c *core.Container) *group { return core.StateOf[*group](c, s) }

// Stats returns the accounting counters of c's hierarchy.
func (s *Subsys) Stats(c *core.Container) Stats {
	a := s.group(c).a
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Fork implements core.Forker: a child born in a container is charged from
// its birth. Userspace learns of the fork after it happened, but nothing
// is lost: the whole of the child's run time counts, from zero. If the
// child has already exited and its exit record came first, it is charged
// now.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	g := s.group(c)
	a := g.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tasks == nil {
		return
	}
	tk := &task{ct: t, tid: t.TID, tgid: t.TGID, start: t.Start, g: g, based: true, cpu: -1}
	a.track(tk)
	if p, ok := a.records[t.TID]; ok && a.matches(tk, p) {
		delete(a.records, t.TID)
		a.finishLocked(tk, p.final)
	}
}

func (a *acct) track(tk *task) {
	a.tasks[tk.ct] = tk
	a.byTID[tk.tid] = tk
	a.groups[tk.tgid]++
	if k := a.kin[tk.tgid]; k != nil {
		k.idle = 0
	}
}

// forget stops sampling tk: it left for the root, or exited.
func (a *acct) forget(tk *task) {
	delete(a.tasks, tk.ct)
	if a.groups[tk.tgid]--; a.groups[tk.tgid] <= 0 {
		delete(a.groups, tk.tgid)
		if k := a.kin[tk.tgid]; k != nil {
			k.idle = a.nowNS()
		}
	}
	tk.closeSource()
}

func (a *acct) untrack(tk *task) {
	a.forget(tk)
	if a.byTID[tk.tid] == tk {
		delete(a.byTID, tk.tid)
	}
}

func (tk *task) closeSource() {
	if tk.src != nil {
		tk.src.close()
		tk.src = nil
	}
}

// Attach implements core.Attacher. A task leaving a container is sampled
// first, so the old container (and its ancestors) keep what it used up to
// the move; a task joining one is sampled for a baseline, so what it used
// before does not come with it. From the root, which is not tracked, only
// the baseline is taken.
func (s *Subsys) Attach(ts *core.TaskSet) {
	dst := s.group(ts.Dst)
	a := dst.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tasks == nil {
		return
	}
	for _, t := range ts.Tasks {
		tk := a.tasks[t]
		if tk != nil {
			a.sampleLocked(tk)
			tk.gen++
			tk.owed = 0 // the old container's
			if dst.root {
				a.untrack(tk)
				continue
			}
			tk.g = dst
			continue
		}
		if dst.root {
			continue
		}
		tk = &task{ct: t, tid: t.TID, tgid: t.TGID, start: t.Start, g: dst, cpu: -1}
		a.track(tk)
		a.sampleLocked(tk)
	}
}

// Exit implements core.Exiter. The proc connector's exit event comes after
// the task's exit record was sent, but on another socket, so either may be
// first here. If the task is still a zombie, its /proc files give its
// final figure; otherwise it waits for its record (exitWait), and failing
// that keeps what the last sample charged.
func (s *Subsys) Exit(c *core.Container, t *core.Task) {
	a := s.group(c).a
	a.mu.Lock()
	defer a.mu.Unlock()
	tk := a.tasks[t]
	if tk == nil {
		return
	}
	if !tk.final && tk.src != nil {
		if sm, err := tk.src.read(tk.run); err == nil && sm.run > tk.run {
			extra := sm.run - tk.run
			tk.advanceLocked(sm)
			a.stats.Zombie++
			// If its death was already linked to its parent, the parent
			// must not find this time missing again.
			if p := a.kin[tk.linked]; tk.linked != 0 && p != nil {
				p.expect += extra
			}
		}
	}
	a.forget(tk)
	tk.exited = true
	tk.exitAt = a.nowNS()
	if p, ok := a.records[tk.tid]; ok && !tk.final && a.matches(tk, p) {
		delete(a.records, tk.tid)
		a.finishLocked(tk, p.final)
	}
	if tk.final && a.byTID[tk.tid] == tk {
		delete(a.byTID, tk.tid)
	}
}

// sampleLocked charges tk with a fresh sample. It reads /proc, a few µs.
func (a *acct) sampleLocked(tk *task) {
	if tk.final || tk.noSource {
		return
	}
	if tk.src == nil {
		src, err := a.openTask(tk.tid, tk.start)
		if err != nil {
			tk.noSource = true
			return
		}
		tk.src = src
	}
	last := tk.run
	if !tk.based {
		last = ^uint64(0) // the baseline needs the split and the CPU
	}
	sm, err := tk.src.read(last)
	if err != nil {
		return
	}
	tk.advanceLocked(sm)
	a.observeLocked(tk, sm)
}

func (s *Subsys) openTask(tid int, start uint64) (source, error) {
	if s.open != nil {
		return s.open(tid, start)
	}
	return openProc(s.procRoot(), tid, start)
}

// refreshLocked samples the tracked tasks of c's subtree, so that a read
// shows what they have used up to now. Call with the registry lock held.
func (a *acct) refreshLocked(c *core.Container) {
	var cts []*core.Task
	var walk func(c *core.Container) bool
	walk = func(c *core.Container) bool {
		cts = append(cts, c.TasksLocked()...)
		if len(cts) > refreshMax {
			return false
		}
		for _, ch := range c.ChildrenLocked() {
			if !walk(ch) {
				return false
			}
		}
		return true
	}
	if !walk(c) {
		return
	}
	for _, t := range cts {
		if tk := a.tasks[t]; tk != nil {
			a.sampleLocked(tk)
		}
	}
}

// fresh tells whether g's subtree was sampled for a read less than
// refreshEvery ago, and if not, notes that it is about to be.
func (a *acct) fresh(g *group) bool {
	if a.noThrottle {
		return false
	}
	now := time.Now().UnixNano()
	if now-g.refreshed < int64(refreshEvery) {
		return true
	}
	g.refreshed = now
	return false
}

// figures are a container's per-CPU counters as a read shows them.
func (s *Subsys) figures(c *core.Container) ([]counters, *group, error) {
	g := s.group(c)
	a := g.a
	if g.root {
		ps, err := s.rootStat(a.ncpu)
		if err != nil {
			return nil, g, fmt.Errorf("cpuacct: %w", err)
		}
		return ps.cpus, g, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tasks != nil && !a.fresh(g) {
		a.refreshLocked(c)
	}
	return append([]counters(nil), g.cpus...), g, nil
}

func (s *Subsys) rootStat(ncpu int) (procStat, error) {
	if s.readRoot != nil {
		return s.readRoot()
	}
	return readProcStat(s.procRoot()+"/stat", ncpu)
}

type field int

const (
	fUsage field = iota
	fUser
	fSys
)

func (f field) of(c counters) uint64 {
	switch f {
	case fUser:
		return c.user
	case fSys:
		return c.sys
	}
	return c.usage
}

// Files implements core.Subsys: the kernel's cpuacct files, in its order
// (kernel/sched/cpuacct.c): usage, usage_user and usage_sys are read_u64
// (and usage write_u64), the others seq_show.
func (s *Subsys) Files() []core.File {
	total := func(f field) func(*core.Container) uint64 {
		return func(c *core.Container) uint64 {
			cpus, _, err := s.figures(c)
			if err != nil {
				// A read_u64 cannot fail: the root's /proc/stat
				// could not be read, and there is nothing to show.
				s.Logf.Printf("%v", err)
				return 0
			}
			var sum uint64
			for _, x := range cpus {
				sum += f.of(x)
			}
			return sum
		}
	}
	percpu := func(f field) func(*core.Container) (string, error) {
		return func(c *core.Container) (string, error) {
			cpus, _, err := s.figures(c)
			if err != nil {
				return "", err
			}
			// cgroup v1 prints "%llu " for each possible CPU, then "\n".
			var b strings.Builder
			for _, x := range cpus {
				b.WriteString(strconv.FormatUint(f.of(x), 10))
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
			return b.String(), nil
		}
	}
	return []core.File{
		{Name: "usage", Flags: core.NotSetting, ReadU64: total(fUsage), WriteU64: s.writeUsage},
		{Name: "usage_user", ReadU64: total(fUser)},
		{Name: "usage_sys", ReadU64: total(fSys)},
		{Name: "usage_percpu", Read: percpu(fUsage)},
		{Name: "usage_percpu_user", Read: percpu(fUser)},
		{Name: "usage_percpu_sys", Read: percpu(fSys)},
		{Name: "usage_all", Read: s.readAll},
		{Name: "stat", Read: s.readStat},
	}
}

// readAll is cpuacct.usage_all: a header, then a line per possible CPU.
func (s *Subsys) readAll(c *core.Container) (string, error) {
	cpus, _, err := s.figures(c)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("cpu user system\n")
	for i, x := range cpus {
		fmt.Fprintf(&b, "%d %d %d\n", i, x.user, x.sys)
	}
	return b.String(), nil
}

// readStat is cpuacct.stat: usage split in the ratio of user to system
// time, in USER_HZ ticks, as the kernel's cpuacct_stats_show does with
// cputime_adjust.
func (s *Subsys) readStat(c *core.Container) (string, error) {
	cpus, g, err := s.figures(c)
	if err != nil {
		return "", err
	}
	var usage, user, sys uint64
	for _, x := range cpus {
		usage += x.usage
		user += x.user
		sys += x.sys
	}
	if g.root {
		// The root's usage is user+system already.
		return fmt.Sprintf("user %d\nsystem %d\n", user/nsPerTick, sys/nsPerTick), nil
	}
	g.a.mu.Lock()
	ut, st := cputimeAdjust(usage, user, sys, &g.prevUser, &g.prevSys)
	g.a.mu.Unlock()
	return fmt.Sprintf("user %d\nsystem %d\n", ut/nsPerTick, st/nsPerTick), nil
}

// cputimeAdjust splits rtime in the ratio utime:stime, never letting either
// part go below what it was last time (the kernel's cputime_adjust).
func cputimeAdjust(rtime, utime, stime uint64, prevU, prevS *uint64) (uint64, uint64) {
	if *prevU+*prevS >= rtime {
		return *prevU, *prevS
	}
	switch {
	case stime == 0:
		utime = rtime
	case utime == 0:
		stime = rtime
	default:
		stime = mulDiv(rtime, stime, stime+utime)
	}
	stime = max(stime, *prevS)
	utime = rtime - stime
	if utime < *prevU {
		utime = *prevU
		stime = rtime - utime
	}
	*prevU, *prevS = utime, stime
	return utime, stime
}

// writeUsage is cpuusage_write: 0 resets the container's own counters
// (not its descendants'); anything else is EINVAL. The root's reset is
// accepted and does nothing, as the kernel refuses to reset the machine's
// kernel_cpustat.
func (s *Subsys) writeUsage(c *core.Container, _ core.Caller, v uint64) error {
	if v != 0 {
		return fmt.Errorf("cpuacct.usage: only 0 resets, not %d: %w", v, syscall.EINVAL)
	}
	g := s.group(c)
	if g.root {
		return nil
	}
	a := g.a
	a.mu.Lock()
	defer a.mu.Unlock()
	// Charge what the tasks used before the reset, so it is not counted
	// after it.
	if a.tasks != nil {
		a.refreshLocked(c)
	}
	g.resetLocked()
	return nil
}
