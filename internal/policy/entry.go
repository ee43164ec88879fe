// The entry points: events from the tracker, the start-up and lost-event
// passes, and cgclassify and cgexec requests.

package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/containerfs/containerfs/internal/procevent"
)

// HandleEvent is the tracker's onEvent hook: it runs for every event after
// the model applied it, on the tracker's goroutine, so it must not wait on
// anything but the model.
func (e *Engine) HandleEvent(ev procevent.Event) {
	switch ev.What {
	case procevent.Fork:
		e.onFork(ev)
	case procevent.Exec, procevent.UID, procevent.GID:
		e.onChange(ev)
	case procevent.Exit:
		e.onExit(ev.TGID)
	}
}

// onChange classifies a process that exec'd or changed its uid or gid.
func (e *Engine) onChange(ev procevent.Event) {
	rs := e.rules.Load()
	if len(rs.Rules) == 0 || ev.TGID == e.o.Self {
		return
	}
	p, err := e.o.Procs.Process(ev.TGID)
	if err != nil || p.Kernel {
		return // gone already: fine
	}
	if e.isSticky(p) {
		return
	}
	e.mu.Lock()
	e.stats.Events++
	e.mu.Unlock()
	d := e.decide(p, rs)
	if d.ignore != "" {
		e.count(func(s *Stats) { s.Ignored++ })
		return
	}
	if len(d.targets) == 0 {
		return
	}
	e.moveMu.Lock()
	_, err = e.execute(p, d.targets)
	e.moveMu.Unlock()
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		e.count(func(s *Stats) { s.Errors++ })
		e.warn(d.rule.Where()+err.Error(), "policy: %s: process %d (%s): %v", d.rule.Where(), p.PID, p.Name, err)
	}
}

// ClassifyAll applies the rules to every process on the machine, oldest
// first, as cgrulesengd does at start-up. Sticky processes, kernel threads
// and the daemon are left alone. It returns how many processes moved.
func (e *Engine) ClassifyAll() (moved int, err error) {
	rs := e.rules.Load()
	if len(rs.Rules) == 0 {
		return 0, nil
	}
	e.beginOp()
	defer e.endOp()
	pids, err := e.o.Procs.PIDs()
	if err != nil {
		return 0, err
	}
	procs := make([]Process, 0, len(pids))
	for _, pid := range pids {
		p, err := e.o.Procs.Process(pid)
		if err != nil || p.Kernel || p.PID == e.o.Self {
			continue
		}
		procs = append(procs, p)
	}
	slices.SortFunc(procs, func(a, b Process) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.PID, b.PID))
	})
	var errs []error
	for _, p := range procs {
		if e.isSticky(p) {
			continue
		}
		d := e.decide(p, rs)
		if d.ignore != "" || len(d.targets) == 0 {
			continue
		}
		e.moveMu.Lock()
		ok, err := e.execute(p, d.targets)
		e.moveMu.Unlock()
		if ok {
			moved++
		}
		if err != nil && !errors.Is(err, syscall.ESRCH) && len(errs) < 20 {
			errs = append(errs, fmt.Errorf("%s: process %d (%s): %w", d.rule.Where(), p.PID, p.Name, err))
		}
	}
	return moved, errors.Join(errs...)
}

// Lost tells the engine that events were lost (the tracker resynchronised
// the model from /proc): an exec or uid change may have gone unseen, so
// every process is classified again, on a goroutine of its own. Calls
// made while a pass runs are served by one more pass. done, if not nil,
// runs after the last pass, with the number of processes moved, for the
// call that started the passes only (later calls' done are dropped).
// Sticky entries of processes the model no longer has go first: their
// exits may have been among the events lost.
func (e *Engine) Lost(done func(moved int)) {
	e.pruneSticky()
	e.lost.Add(1)
	if !e.passing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		total := 0
		for {
			for e.lost.Swap(0) > 0 {
				moved, err := e.ClassifyAll()
				total += moved
				if err != nil {
					e.o.Logf.Printf("policy: classifying again after lost events: %v", err)
				}
			}
			e.passing.Store(false)
			// A Lost that came after the last Swap but before the Store
			// saw passing set and left: serve it.
			if e.lost.Load() == 0 || !e.passing.CompareAndSwap(false, true) {
				break
			}
		}
		if done != nil {
			done(total)
		}
	}()
}

// Classify moves processes as cgclassify does: into the containers of
// spec, or by the rules when spec is nil (sticky or not), then leaves them
// alone as mode says.
func (e *Engine) Classify(pids []int, spec Spec, mode Stick) error {
	var errs []error
	for _, pid := range pids {
		if err := e.place(pid, spec, "", mode, "cgclassify"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Exec places process pid before it execs program, as cgexec does: into
// the containers of spec or, when spec is nil, where the rules put
// program (its path, which the rules match by name) for this user. The
// process is then left alone as mode says (StickSelf is cgexec's default,
// StickTree its --sticky), so the exec that follows does not move it
// again: the program never runs in the wrong container. The caller learns
// pid from the control socket's peer credentials.
func (e *Engine) Exec(pid int, spec Spec, program string, mode Stick) error {
	return e.place(pid, spec, program, mode, "cgexec")
}

func (e *Engine) place(pid int, spec Spec, program string, mode Stick, why string) error {
	if pid == e.o.Self {
		return fmt.Errorf("process %d: the containerfs daemon stays in its root containers: %w", pid, syscall.EPERM)
	}
	p, err := e.o.Procs.Process(pid)
	if err != nil {
		return withErrno(err, syscall.ESRCH) // it names the process already
	}
	if p.Kernel {
		return fmt.Errorf("process %d is a kernel thread: %w", pid, syscall.EINVAL)
	}
	if program != "" {
		p.Name = program
	}
	var targets []target
	if spec != nil {
		if targets, err = e.specTargets(spec); err != nil {
			return err
		}
	} else {
		d := e.decide(p, e.rules.Load())
		if d.ignore == "" {
			targets = d.targets
		}
	}
	e.beginOp()
	defer e.endOp()
	// Stick first, so that an exec racing this request is not classified
	// by the rules in between; undo it if the move fails.
	prev, had := e.stickyEntry(pid)
	e.setSticky(p, mode, fmt.Sprintf("placed by %s", why))
	e.moveMu.Lock()
	_, err = e.execute(p, targets)
	e.moveMu.Unlock()
	if err != nil {
		e.mu.Lock()
		if had {
			e.sticky[pid] = prev
		} else {
			delete(e.sticky, pid)
		}
		e.mu.Unlock()
		return fmt.Errorf("process %d: %w", pid, err)
	}
	return nil
}
