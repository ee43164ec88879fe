// The cpu subsystem's hooks and control files; enforcement is the
// enforcer's (enforce.go), decisions are package sched's.

package cpu

import (
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/containerfs/containerfs/internal/subsys/cpu/sched"
)

// Subsys is the cpu subsystem. The zero value enforces on the running
// kernel with the process's shared Stopper.
type Subsys struct {
	// Stopper stops and resumes tasks; nil is stopper.Default(), which the
	// freezer shares.
	Stopper *stopper.Stopper
	// Config tunes the scheduler; nil is sched.DefaultConfig.
	Config *sched.Config
	// Logf reports what enforcement could not do; nil is log.Printf.
	Logf core.Logf
}

var (
	_ core.Subsys   = (*Subsys)(nil)
	_ core.Attacher = (*Subsys)(nil)
	_ core.Forker   = (*Subsys)(nil)
	_ core.Exiter   = (*Subsys)(nil)
)

// state is one container's cpu settings. Fields are guarded by the
// registry lock; the enforcer mirrors them in its own Group under its own
// lock.
type state struct {
	// e is the hierarchy's enforcer, hierarchy-wide state: the root's
	// state makes, owns and closes it; every other state refers to it.
	e      *enforcer
	g      *sched.Group // guarded by e.mu
	root   bool
	shares uint64
	period uint64 // ns
	quota  uint64 // ns, runtimeInf for none
}

// Name implements core.Subsys.
func (*Subsys) Name() string { return "cpu" }

// Create implements core.Subsys. The root container starts the
// hierarchy's enforcer; a child gets a group under its parent's.
func (ss *Subsys) Create(c *core.Container) (any, error) {
	st := &state{shares: DefaultShares, period: DefaultPeriod, quota: runtimeInf}
	if c.IsRoot() {
		sp := ss.Stopper
		if sp == nil {
			sp = stopper.Default()
		}
		cfg := sched.DefaultConfig
		if ss.Config != nil {
			cfg = *ss.Config
		}
		st.root = true
		st.e = newEnforcer(cfg, sp, ss.Logf)
		st.g = st.e.model.Root()
		st.e.start()
		return st, nil
	}
	parent := ss.state(c.Parent())
	st.e = parent.e
	st.g = st.e.newGroup(parent.g, c.NameLocked())
	return st, nil
}

// Destroy implements core.Subsys.
func (ss *Subsys) Destroy(c *core.Container) {
	st := ss.state(c)
	if st.root {
		st.e.close()
		return
	}
	st.e.removeGroup(st.g)
}

func (ss *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, ss) }

// Fork implements core.Forker: the child joins its parent's group, and is
// stopped at once if that group is held. Userspace learns of a fork after
// it happened, so the child may have run a little already; its CPU time is
// charged at the next tick all the same.
func (ss *Subsys) Fork(c *core.Container, t *core.Task) {
	st := ss.state(c)
	st.e.addTask(t.TID, t.Start, st.g, true)
}

// Exit implements core.Exiter.
func (ss *Subsys) Exit(c *core.Container, t *core.Task) {
	ss.state(c).e.removeTask(t.TID)
}

// Attach implements core.Attacher: tasks moved to a child are scheduled
// there; tasks moved back to the root are let go.
func (ss *Subsys) Attach(ts *core.TaskSet) {
	st := ss.state(ts.Dst)
	for _, t := range ts.Tasks {
		if st.root {
			st.e.removeTask(t.TID)
		} else {
			st.e.addTask(t.TID, t.Start, st.g, false)
		}
	}
}

// Files implements core.Subsys: the kernel's cpu files, each with its
// cftype in kernel/sched/core.c's cpu_legacy_files (shares and
// cfs_period_us are u64 files, cfs_quota_us an s64 one, stat a seq_show),
// and one extension, effective_percent. rt_runtime_us and rt_period_us,
// which the kernel has with CONFIG_RT_GROUP_SCHED, are not offered:
// real-time tasks are not scheduled here.
func (ss *Subsys) Files() []core.File {
	return []core.File{
		{Name: "cfs_period_us", ReadU64: ss.readPeriod, WriteU64: ss.writePeriod},
		{Name: "cfs_quota_us", ReadS64: ss.readQuota, WriteS64: ss.writeQuota},
		{Name: "effective_percent", Read: ss.readEffective},
		{Name: "shares", ReadU64: ss.readShares, WriteU64: ss.writeShares},
		{Name: "stat", Read: ss.readStat},
	}
}

// readShares is cpu_shares_read_u64.
func (ss *Subsys) readShares(c *core.Container) uint64 { return ss.state(c).shares }

// writeShares is cpu_shares_write_u64: out-of-range values are clamped,
// not refused; the root's weight cannot change (sched_group_set_shares).
func (ss *Subsys) writeShares(c *core.Container, _ core.Caller, v uint64) error {
	st := ss.state(c)
	if st.root {
		return fmt.Errorf("cpu.shares of the root: %w", syscall.EINVAL)
	}
	st.shares = clampShares(v)
	st.e.setShares(st.g, st.shares)
	return nil
}

// readPeriod is cpu_cfs_period_read_u64, in µs.
func (ss *Subsys) readPeriod(c *core.Container) uint64 {
	return ss.state(c).period / nsecPerUsec
}

// readQuota is cpu_cfs_quota_read_s64: -1 for no limit, else µs.
func (ss *Subsys) readQuota(c *core.Container) int64 {
	q := ss.state(c).quota
	if q == runtimeInf {
		return -1
	}
	return int64(q / nsecPerUsec)
}

// writePeriod is tg_set_cfs_period: a period that does not survive the
// translation to ns is EINVAL.
func (ss *Subsys) writePeriod(c *core.Container, _ core.Caller, v uint64) error {
	if v > maxUsecToNsecOK {
		return fmt.Errorf("cpu.cfs_period_us %d: %w", v, syscall.EINVAL)
	}
	st := ss.state(c)
	return ss.setBandwidth(c, st, v*nsecPerUsec, st.quota)
}

// writeQuota is tg_set_cfs_quota: any negative value means no limit, a
// quota that does not survive the translation to ns is EINVAL.
func (ss *Subsys) writeQuota(c *core.Container, _ core.Caller, v int64) error {
	quota := uint64(runtimeInf)
	if v >= 0 {
		if uint64(v) > maxUsecToNsecOK {
			return fmt.Errorf("cpu.cfs_quota_us %d: %w", v, syscall.EINVAL)
		}
		quota = uint64(v) * nsecPerUsec
	}
	st := ss.state(c)
	return ss.setBandwidth(c, st, st.period, quota)
}

// setBandwidth is tg_set_cfs_bandwidth: the range checks, then the v1
// hierarchy check, then the change, which unthrottles the group.
func (ss *Subsys) setBandwidth(c *core.Container, st *state, period, quota uint64) error {
	if st.root {
		return fmt.Errorf("cpu bandwidth of the root: %w", syscall.EINVAL)
	}
	// Ensure some bandwidth every period, and sane periods.
	if quota < minCfsPeriod || period < minCfsPeriod {
		return fmt.Errorf("cpu bandwidth %d/%d ns: below 1 ms: %w", quota, period, syscall.EINVAL)
	}
	if period > maxCfsPeriod {
		return fmt.Errorf("cpu.cfs_period_us %d: above 1 s: %w", period/nsecPerUsec, syscall.EINVAL)
	}
	if quota != runtimeInf && quota > maxCfsRuntime {
		return fmt.Errorf("cpu.cfs_quota_us %d: too large: %w", quota/nsecPerUsec, syscall.EINVAL)
	}
	if err := ss.schedulable(c, period, quota); err != nil {
		return err
	}
	st.period, st.quota = period, quota
	q := int64(-1)
	if quota != runtimeInf {
		q = int64(quota)
	}
	st.e.setBandwidth(st.g, q, int64(period))
	return nil
}

// schedulable is __cfs_schedulable for cgroup v1: walking the whole tree
// with c's candidate setting, no group may have a quota/period ratio above
// that of its nearest limited ancestor. It compares ratios, not quotas, so
// a child with a smaller quota but a shorter period can be refused.
func (ss *Subsys) schedulable(c *core.Container, period, quota uint64) error {
	root := c
	for root.Parent() != nil {
		root = root.Parent()
	}
	const inf = int64(-1) // RUNTIME_INF as the kernel's s64
	var walk func(x *core.Container, parentQuota int64) error
	walk = func(x *core.Container, parentQuota int64) error {
		hq := inf
		if !x.IsRoot() {
			p, q := ss.state(x).period, ss.state(x).quota
			if x == c {
				p, q = period, quota
			}
			hq = inf
			if q != runtimeInf {
				hq = int64(toRatio(p, q))
			}
			if hq == inf {
				hq = parentQuota
			} else if parentQuota != inf && hq > parentQuota {
				return fmt.Errorf("cpu.cfs_quota_us of %s: above its parent's: %w", x.PathLocked(), syscall.EINVAL)
			}
		}
		for _, ch := range x.ChildrenLocked() {
			if err := walk(ch, hq); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, inf)
}

// readStat is cpu.stat in this kernel's format; bursts are not supported
// (no cpu.cfs_burst_us), so their lines are always 0.
func (ss *Subsys) readStat(c *core.Container) (string, error) {
	st := ss.state(c)
	s := st.e.stat(st.g)
	return fmt.Sprintf("nr_periods %d\nnr_throttled %d\nthrottled_time %d\nnr_bursts 0\nburst_time 0\n",
		s.NrPeriods, s.NrThrottled, s.ThrottledTime), nil
}

// readEffective is cpu.effective_percent, an extension: the share of the
// whole machine the container is entitled to when every container wants
// all the CPU it can get. It is the product, from the root down, of the
// container's shares over the sum of its siblings' shares, capped at each
// level by quota/period over the number of CPUs.
func (ss *Subsys) readEffective(c *core.Container) (string, error) {
	ncpu := ss.state(c).e.ncpu()
	var eff func(x *core.Container) float64
	eff = func(x *core.Container) float64 {
		if x.IsRoot() {
			return 100
		}
		p := x.Parent()
		var sum uint64
		for _, sib := range p.ChildrenLocked() {
			sum += ss.state(sib).shares
		}
		st := ss.state(x)
		f := eff(p) * float64(st.shares) / float64(sum)
		if st.quota != runtimeInf {
			f = min(f, 100*float64(st.quota)/float64(st.period)/float64(ncpu))
		}
		return f
	}
	return fmt.Sprintf("%.2f\n", eff(c)), nil
}
