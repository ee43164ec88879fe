package testutil

import (
	"slices"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// Procs is a core.Procs over a map from TID to task, for tests that build a
// registry in-process without /proc.
type Procs map[int]core.TaskInfo

var _ core.Procs = Procs(nil)

// Task implements core.Procs: ESRCH for a TID not in the map.
func (p Procs) Task(tid int) (core.TaskInfo, error) {
	ti, ok := p[tid]
	if !ok {
		return core.TaskInfo{}, syscall.ESRCH
	}
	return ti, nil
}

// Threads implements core.Procs: the group's TIDs, sorted.
func (p Procs) Threads(tgid int) ([]int, error) {
	var tids []int
	for tid, ti := range p {
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
