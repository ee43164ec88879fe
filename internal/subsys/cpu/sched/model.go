// The model: tasks, groups and the scheduler that holds them, and how the
// enforcer builds and changes it between ticks.

package sched

import (
	"fmt"
	"slices"
)

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

// Busy is the task's runnable fraction, averaged over Tau.
func (t *Task) Busy() float64 {
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

// LastTick is the time of the last tick (of NewSched, before the first).
func (s *Sched) LastTick() int64 { return s.now }

// Walk calls f on every group, parents before their children.
func (s *Sched) Walk(f func(*Group)) { s.walk(s.root, f) }

// Debug is one line of the group's decision state, for the enforcer's
// debug log.
func (g *Group) Debug() string {
	return fmt.Sprintf("%s held=%v hs=%v limit=%d elig=%v v=%.0f u=%d w=%d busy=%.2f n=%d",
		g.Name, g.held, g.heldShares, g.limit, g.eligible, g.v, g.u, g.w, g.busy, g.ntasks)
}
