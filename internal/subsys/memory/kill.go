package memory

// The OOM killer: choosing a victim as oom_badness does among a plan's
// candidates, checking that killing it hits nothing in the root container,
// and killing it through a pidfd after a start-time check.

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"golang.org/x/sys/unix"
)

// candidate is a process that an OOM kill in a container may choose.
type candidate struct {
	p        *process
	tgid     int
	start    uint64
	resident int64
	swap     int64
}

// killPlan is an OOM kill to carry out outside the lock.
type killPlan struct {
	c          *cstate
	usage      int64
	limit      int64
	candidates []candidate
}

// oomScoreAdjMin is OOM_SCORE_ADJ_MIN: such a process is never killed.
const oomScoreAdjMin = -1000

// execute carries out a kill plan as v1's OOM killer chooses
// (oom_badness): the largest process by resident memory plus swap, plus
// oom_score_adj thousandths of the limit, never one at -1000. Only
// processes all of whose threads are outside the root container may be
// killed (SIGKILL kills the whole thread group). If the container was
// paused, it runs again once the victim is killed.
func (e *engine) execute(pl killPlan) {
	s := e.s
	type scored struct {
		candidate
		points int64
		comm   string
	}
	var cands []scored
	limitPages := pl.limit / pageSize
	for _, c := range pl.candidates {
		adj, err := readOOMScoreAdj(s.proc(), c.tgid)
		if err != nil || adj == oomScoreAdjMin {
			continue
		}
		points := (c.resident+c.swap)/pageSize + adj*limitPages/1000
		comm, _ := os.ReadFile(proc.Path(s.proc(), c.tgid, "comm"))
		cands = append(cands, scored{candidate: c, points: points, comm: strings.TrimSpace(string(comm))})
	}
	slices.SortFunc(cands, func(a, b scored) int {
		if a.points != b.points {
			return int(b.points - a.points)
		}
		return b.tgid - a.tgid
	})
	handled := false
	var refusals []string
	for _, c := range cands {
		ok, why := e.killable(c.p, c.tgid)
		if !ok {
			refusals = append(refusals, fmt.Sprintf("%d: %s", c.tgid, why))
			continue
		}
		e.mu.Lock()
		done, err := e.killLocked(pl.c, c.p)
		e.mu.Unlock()
		if err != nil {
			refusals = append(refusals, fmt.Sprintf("%d: %v", c.tgid, err))
			continue
		}
		if done {
			s.Logf.Printf("memory: %s is over its limit (%d > %d bytes): killed process %d (%s), %d bytes resident",
				pl.c.path(), pl.usage, pl.limit, c.tgid, c.comm, c.resident)
		}
		handled = true
		break
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if pl.c.paused {
		// v1 wakes its OOM waiters when the killer is re-enabled; they
		// run again, killed or not.
		pl.c.paused = false
		e.syncHoldsLocked()
	}
	if handled {
		pl.c.noVictimLogged = false
	} else if !pl.c.noVictimLogged {
		// Said once until it is back under its limit or a kill is done:
		// this is looked at again every round.
		pl.c.noVictimLogged = true
		s.Logf.Printf("memory: %s is over its limit (%d > %d bytes) and has no process that may be killed %v", pl.c.path(), pl.usage, pl.limit, refusals)
	}
}

// killable tells whether killing p's whole thread group hits only tasks
// outside the root container, as far as can be told: every thread is known
// to be in a non-root container, or is unknown but born after the leader
// came in (its fork event not read yet: a new thread joins its leader). A
// thread moved into the root container, or an unknown one older than that
// (it stayed in the root when the leader alone was moved), forbids it.
func (e *engine) killable(p *process, tgid int) (bool, string) {
	s := e.s
	tids, err := proc.Threads(s.proc(), tgid)
	if err != nil {
		return false, "gone"
	}
	var unknown []int
	e.mu.Lock()
	known := map[int]bool{}
	for th := range p.threads {
		known[th.tid] = true
	}
	join := p.joinTicks
	for _, tid := range tids {
		if _, ok := e.inRoot[tid]; ok {
			e.mu.Unlock()
			return false, fmt.Sprintf("its thread %d is in the root container", tid)
		}
		if !known[tid] {
			unknown = append(unknown, tid)
		}
	}
	e.mu.Unlock()
	for _, tid := range unknown {
		start, err := readTaskStart(s.proc(), tgid, tid)
		if err != nil {
			continue // exited
		}
		if start+1 < join {
			return false, fmt.Sprintf("its thread %d, older than its move, may be in the root container", tid)
		}
	}
	return true, ""
}

// killLocked kills p for c if that is still called for: p is still one of
// c's processes, c is still over its limit, and no victim is dying there.
// It holds mu while it signals (a pidfd signal never blocks), so p cannot
// be moved into the root container between the check and the kill.
func (e *engine) killLocked(c *cstate, p *process) (bool, error) {
	now := e.s.now()
	o := p.owner()
	if e.procs[p.tgid] != p || o == nil || !o.within(c) || c.removed || c.limit == unlimited || c.usage <= c.limit {
		return false, nil
	}
	if e.victimPendingLocked(c, now) {
		return false, nil
	}
	if p.tgid == os.Getpid() {
		return false, fmt.Errorf("the daemon: %w", syscall.EPERM)
	}
	if err := e.s.kill(p.tgid, p.start); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			p.gone = true
		}
		return false, err
	}
	p.killedAt = now
	// v1 counts the kill in the victim's memcg and every ancestor below
	// the root (memcg_memory_event_mm(MEMCG_OOM_KILL)).
	for x := o; x != nil && !x.root; x = x.parent {
		x.oomKill++
	}
	return true, nil
}

// kill sends SIGKILL to process tgid if it is still the one that started
// at start: a pidfd is opened first and the start time checked second, so
// a PID reused after the check is never hit. Nothing here blocks.
func (s *Subsys) kill(tgid int, start uint64) error {
	if s.sendKill != nil {
		return s.sendKill(tgid, start)
	}
	return pidfdKill(s.proc(), tgid, start)
}

func pidfdKill(root string, tgid int, start uint64) error {
	if tgid == os.Getpid() {
		return fmt.Errorf("the daemon: %w", syscall.EPERM)
	}
	fd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return fmt.Errorf("process %d: %w", tgid, err)
	}
	defer unix.Close(fd)
	got, err := proc.ReadStat(root, tgid)
	if err != nil || !(proc.ID{TID: tgid, Start: start}).Holds(got.ID()) {
		return fmt.Errorf("process %d is gone: %w", tgid, syscall.ESRCH)
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// nowTicks is the time in clock ticks since boot, the unit of start times.
func (e *engine) nowTicks() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano() / (int64(time.Second) / clockTicks))
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100
