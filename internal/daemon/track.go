// The tracker: the model's task set kept true from proc connector events
// (or polls of /proc), resynchronised from /proc when events are lost.

package daemon

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
	"golang.org/x/sys/unix"
)

// tracker keeps the model's task set true: it applies fork and exit events
// from the proc connector and, when events were lost, resynchronises from
// /proc. Userspace learns of a fork after it happened: between the fork and
// the event's arrival (tens of microseconds: docs/field-notes.md, "Proc
// connector") the child is in no container of ours, and a child that forks
// again meanwhile is placed correctly only because events from one socket
// arrive in order.
type tracker struct {
	reg  *core.Registry
	src  procevent.Source
	proc string
	logf core.Logf

	// bootOffset converts the connector's CLOCK_MONOTONIC stamps to the
	// CLOCK_BOOTTIME that /proc's start times count from, in ns.
	bootOffset atomic.Int64

	// OnEvent, if set, sees every event after the model applied it (the
	// policy engine's way in).
	onEvent func(procevent.Event)
	// onLost, if set, runs after a resync made because events were lost:
	// the policy engine classifies every process again, as an exec may
	// have gone unseen.
	onLost func()

	resyncs      atomic.Int64
	forks, exits atomic.Int64
	losses       atomic.Int64
	forkToPlaced latency // kernel's fork stamp to the child's placement
	execToRules  latency // kernel's exec stamp to the rules applied
}

// clkTck is USER_HZ, the unit of /proc start times; 100 on every Linux
// architecture containerfs runs on.
const clkTck = 100

func newTracker(reg *core.Registry, proc string, logf core.Logf) *tracker {
	t := &tracker{reg: reg, proc: proc, logf: logf}
	src, err := procevent.Listen(procevent.Options{})
	if err != nil {
		logf.Printf("WARNING: proc connector unavailable (%v): falling back to polling %s every 100 ms; "+
			"new tasks join their parent's containers up to 100 ms late", err, proc)
		p, perr := procevent.NewPoller(procevent.Options{ProcRoot: proc})
		if perr != nil {
			logf.Printf("WARNING: cannot poll %s either (%v): tasks are tracked only at start-up", proc, perr)
			return t
		}
		t.src = p
	} else {
		t.src = src
	}
	return t
}

func (t *tracker) measureOffset() {
	var mono, boot unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	t.bootOffset.Store(boot.Nano() - mono.Nano())
}

// ticks converts a connector timestamp to /proc start-time ticks.
func (t *tracker) ticks(ns uint64) uint64 {
	return uint64(int64(ns)+t.bootOffset.Load()) / (1e9 / clkTck)
}

// resync makes the model's task set match /proc.
func (t *tracker) resync() {
	t.measureOffset()
	tasks, err := procevent.Scan(t.proc)
	if err != nil {
		t.logf.Printf("resync: %v", err)
		return
	}
	scan := make([]core.ScanTask, len(tasks))
	for i, pt := range tasks {
		scan[i] = core.ScanTask{
			TaskInfo: core.TaskInfo{TID: pt.TID, TGID: pt.TGID, Start: pt.Start},
			PPID:     pt.PPID,
		}
	}
	added, removed := t.reg.Resync(scan)
	n := t.resyncs.Add(1)
	if n > 1 {
		t.logf.Printf("resync %d: %d tasks added, %d removed", n-1, added, removed)
	}
}

// run applies events until the source is closed.
func (t *tracker) run() {
	if t.src == nil {
		return
	}
	for {
		evs, err := t.src.Receive()
		switch {
		case errors.Is(err, procevent.ErrLost):
			t.losses.Add(1)
			t.logf.Printf("proc connector: %v; resynchronising from %s", err, t.proc)
			t.resync()
			t.lost()
		case errors.Is(err, os.ErrClosed):
			return
		case err != nil:
			t.logf.Printf("proc connector: %v", err)
			time.Sleep(10 * time.Millisecond)
		}
		if t.apply(evs) {
			t.resync()
			t.lost()
		}
	}
}

// apply applies a batch of events; it tells whether the model needs a resync.
func (t *tracker) apply(evs []procevent.Event) (lost bool) {
	for _, ev := range evs {
		switch ev.What {
		case procevent.Fork:
			child := core.TaskInfo{TID: ev.PID, TGID: ev.TGID, Start: t.ticks(ev.Timestamp)}
			parent := ev.ParentPID
			if ev.PID != ev.TGID {
				// A new thread's event names its process's parent, not
				// the thread that cloned it: it joins its own group.
				// (cgroup v1 puts it with the cloning thread, which the
				// event does not name; the leader is the best guess.)
				parent = ev.TGID
			}
			if !t.reg.Fork(parent, child) {
				lost = true
			} else if ev.Timestamp != 0 {
				t.forkToPlaced.add(time.Duration(monotonicNow() - int64(ev.Timestamp)))
			}
			t.forks.Add(1)
		case procevent.Exec:
			if ev.PID == ev.TGID && !t.reg.Known(ev.TGID) {
				// A non-leader thread exec'd and took over the group's ID.
				pt, err := procevent.ReadTask(t.proc, ev.TGID)
				if err == nil && !t.reg.Exec(ev.TGID, pt.Start) {
					lost = true
				}
			}
		case procevent.Exit:
			// Match the exit to the task we know by TID, never to the
			// event's parent fields, which may be 0.
			t.reg.Exit(ev.PID, t.ticks(ev.Timestamp))
			t.exits.Add(1)
		}
		if t.onEvent != nil {
			t.onEvent(ev)
			if ev.What == procevent.Exec && ev.Timestamp != 0 {
				t.execToRules.add(time.Duration(monotonicNow() - int64(ev.Timestamp)))
			}
		}
	}
	return lost
}

func (t *tracker) lost() {
	if t.onLost != nil {
		t.onLost()
	}
}

func (t *tracker) close() {
	if t.src != nil {
		t.src.Close()
	}
}

// monotonicNow is the connector's clock, read without a syscall.
func monotonicNow() int64 { return int64(procevent.Now()) }

// stats describes the tracker's work so far, for `containerfs stats`.
func (t *tracker) stats() []string {
	src := "none"
	switch t.src.(type) {
	case *procevent.Conn:
		src = "proc connector"
	case *procevent.Poller:
		src = "polling /proc"
	}
	return []string{
		"source " + src,
		fmt.Sprintf("forks %d", t.forks.Load()),
		fmt.Sprintf("exits %d", t.exits.Load()),
		fmt.Sprintf("losses %d", t.losses.Load()),
		fmt.Sprintf("resyncs %d", max(t.resyncs.Load()-1, 0)),
		"fork_to_placement " + t.forkToPlaced.String(),
		"exec_to_rules_applied " + t.execToRules.String(),
	}
}
