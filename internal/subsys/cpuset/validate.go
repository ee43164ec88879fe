package cpuset

import (
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// validateLocked is the kernel's validate_change with
// cpuset1_validate_change, in the kernel's order, so that a write breaking
// several rules gets the errno the kernel would return:
//
//  1. a child no longer a subset of trial (cpus, mems, or an exclusive
//     flag it has and trial drops) → EBUSY;
//  2. trial not a subset of the parent (or exclusive where the parent is
//     not) → EACCES;
//  3. the rest does not apply to the root;
//  4. the cpuset or a descendant has tasks and trial would empty cpus or
//     mems → ENOSPC;
//  5. trial overlaps a sibling in CPUs (nodes) while either of them is
//     cpu_exclusive (mem_exclusive) → EINVAL.
//
// The kernel's fourth rule, an exclusive cpuset shrinking below the room
// its SCHED_DEADLINE tasks need (EBUSY), is not checked: our cpusets make
// no scheduling domains for deadline bandwidth to be counted in.
func (s *Subsys) validateLocked(c *core.Container, cur, trial *state) error {
	for _, ch := range c.ChildrenLocked() {
		if !isSubset(s.state(ch), trial) {
			return fmt.Errorf("child %s would not be a subset: %w", ch.NameLocked(), syscall.EBUSY)
		}
	}
	parent := c.Parent()
	if parent == nil {
		return nil
	}
	if !isSubset(trial, s.state(parent)) {
		return fmt.Errorf("not a subset of the parent cpuset: %w", syscall.EACCES)
	}
	if populatedLocked(c) {
		if !cur.cpus.IsEmpty() && trial.cpus.IsEmpty() {
			return fmt.Errorf("the cpuset has tasks and would have no CPUs: %w", syscall.ENOSPC)
		}
		if !cur.mems.IsEmpty() && trial.mems.IsEmpty() {
			return fmt.Errorf("the cpuset has tasks and would have no memory nodes: %w", syscall.ENOSPC)
		}
	}
	for _, sib := range parent.ChildrenLocked() {
		if sib == c {
			continue
		}
		o := s.state(sib)
		if (trial.has(cpuExclusive) || o.has(cpuExclusive)) && trial.cpus.Intersects(o.cpus) {
			return fmt.Errorf("CPUs overlap exclusive sibling %s: %w", sib.NameLocked(), syscall.EINVAL)
		}
		if (trial.has(memExclusive) || o.has(memExclusive)) && trial.mems.Intersects(o.mems) {
			return fmt.Errorf("memory nodes overlap exclusive sibling %s: %w", sib.NameLocked(), syscall.EINVAL)
		}
	}
	return nil
}

// isSubset is is_cpuset_subset(p, q): p's CPUs and nodes are within q's,
// and p is exclusive only where q is.
func isSubset(p, q *state) bool {
	return p.cpusLocked().SubsetOf(q.cpusLocked()) &&
		p.memsLocked().SubsetOf(q.memsLocked()) &&
		(!p.has(cpuExclusive) || q.has(cpuExclusive)) &&
		(!p.has(memExclusive) || q.has(memExclusive))
}

// populatedLocked is cgroup_is_populated: c or a descendant has a task.
func populatedLocked(c *core.Container) bool {
	if c.NumTasksLocked() > 0 {
		return true
	}
	for _, ch := range c.ChildrenLocked() {
		if populatedLocked(ch) {
			return true
		}
	}
	return false
}
