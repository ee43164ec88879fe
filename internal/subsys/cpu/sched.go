package cpu

import (
	"math"
	"math/bits"
	"slices"
)

// This file is the scheduler's pure decision logic: no clock, no /proc, no
// ptrace. The enforcer (enforce.go) feeds it each task's CPU time and
// run-queue wait since the previous tick and applies what it decides.
//
// Shares are enforced as a group-level CFS: every group has a virtual
// time v that advances by its CPU time scaled by 1024/shares. Among the
// groups of one parent that want CPU (eligible), one that runs ahead of a
// sibling by more than Slack is held (all its tasks stopped) until the
// siblings behind it have caught up; so, over time, siblings' CPU times
// follow their shares whatever their numbers of tasks or sessions. A hold
// is only worth it if the siblings behind can use the CPUs it frees: a
// group is held only when the siblings behind it have enough CPU-bound
// tasks to fill every CPU it may run on (saturated; see partial holds
// below for when they fill only some); otherwise its lead is
// capped at MaxLead instead, so that a later contention does not start with
// a long hold. Idle siblings are not eligible: their share goes to the
// others (work-conserving). A sibling that becomes eligible again starts at
// the smallest v of the others: no credit is saved up while idle.
//
// Partial holds: on several CPUs a group's entitlement can be less than the
// CPUs its tasks would take while the siblings behind it cannot fill them
// all (3 CPU-bound tasks beside 1, equal shares, 2 CPUs: each is entitled
// to one CPU). Such a group, when it runs ahead by more than Slack, is not
// held whole but limited to as many running tasks as the CPUs the siblings
// behind leave free (its limit); the rest of its CPU-bound tasks are held,
// and which ones rotates: a group keeps for each task the CPU time it used
// (its vrun), and runs the limit's worth with the least, a running task
// being swapped out once it is 2×Slack ahead of a held one. So the group's
// tasks stay fair among themselves, and its virtual time against its
// siblings' settles the rest (a 2:1 group alternates between its limit and
// running whole). A group with child groups shares its limit among them
// (allot): each running task goes to the child with the smallest virtual
// time, so that they follow their shares within it. Partial holds are
// made only in groups whose CPU-bound tasks may each run on every CPU the
// group's tasks may use: which tasks to let run is then of no matter to
// where they go.
//
// Quotas are enforced per period, as CFS bandwidth control does: a group
// whose subtree used its quota in the current period is held until the
// period ends. Running past the quota (a tick comes late) is charged to the
// next period, so over many periods the group gets exactly quota/period.

// Mask is a set of CPUs, laid out as the kernel's cpu_set_t.
type Mask [16]uint64

// MaskOf makes a mask of the given CPUs.
func MaskOf(cpus ...int) Mask {
	var m Mask
	for _, c := range cpus {
		m.Set(c)
	}
	return m
}

// Set adds CPU c.
func (m *Mask) Set(c int) {
	if c >= 0 && c < len(m)*64 {
		m[c/64] |= 1 << (c % 64)
	}
}

// Count is the number of CPUs in m.
func (m Mask) Count() int {
	n := 0
	for _, w := range m {
		n += bits.OnesCount64(w)
	}
	return n
}

func (m Mask) or(o Mask) Mask {
	for i := range m {
		m[i] |= o[i]
	}
	return m
}

func (m Mask) and(o Mask) Mask {
	for i := range m {
		m[i] &= o[i]
	}
	return m
}

func (m Mask) intersects(o Mask) bool {
	for i := range m {
		if m[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

func (m Mask) empty() bool { return m == Mask{} }

// Config tunes the scheduler. Durations are in nanoseconds.
type Config struct {
	// Slack is how far (in CPU time weighted to 1024 shares) a group may
	// run ahead of a contending sibling before it is held. Smaller is
	// smoother and costs more stops. With many tasks it grows to
	// SlackPerTask per task, so that the stops and resumes per second,
	// each of which costs the daemon CPU time per task, stay few.
	Slack, SlackPerTask int64
	// MaxLead caps the lead of a group that nobody contends with.
	MaxLead int64
	// MinTick and MaxTick bound the time between ticks; Probe is the tick
	// after holds changed, to measure the new rates.
	MinTick, MaxTick, Probe int64
	// A tick reads every task's counters, so with many tasks ticks are
	// spaced further: at least TickPerTask per task apart, and, when
	// nothing needs watching closely, IdlePerTask per task (at most
	// MaxIdleTick).
	TickPerTask, IdlePerTask, MaxIdleTick int64
	// Tau is the time constant over which a task's runnable fraction (the
	// part of the time it was running or waiting to run) is averaged:
	// /proc reports a wait only once it ended, so one interval alone can
	// miss it.
	Tau int64
	// BoundFrac: a task runnable at least this fraction of the time is
	// CPU-bound.
	BoundFrac float64
	// DemandFrac: a group whose tasks' runnable fractions sum to less than
	// this is idle.
	DemandFrac float64
}

// DefaultConfig is what the daemon uses.
var DefaultConfig = Config{
	Slack:        5e6,
	SlackPerTask: 0.4e6,
	MaxLead:      10e6,
	MinTick:      1e6,
	MaxTick:      50e6,
	Probe:        4e6,
	TickPerTask:  0.5e6,
	IdlePerTask:  2e6,
	MaxIdleTick:  500e6,
	Tau:          50e6,
	BoundFrac:    0.5,
	DemandFrac:   0.05,
}

// Task is one task the scheduler controls.
type Task struct {
	TID int
	// Mask is the CPUs the task may run on.
	Mask Mask
	// Run and Wait are the CPU time and run-queue wait (ns) since the
	// previous tick; the caller fills them in before each Tick. Runnable
	// says that although neither grew, the task is waiting to run (the
	// kernel accounts a wait only when it ends).
	Run, Wait int64
	Runnable  bool
	// Held is the decision: keep the task stopped until the next tick.
	Held bool

	g *Group
	// vrun is the CPU time the task used in its group, with which a
	// group limited to fewer running tasks than it has rotates them.
	vrun float64
	// The runnable time and the elapsed time, decayed with Tau, over the
	// intervals in which it was free to run: their ratio is the task's
	// runnable fraction. A held task keeps the last one it showed.
	rsum, dsum float64
	bound      bool
}

// busy is the task's runnable fraction.
func (t *Task) busy() float64 {
	if t.dsum == 0 {
		return 0
	}
	return t.rsum / t.dsum
}

// Group is a container's scheduling state.
type Group struct {
	Name     string
	parent   *Group
	children []*Group
	tasks    []*Task
	// own stands for the group's own tasks among its children, as each
	// task is a scheduling entity of its own beside the child groups in
	// the kernel; nil until the group has both tasks and children.
	own    *Group
	pseudo bool

	shares uint64
	quota  int64 // ns per period; -1 is unlimited
	period int64 // ns

	// Shares state.
	v          float64
	eligible   bool
	heldShares bool
	// limit, when above 0, is how many of the group's CPU-bound tasks may
	// run (a partial hold); 0 is no limit. Never with heldShares.
	limit int
	// slots is how many of its parent's limit it got (allot), when the
	// parent is limited.
	slots int

	// Bandwidth state.
	periodStart int64
	used        int64 // runtime used in the current period, debt included
	throttled   bool
	throttledAt int64
	stat        Stat

	held bool // held by itself or an ancestor, as last decided

	// Scratch of one tick: the subtree's CPU time, wait, the masks of its
	// free CPU-bound tasks, the union of its tasks' masks, and the sum of
	// its tasks' runnable fractions.
	u, w     int64
	runBound []bound
	allBound []bound // runBound and the CPU-bound tasks held
	mask     Mask
	busy     float64
	ntasks   int
}

// bound is a CPU-bound task as the decisions count it: its CPUs and its
// runnable fraction.
type bound struct {
	mask Mask
	busy float64
}

// Stat is a group's cpu.stat.
type Stat struct {
	NrPeriods     uint64
	NrThrottled   uint64
	ThrottledTime int64 // ns
}

// Sched is the whole decision state of one hierarchy.
type Sched struct {
	cfg    Config
	slack  float64 // Slack for the current number of tasks
	minGap int64   // the shortest time to the next tick, for that number
	online Mask
	root   *Group
	now    int64 // time of the last tick
}

// NewSched makes a scheduler whose root group stands for the hierarchy's
// root container (never held).
func NewSched(cfg Config, online Mask, now int64) *Sched {
	return &Sched{cfg: cfg, online: online, now: now,
		root: &Group{Name: "/", shares: DefaultShares, quota: -1, period: DefaultPeriod}}
}

// Root is the root group.
func (s *Sched) Root() *Group { return s.root }

// SetOnline changes the CPUs the machine has.
func (s *Sched) SetOnline(m Mask) { s.online = m }

// Online is the machine's CPUs as last set.
func (s *Sched) Online() Mask { return s.online }

// NewGroup adds a child group with default settings.
func (s *Sched) NewGroup(parent *Group, name string) *Group {
	g := &Group{Name: name, parent: parent, shares: DefaultShares, quota: -1, period: DefaultPeriod}
	parent.children = append(parent.children, g)
	return g
}

// RemoveGroup removes an empty group.
func (s *Sched) RemoveGroup(g *Group) {
	if p := g.parent; p != nil {
		if i := slices.Index(p.children, g); i >= 0 {
			p.children = slices.Delete(p.children, i, i+1)
		}
	}
}

// SetShares sets a group's weight (already clamped).
func (g *Group) SetShares(v uint64) { g.shares = v }

// Shares is the group's weight.
func (g *Group) Shares() uint64 { return g.shares }

// Bandwidth is the group's quota and period in ns (quota -1: unlimited).
func (g *Group) Bandwidth() (quota, period int64) { return g.quota, g.period }

// Parent is the parent group, nil for the root.
func (g *Group) Parent() *Group { return g.parent }

// Children are the child groups.
func (g *Group) Children() []*Group { return g.children }

// Held tells whether the group (or an ancestor) was held at the last tick.
func (g *Group) Held() bool { return g.held }

// Limit is how many of the group's CPU-bound tasks the last tick let run
// (a partial hold), 0 if it made no such limit.
func (g *Group) Limit() int { return g.limit }

// Throttled tells whether the group used up its quota in this period.
func (g *Group) Throttled() bool { return g.throttled }

// Stat is the group's cpu.stat as of now: a throttling in progress counts
// up to now.
func (g *Group) Stat(now int64) Stat {
	st := g.stat
	if g.throttled && now > g.throttledAt {
		st.ThrottledTime += now - g.throttledAt
	}
	return st
}

// SetBandwidth sets quota (-1: unlimited) and period, in ns, at time now.
// As in the kernel, any write unthrottles the group and starts a new
// period.
func (s *Sched) SetBandwidth(g *Group, quota, period, now int64) {
	s.unthrottle(g, now)
	g.quota, g.period = quota, period
	g.periodStart, g.used = now, 0
}

func (s *Sched) unthrottle(g *Group, at int64) {
	if g.throttled {
		g.stat.ThrottledTime += max(0, at-g.throttledAt)
		g.throttled = false
	}
}

// AddTask puts t in g (moving it if it was elsewhere).
func (s *Sched) AddTask(t *Task, g *Group) {
	if t.g == g {
		return
	}
	s.RemoveTask(t)
	t.g = g
	// No credit for the time it was elsewhere: it starts level with the
	// group's task that used the least.
	t.vrun = 0
	for i, o := range g.tasks {
		if i == 0 || o.vrun < t.vrun {
			t.vrun = o.vrun
		}
	}
	g.tasks = append(g.tasks, t)
	t.Held = s.heldFor(g)
}

// RemoveTask takes t out of its group.
func (s *Sched) RemoveTask(t *Task) {
	if g := t.g; g != nil {
		if i := slices.Index(g.tasks, t); i >= 0 {
			g.tasks = slices.Delete(g.tasks, i, i+1)
		}
		t.g = nil
	}
	t.Held = false
}

// Group is the task's group.
func (t *Task) Group() *Group { return t.g }

// heldFor is whether a task of g must be held now, by the last decision.
func (s *Sched) heldFor(g *Group) bool {
	if g.held {
		return true
	}
	return g.own != nil && len(g.children) > 0 && g.own.heldShares
}

// Tick advances the model to now. Each task's Run and Wait must hold what
// it used since the previous tick. It decides which tasks are held
// (Task.Held) and returns how long to wait before the next tick, or -1 if
// nothing needs watching until the model changes.
func (s *Sched) Tick(now int64) int64 {
	dt := now - s.now
	if dt <= 0 {
		dt = 1
	}
	s.now = now
	decay := math.Exp(-float64(dt) / float64(max(s.cfg.Tau, 1)))
	s.aggregate(s.root, dt, decay)
	n := int64(s.root.ntasks)
	s.slack = float64(max(s.cfg.Slack, n*s.cfg.SlackPerTask))
	s.minGap = max(s.cfg.MinTick, n*s.cfg.TickPerTask)
	changed := false
	next := int64(math.MaxInt64)
	s.walk(s.root, func(g *Group) {
		if g != s.root && g.quota >= 0 {
			if c, n := s.bandwidth(g, now, dt); c || n >= 0 {
				changed = changed || c
				if n >= 0 {
					next = min(next, n)
				}
			}
		}
	})
	s.decide(s.root, false, -1, dt, &changed, &next)
	if n == 0 {
		return -1
	}
	maxGap := max(s.cfg.MaxTick, min(n*s.cfg.IdlePerTask, s.cfg.MaxIdleTick))
	if changed {
		next = min(next, s.cfg.Probe)
	}
	return max(s.minGap, min(next, maxGap))
}

func (s *Sched) walk(g *Group, f func(*Group)) {
	f(g)
	for _, c := range g.children {
		s.walk(c, f)
	}
}

// aggregate sums the interval's samples over each subtree and updates
// each task's runnable fraction.
func (s *Sched) aggregate(g *Group, dt int64, decay float64) {
	g.reset()
	own := g
	if len(g.children) > 0 && len(g.tasks) > 0 && g != s.root {
		if g.own == nil {
			g.own = &Group{Name: g.Name + "/.", parent: g, pseudo: true, quota: -1, period: DefaultPeriod}
			g.own.v = g.minChildV()
		}
		own = g.own
		own.reset()
		// In the kernel each task weighs 1024 (nice 0) beside the groups.
		own.shares = uint64(DefaultShares * len(g.tasks))
	}
	for _, t := range g.tasks {
		if !t.Held {
			// A held task's demand is unknown: it keeps the last one seen.
			r := float64(t.Run + t.Wait)
			if t.Runnable {
				r = float64(dt)
			}
			t.rsum = t.rsum*decay + r
			t.dsum = t.dsum*decay + float64(dt)
			t.bound = t.busy() >= s.cfg.BoundFrac
		}
		t.vrun += float64(t.Run)
		own.u += t.Run
		own.w += t.Wait
		own.busy += t.busy()
		own.ntasks++
		m := t.Mask.and(s.online)
		if m.empty() {
			m = s.online
		}
		own.mask = own.mask.or(m)
		if t.bound && !t.Held {
			own.runBound = append(own.runBound, bound{m, t.busy()})
		}
		if t.bound {
			own.allBound = append(own.allBound, bound{m, t.busy()})
		}
	}
	if own != g {
		g.u, g.w, g.ntasks, g.mask, g.busy = own.u, own.w, own.ntasks, own.mask, own.busy
		g.runBound = append(g.runBound, own.runBound...)
		g.allBound = append(g.allBound, own.allBound...)
	}
	for _, c := range g.children {
		s.aggregate(c, dt, decay)
		g.u += c.u
		g.w += c.w
		g.ntasks += c.ntasks
		g.mask = g.mask.or(c.mask)
		g.busy += c.busy
		g.runBound = append(g.runBound, c.runBound...)
		g.allBound = append(g.allBound, c.allBound...)
	}
}

func (g *Group) reset() {
	g.u, g.w, g.mask, g.busy, g.ntasks = 0, 0, Mask{}, 0, 0
	g.runBound, g.allBound = g.runBound[:0], g.allBound[:0]
}

func (g *Group) minChildV() float64 {
	v := math.Inf(1)
	for _, c := range g.children {
		if c.eligible {
			v = min(v, c.v)
		}
	}
	if math.IsInf(v, 1) {
		return 0
	}
	return v
}

// bandwidth charges the interval's CPU time to g's quota, rolls periods
// over, and throttles or unthrottles g. It returns whether g's throttling
// changed and when it wants the next tick (-1: no need).
func (s *Sched) bandwidth(g *Group, now, dt int64) (changed bool, next int64) {
	was := g.throttled
	u := g.u
	t0 := now - dt
	for end := g.periodStart + g.period; end <= now; end = g.periodStart + g.period {
		if end > t0 {
			// The part of the interval's CPU time that fell in this period.
			part := int64(float64(u) * float64(end-t0) / float64(now-t0))
			g.used += part
			u -= part
			t0 = end
		}
		if g.used > 0 || g.throttled {
			g.stat.NrPeriods++
		}
		if g.throttled {
			g.stat.NrThrottled++
		}
		// A new period: the quota is refilled; what was used past it is
		// a debt on the new one.
		s.unthrottle(g, end)
		g.used = max(0, g.used-g.quota)
		g.periodStart = end
		if g.used >= g.quota {
			g.throttled, g.throttledAt = true, end
		}
		if g.used == 0 && u == 0 && now-g.periodStart >= g.period {
			// Idle: skip the periods in which nothing ran; the kernel's
			// period timer stops too and does not count them.
			g.periodStart += (now - g.periodStart) / g.period * g.period
		}
	}
	g.used += u
	if !g.throttled && g.used >= g.quota {
		g.throttled, g.throttledAt = true, now
	}
	changed = g.throttled != was
	end := g.periodStart + g.period
	switch {
	case g.throttled:
		return changed, end - now
	case g.u > 0:
		// Tick when the quota will run out at the current rate, in this
		// period or the next; a rate that never exhausts it needs none.
		rate := float64(g.u) / float64(dt)
		if left := float64(g.quota-g.used) / rate; left < float64(end-now) {
			return changed, int64(left)
		}
		if whole := float64(g.quota) / rate; whole < float64(g.period) {
			return changed, end - now + int64(whole)
		}
	}
	return changed, -1
}

// decide makes the share decisions among g's children (and g's own
// tasks), then below them, and sets every group's held flag.
func (s *Sched) decide(g *Group, parentHeld bool, limit int, dt int64, changed *bool, next *int64) {
	wasHeld := g.held
	g.held = parentHeld || g.heldShares || g.throttled
	if g.held != wasHeld {
		*changed = true
	}
	// limit (-1: none) is how many CPU-bound tasks g's subtree may run:
	// its own partial hold, or its part of its parent's.
	if g.limit > 0 && (limit < 0 || g.limit < limit) {
		limit = g.limit
	}
	if g.held {
		limit = -1
	}
	sib := g.children
	if g.own != nil && len(g.children) > 0 && len(g.tasks) > 0 {
		sib = append(slices.Clone(g.children), g.own)
	}
	allotted := false
	if len(sib) > 0 {
		// The children's CPU time counts even in the tick that holds g:
		// it was used before the hold. Under a limit, the children share
		// its tasks instead of holding each other.
		s.shares(sib, dt, !g.held && limit < 0, changed, next)
		if limit >= 0 {
			s.allot(sib, limit, changed, next)
			allotted = true
		}
	}
	// The group that stands for g's own tasks among their siblings.
	held, own := g.held, limit
	if g.own != nil && len(g.children) > 0 {
		held = held || g.own.heldShares
		switch {
		case allotted:
			own = g.own.slots
		case g.own.limit > 0:
			own = g.own.limit
		default:
			own = -1
		}
	}
	s.place(g.tasks, held, own, next)
	for _, c := range g.children {
		l := -1
		if allotted {
			l = c.slots
		}
		s.decide(c, g.held, l, dt, changed, next)
	}
}

// allot shares a limit of limit running CPU-bound tasks among siblings:
// one at a time, each to the eligible sibling with the smallest virtual
// time counting the tasks it already got (Slack per task, weighted by its
// shares) and that has a CPU-bound task left; a sibling that had some
// counts Slack less, so that they are not swapped at every tick. Their own
// holds give way to it.
func (s *Sched) allot(sib []*Group, limit int, changed *bool, next *int64) {
	had := make([]bool, len(sib))
	for i, c := range sib {
		had[i] = c.slots > 0
		c.slots = 0
		if c.heldShares || c.limit > 0 {
			c.heldShares, c.limit = false, 0
			*changed = true
		}
	}
	key := func(i int) float64 {
		c := sib[i]
		k := c.v + float64(c.slots)*s.slack*DefaultShares/float64(max(c.shares, 1))
		if had[i] {
			k -= s.slack
		}
		return k
	}
	for n := 0; n < limit; n++ {
		best := -1
		for i, c := range sib {
			if !c.eligible || c.slots >= min(len(c.allBound), c.mask.Count()) {
				continue
			}
			if best < 0 || key(i) < key(best) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		sib[best].slots++
	}
	// Like a swap of tasks within a group, passing tasks between siblings
	// changes no rate above them: no probe.
	//
	// Tick when a sibling running tasks will be Slack ahead of one that
	// waits for them (its virtual time grows by its tasks' CPU time).
	lo := math.Inf(1)
	for _, l := range sib {
		if l.slots == 0 && l.eligible && len(l.allBound) > 0 {
			lo = min(lo, l.v)
		}
	}
	if math.IsInf(lo, 1) {
		return
	}
	for _, h := range sib {
		if h.slots > 0 {
			rate := float64(h.slots) * DefaultShares / float64(max(h.shares, 1))
			*next = min(*next, max(1, int64((lo+s.slack-h.v)/rate)))
		}
	}
}

// place decides which of a group's own tasks are held: all of them if the
// group is held; with a limit (a partial hold), all its CPU-bound tasks but
// the limit's worth that used the least CPU time, a running task counting
// 2×Slack less so that tasks are not swapped at every tick (each swap is a
// stop and a resume: 2×Slack halved their rate, and the enforcer's CPU
// time from 2.2 to 1.6% of a core for 3 tasks vs 1 on 2 CPUs).
func (s *Sched) place(tasks []*Task, held bool, limit int, next *int64) {
	q := 2 * s.slack // see above
	// No credit saved up while asleep: a task that is not CPU-bound stays
	// within q of the running CPU-bound task that used the least, as
	// CFS places a waking task near its queue's min_vruntime. (Tasks held
	// here keep what they are owed.)
	lo := math.Inf(1)
	for _, t := range tasks {
		if t.bound && !t.Held {
			lo = min(lo, t.vrun)
		}
	}
	if !math.IsInf(lo, 1) {
		for _, t := range tasks {
			if !t.bound {
				t.vrun = max(t.vrun, lo-q)
			}
		}
	}
	if held || limit < 0 {
		for _, t := range tasks {
			t.Held = held
		}
		return
	}
	type cand struct {
		t   *Task
		key float64
	}
	var cands []cand
	for _, t := range tasks {
		if !t.bound {
			// It sleeps most of the time: holding it would gain little
			// and delay its wake-ups. What it uses counts in the group's
			// virtual time.
			t.Held = false
			continue
		}
		key := t.vrun
		if !t.Held {
			key -= q
		}
		cands = append(cands, cand{t, key})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return a.t.TID - b.t.TID
	})
	// A swap within the group changes no group's rate: no probe (changed)
	// is needed after it.
	for i, c := range cands {
		c.t.Held = i >= limit
	}
	if len(cands) > limit {
		// Tick when a running task will be q ahead of the held task
		// that used the least (a running task uses at most its wall time).
		first := cands[limit].t.vrun
		for _, c := range cands[:limit] {
			*next = min(*next, max(1, int64(first+q-c.t.vrun)))
		}
	}
}

// shares is the group-level CFS among one set of siblings. With decide
// false (their parent is held) it only accounts for their CPU time and
// leaves their holds as they are.
func (s *Sched) shares(sib []*Group, dt int64, decide bool, changed *bool, next *int64) {
	vminPrev := math.Inf(1)
	for _, c := range sib {
		if c.eligible {
			vminPrev = min(vminPrev, c.v)
		}
	}
	var elig []*Group
	for _, c := range sib {
		was := c.eligible
		demand := c.busy >= s.cfg.DemandFrac
		c.eligible = !c.throttled && c.ntasks > 0 && (demand || c.heldShares)
		if c.eligible && !was && !math.IsInf(vminPrev, 1) {
			// No credit for the time it was idle.
			c.v = max(c.v, vminPrev)
		}
		c.v += float64(c.u) * DefaultShares / float64(max(c.shares, 1))
		if c.eligible {
			elig = append(elig, c)
		} else if c.heldShares || c.limit > 0 {
			c.heldShares, c.limit = false, 0
			*changed = true
		}
	}
	if !decide {
		return
	}
	if len(elig) < 2 {
		for _, c := range elig {
			if c.heldShares || c.limit > 0 {
				c.heldShares, c.limit = false, 0
				*changed = true
			}
		}
		return
	}
	vmin := math.Inf(1)
	for _, c := range elig {
		vmin = min(vmin, c.v)
	}
	// Decide against the holds as they were during the interval.
	wasHeld := make([]bool, len(elig))
	for i, c := range elig {
		wasHeld[i] = c.heldShares
	}
	rate := func(c *Group) float64 {
		return float64(c.u) * DefaultShares / float64(max(c.shares, 1)) / float64(dt)
	}
	for i, c := range elig {
		var behind []*Group
		for j, o := range elig {
			if j != i && !wasHeld[j] && o.v < c.v {
				behind = append(behind, o)
			}
		}
		lim := runLimit(c, behind, boundRunning)
		if wasHeld[i] {
			// Let go once nobody behind is running, or those behind can
			// no longer use the CPUs c would take. (On their average
			// runnable fraction, not on this one interval's: /proc
			// reports a wait only once it ended, so a sibling starved by
			// other load shows none for a while.) A partial hold may
			// follow at the next tick.
			if len(behind) == 0 || lim != 0 {
				c.heldShares = false
				*changed = true
				continue
			}
			// Held until the last of those behind catches up, looking
			// again every few probes: a sibling that woke up for a short
			// burst (far behind with a large weight) stops wanting the CPU
			// long before it catches up.
			wait := int64(0)
			for _, o := range behind {
				if r := rate(o); r > 0 {
					wait = max(wait, int64((c.v-o.v)/r))
				} else {
					wait = max(wait, s.cfg.Probe)
				}
			}
			*next = min(*next, max(wait, 1), max(4*s.cfg.Probe, 2*s.minGap))
			continue
		}
		if c.limit > 0 {
			// A partial hold lasts while c leads siblings that cannot
			// fill the CPUs it would take; its limit follows the CPUs
			// they leave free, and it becomes a whole hold if they can
			// fill them all.
			switch {
			case len(behind) == 0 || lim < 0:
				c.limit = 0
				*changed = true
				continue
			case lim == 0:
				c.limit, c.heldShares = 0, true
				*changed = true
				continue
			case lim != c.limit:
				c.limit = lim
				*changed = true
			}
			// Limited as far as helps those behind, c may still run
			// ahead (they cannot use their whole share): cap its lead as
			// below, so that it is not owed later.
			if s.uncontended(c, elig, i, lim) {
				c.v = min(c.v, vmin+max(float64(s.cfg.MaxLead), 2*s.slack))
			}
			// Look again when those behind would catch up at the
			// current rates (the rotation in place asks for its own
			// ticks), or after a few probes.
			look := max(4*s.cfg.Probe, 2*s.minGap)
			wait := int64(0)
			for _, o := range behind {
				if r := rate(o) - rate(c); r > 0 {
					wait = max(wait, int64((c.v-o.v)/r))
				} else {
					wait = look
				}
			}
			*next = min(*next, max(wait, 1), look)
			continue
		}
		if lim < 0 {
			// Nobody would get more CPU if c stopped or ran fewer tasks:
			// cap its lead, unless siblings behind it are held and would
			// contend once let go (c then overtook them while they were
			// held: the lead is owed to them).
			if s.uncontended(c, elig, i, -1) {
				c.v = min(c.v, vmin+max(float64(s.cfg.MaxLead), 2*s.slack))
			}
			continue
		}
		// The sibling furthest behind decides: c waits for it.
		furthest := behind[0]
		for _, o := range behind {
			if o.v < furthest.v {
				furthest = o
			}
		}
		if c.v-furthest.v > s.slack {
			if lim == 0 {
				c.heldShares = true
			} else {
				c.limit = lim
			}
			*changed = true
			continue
		}
		// Tick when c's lead reaches Slack at the current rates.
		if g := rate(c) - rate(furthest); g > 0 {
			*next = min(*next, int64((s.slack-(c.v-furthest.v))/g)+1)
		}
	}
}

// uncontended tells whether c's lead over the siblings behind it (elig
// but its own index i) is owed to none of them: even with those held
// counted, they could not use more CPU than c, limited to lim tasks (-1:
// not limited), leaves them.
func (s *Sched) uncontended(c *Group, elig []*Group, i, lim int) bool {
	var all []*Group
	for j, o := range elig {
		if j != i && o.v < c.v {
			all = append(all, o)
		}
	}
	l := runLimit(c, all, boundAny)
	return l < 0 || (lim > 0 && l >= lim)
}

// boundSet says which tasks saturated counts: the CPU-bound ones that run,
// or the CPU-bound ones whether held or not.
type boundSet int

const (
	boundRunning boundSet = iota
	boundAny
)

// runLimit is how many of c's CPU-bound tasks may run without taking a
// CPU from the CPU-bound tasks of the groups behind it: 0 if those can
// keep busy every CPU that c's tasks may use (and the CPUs those tasks may
// move to), so that holding c whole gives them CPU time rather than idling
// a CPU; -1 if no limit would give them more (nobody behind, they leave c
// as many CPUs as it has CPU-bound tasks, or c is not one to hold
// partially: it has child groups, or a CPU-bound task that may not run on
// every CPU of c's, for which the kernel might not place the tasks let run
// on the CPUs left free).
func runLimit(c *Group, behind []*Group, which boundSet) int {
	cpus := c.mask
	n, demand := 0, 0.0
	for _, o := range behind {
		list := o.runBound
		if which == boundAny {
			list = o.allBound
		}
		for _, b := range list {
			if b.mask.intersects(c.mask) {
				n++
				cpus = cpus.or(b.mask)
				demand += min(1, b.busy)
			}
		}
	}
	if n == 0 {
		return -1
	}
	free := cpus.Count() - n
	if free <= 0 {
		return 0
	}
	if float64(n)-demand >= partialIdle {
		// Those behind are CPU-bound only part of the time: limited to
		// free tasks, c would leave that much of a CPU idle. Round up.
		free++
	}
	if free >= min(len(c.allBound), c.mask.Count()) {
		return -1
	}
	for _, b := range c.allBound {
		if b.mask.and(c.mask) != c.mask {
			return -1
		}
	}
	return free
}

// partialIdle is how much of a CPU, on the runnable fractions of the
// CPU-bound tasks behind, a partial hold may leave idle. Past it the
// limit is rounded up: a CPU idle a third of the time or more costs more
// than the share it gives those behind.
const partialIdle = 0.3
