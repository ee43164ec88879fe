// Moving a process, all hierarchies or none, and the fork-race fix-up: the
// children a racing fork left behind a parent's move follow it.

package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
)

// recentMove is a completed move of a process: when, where to, and from
// where, per hierarchy.
type recentMove struct {
	at  uint64
	dst map[*core.Hierarchy]*core.Container
	old map[*core.Hierarchy]string
}

// forkRec is a fork seen while moves run off the tracker's goroutine.
type forkRec struct {
	tid, tgid int
	follows   int // the process whose move it must follow: the parent, or its own group for a thread
	ts        uint64
}

const (
	recentTTL  = 10 * time.Second // a fork event is never this late without a loss
	maxForkLog = 1 << 16
)

func (e *Engine) onFork(ev procevent.Event) {
	f := forkRec{tid: ev.PID, tgid: ev.TGID, follows: ev.ParentTGID, ts: ev.Timestamp}
	if ev.PID != ev.TGID {
		f.follows = ev.TGID // a new thread follows its own process
	}
	e.mu.Lock()
	if e.ops > 0 {
		if len(e.forkLog) >= maxForkLog {
			e.warnLocked("fork log full", "policy: more than %d forks during one placement; a child forked meanwhile may stay behind", maxForkLog)
			e.forkLog = e.forkLog[1:]
		}
		e.forkLog = append(e.forkLog, f)
	}
	var rm *recentMove
	if r := e.recent[f.follows]; r != nil && f.ts < r.at {
		rm = r
	}
	if ev.PID == ev.TGID {
		if s, ok := e.sticky[ev.ParentTGID]; ok && s.tree {
			if s.ancestor == 0 {
				s.ancestor = ev.ParentTGID
			}
			e.sticky[ev.PID] = stickyEntry{tree: true, why: s.why, ancestor: s.ancestor}
		}
	}
	e.pruneLocked()
	e.mu.Unlock()
	if rm != nil {
		e.moveMu.Lock()
		e.fixup([]pending{{f, rm}})
		e.moveMu.Unlock()
	}
}

func (e *Engine) beginOp() {
	e.mu.Lock()
	e.ops++
	e.mu.Unlock()
}

func (e *Engine) endOp() {
	e.mu.Lock()
	if e.ops--; e.ops == 0 {
		e.forkLog = nil
	}
	e.mu.Unlock()
}

func (e *Engine) pruneLocked() {
	now := e.o.Clock()
	if now-e.pruned < uint64(time.Second) && len(e.recent) < 4096 {
		return
	}
	e.pruned = now
	for pid, rm := range e.recent {
		if now > rm.at && now-rm.at > uint64(recentTTL) {
			delete(e.recent, pid)
		}
	}
}

// execute moves p into the targets, all or nothing: if one hierarchy
// refuses, those already moved are moved back. It then records the move
// and moves the children forked meanwhile that stayed behind. Call with
// moveMu held. It tells whether anything moved.
func (e *Engine) execute(p Process, targets []target) (bool, error) {
	if len(targets) == 0 {
		return false, nil
	}
	m := e.o.Model
	dst := map[*core.Hierarchy]*core.Container{}
	for _, t := range targets {
		c, err := e.container(t)
		if err != nil {
			return false, err
		}
		dst[t.h] = c
	}
	ws, _ := m.Where(p.PID)
	old := map[*core.Hierarchy]string{}
	var done []*core.Hierarchy
	for _, t := range targets {
		cur, known := whereIn(ws, t.h)
		old[t.h] = cur
		if known && cur == dst[t.h].Path() {
			continue
		}
		if err := m.Attach(dst[t.h], p.PID); err != nil {
			for _, h := range slices.Backward(done) {
				if back, berr := m.ContainerAt(h, old[h], false); berr == nil {
					m.Attach(back, p.PID)
				}
			}
			return false, fmt.Errorf("move to %s in %s: %w", dst[t.h].Path(), label(t.h), err)
		}
		done = append(done, t.h)
	}
	if len(done) == 0 {
		return false, nil
	}
	rm := &recentMove{at: e.o.Clock(), dst: map[*core.Hierarchy]*core.Container{}, old: map[*core.Hierarchy]string{}}
	for _, h := range done {
		rm.dst[h], rm.old[h] = dst[h], old[h]
	}
	e.mu.Lock()
	e.stats.Moves++
	e.recent[p.PID] = rm
	kids := e.forkedBeforeLocked(p.PID, rm)
	e.mu.Unlock()
	e.fixup(kids)
	return true, nil
}

// pending is a fork that may have left a child behind a parent's move.
type pending struct {
	f  forkRec
	rm *recentMove
}

// forkedBeforeLocked lists the logged forks that must follow process pid's
// move rm: its children and threads forked before the move completed.
func (e *Engine) forkedBeforeLocked(pid int, rm *recentMove) []pending {
	var ps []pending
	for _, f := range e.forkLog {
		if f.follows == pid && f.ts < rm.at {
			ps = append(ps, pending{f, rm})
		}
	}
	return ps
}

// fixup moves each pending child, and then the children it forked in
// turn, into its parent's new containers if it is still in the parent's
// old ones: a child placed elsewhere meanwhile (by its own exec, or by
// hand) stays. A sticky child follows too: it was made sticky by its
// parent's fork, and the parent's placement is what sticks. Call with
// moveMu held.
func (e *Engine) fixup(work []pending) {
	m := e.o.Model
	for len(work) > 0 {
		it := work[0]
		work = work[1:]
		f := it.f
		ws, ok := m.Where(f.tid)
		if !ok {
			continue
		}
		rm := &recentMove{dst: map[*core.Hierarchy]*core.Container{}, old: map[*core.Hierarchy]string{}}
		for h, dst := range it.rm.dst {
			cur, _ := whereIn(ws, h)
			if cur != it.rm.old[h] || cur == dst.Path() {
				continue
			}
			if err := m.Attach(dst, f.tgid); err != nil {
				e.warn("fixup"+err.Error(), "policy: task %d forked during its parent's move stays in %s of %s: %v", f.tid, cur, label(h), err)
				continue
			}
			rm.dst[h], rm.old[h] = dst, cur
		}
		if len(rm.dst) == 0 {
			continue
		}
		rm.at = e.o.Clock()
		e.mu.Lock()
		e.stats.Fixups++
		if f.tid == f.tgid {
			e.recent[f.tgid] = rm
			work = append(work, e.forkedBeforeLocked(f.tgid, rm)...)
		}
		e.mu.Unlock()
	}
}
