// The Poller: fork and exit events made by diffing scans of /proc, where
// the proc connector cannot be had.

package procevent

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/containerfs/containerfs/internal/worker"
	"golang.org/x/sys/unix"
)

// Poller makes Fork and Exit events by comparing successive scans of
// /proc, for where the proc connector cannot be had (no CAP_NET_ADMIN, or
// not in the initial namespaces). A task is known by its TID and start
// time, so a reused TID is a new task. Tasks that live less than an
// interval are never seen, and nothing reports that: the Poller is lossy
// without saying so.
type Poller struct {
	procRoot string
	interval time.Duration
	w        *worker.Worker // not started: Receive sleeps on it, Close stops it

	mu    sync.Mutex // serializes Receive; guards known, seq and last
	known map[taskKey]Task
	seq   uint32
	last  time.Time // when the last scan began
}

type taskKey struct {
	tid   int
	start uint64
}

// NewPoller scans opts.ProcRoot once for a baseline: tasks alive now are
// never reported as forked.
func NewPoller(opts Options) (*Poller, error) {
	p := &Poller{
		procRoot: cmp.Or(opts.ProcRoot, "/proc"),
		interval: cmp.Or(opts.Interval, 100*time.Millisecond),
		w:        worker.New(),
		last:     time.Now(),
	}
	tasks, err := Scan(p.procRoot)
	if err != nil {
		return nil, err
	}
	_, p.known = diff(nil, tasks, clocks())
	return p, nil
}

// Receive waits for a scan that differs from the last one and returns its
// events: Exit for each task gone, then Fork for each new one, oldest
// first. Fork's parent fields are the PPID (the thread that forked is
// unknown) and its Timestamp is the task's start time on CLOCK_MONOTONIC,
// as near as ticks allow; Exit carries no exit status and the time of the
// scan. Events come from CPU 0, numbered in sequence.
func (p *Poller) Receive() ([]Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		// One scan per interval, as a ticker would: the time a scan took
		// counts towards the next wait.
		if !p.w.Wait(max(p.interval-time.Since(p.last), 0)) {
			return nil, fmt.Errorf("procevent: poll: %w", os.ErrClosed)
		}
		p.last = time.Now()
		tasks, err := Scan(p.procRoot)
		if err != nil {
			return nil, err
		}
		var evs []Event
		evs, p.known = diff(p.known, tasks, clocks())
		for i := range evs {
			evs[i].Seq = p.seq
			p.seq++
		}
		if len(evs) > 0 {
			return evs, nil
		}
	}
}

// Close stops the Poller and makes a concurrent Receive return.
func (p *Poller) Close() error {
	p.w.Stop()
	return nil
}

// clock is the time of a scan: CLOCK_MONOTONIC, the connector's clock,
// and how far CLOCK_BOOTTIME, the clock of /proc start times, is ahead.
type clock struct{ mono, bootAhead uint64 }

func clocks() clock {
	var mono, boot unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	return clock{uint64(mono.Nano()), uint64(max(boot.Nano()-mono.Nano(), 0))}
}

// userHZ is the unit of /proc start times, fixed at 100 for userspace.
const userHZ = 100

// startNs converts a /proc start time to CLOCK_MONOTONIC nanoseconds.
func (c clock) startNs(start uint64) uint64 {
	return max(start*(1e9/userHZ), c.bootAhead) - c.bootAhead
}

// diff returns the events that turn the tasks in prev into cur, and cur
// indexed for the next call.
func diff(prev map[taskKey]Task, cur []Task, now clock) ([]Event, map[taskKey]Task) {
	next := make(map[taskKey]Task, len(cur))
	var forks, exits []Task
	for _, t := range cur {
		k := taskKey{t.TID, t.Start}
		next[k] = t
		if _, ok := prev[k]; !ok {
			forks = append(forks, t)
		}
	}
	for k, t := range prev {
		if _, ok := next[k]; !ok {
			exits = append(exits, t)
		}
	}
	older := func(a, b Task) int { return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.TID, b.TID)) }
	slices.SortFunc(exits, older)
	slices.SortFunc(forks, older)
	evs := make([]Event, 0, len(exits)+len(forks))
	for _, t := range exits {
		evs = append(evs, Event{What: Exit, Timestamp: now.mono, PID: t.TID, TGID: t.TGID, ParentPID: t.PPID, ParentTGID: t.PPID})
	}
	for _, t := range forks {
		evs = append(evs, Event{What: Fork, Timestamp: now.startNs(t.Start), PID: t.TID, TGID: t.TGID, ParentPID: t.PPID, ParentTGID: t.PPID})
	}
	return evs, next
}
