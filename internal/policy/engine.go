package policy

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
)

// Stick says how the rules treat a process after it was placed on
// request (cgexec, cgclassify) or by hand.
type Stick int

// The ways a placed process is left alone.
const (
	// StickNone: the rules may move it again on its next exec or uid
	// change (cgclassify --cancel-unchanged).
	StickNone Stick = iota
	// StickSelf: the rules leave it alone, but classify its children when
	// they exec (cgexec and cgclassify without --sticky).
	StickSelf
	// StickTree: the rules leave it and every descendant alone (--sticky).
	StickTree
)

func (s Stick) String() string {
	return [...]string{"not sticky", "sticky", "sticky with its children"}[s]
}

// Options configure an Engine.
type Options struct {
	Model Model
	Procs Procs // ProcFS{} if nil
	Users Users // NewSystemUsers() if nil
	// Known are the subsystem names that exist, to reject rules naming
	// others (Registry.Subsystems()).
	Known []string
	// RulesFile and RulesDir are what Reload reads; "" for none.
	RulesFile, RulesDir string
	// Self is a process the rules never touch: the daemon (os.Getpid()
	// if 0).
	Self int
	// Manual is how a process moved by hand (NoteManual) is left alone;
	// StickTree if zero, as a container manager that writes its init's
	// pid to cgroup.procs wants its whole tree to stay.
	Manual Stick
	Logf   func(format string, a ...any) // log.Printf if nil
	// Clock is CLOCK_MONOTONIC in ns, the clock of the connector's
	// timestamps (tests may fake it).
	Clock func() uint64
}

// Engine applies rules to processes as they exec or change uid or gid,
// and places processes on request. It is safe for concurrent use.
//
// Events come from the daemon's tracker, on its goroutine, after the
// model applied them. A move made while handling an exec event therefore
// completes before any later fork of that process is applied, and the
// child is born into the new containers: there is no fork race there. A
// move made on another goroutine (the start-up pass, Classify, Exec) can
// race a fork: the child may be placed in the old containers just before
// the parent moves. Like cgrulesengd, the engine then remembers (pid, time)
// of each move and, for every fork of a moved process that happened before
// the move completed, moves the child too if it is still where the parent
// was; forks handled before the move are found in a log kept while such
// moves run.
type Engine struct {
	o     Options
	rules atomic.Pointer[RuleSet]
	cfg   atomic.Pointer[Config] // for templates

	// lost counts Lost calls not yet served by a pass over every process.
	lost    atomic.Int64
	passing atomic.Bool

	// moveMu serialises moves and their fix-ups, so that the record of
	// recent moves is written before any fork that must follow it is
	// looked at. Held while calling into the model, never into the engine.
	moveMu sync.Mutex

	mu      sync.Mutex
	sticky  map[int]stickyEntry // by process ID; guarded by mu
	recent  map[int]*recentMove // by process ID; guarded by mu
	forkLog []forkRec           // forks seen while ops > 0; guarded by mu
	ops     int                 // moves running off the tracker's goroutine; guarded by mu
	warned  map[string]struct{} // messages logged once; guarded by mu
	pruned  uint64              // Clock at the last prune of recent; guarded by mu
	stats   Stats               // guarded by mu
}

// Stats count what the engine did.
type Stats struct {
	Events  uint64 // exec, uid and gid events looked at
	Moves   uint64 // processes moved by the rules or on request
	Fixups  uint64 // children moved after a parent's racing move
	Ignored uint64 // matched an ignore or ignore_rt rule
	Sticky  int    // processes left alone now
	Errors  uint64
}

type stickyEntry struct {
	start uint64 // 0: not read yet (inherited at fork)
	tree  bool
	why   string // why it, or the ancestor it inherits from, was made sticky
	// ancestor is, for an entry inherited at fork, the process that was
	// made sticky; 0 for that process itself. A fork in a sticky tree
	// copies the entry and formats nothing.
	ancestor int
}

// reason says why the entry exists, for Explain.
func (s stickyEntry) reason() string {
	if s.ancestor == 0 {
		return s.why
	}
	return fmt.Sprintf("a descendant of %d, %s", s.ancestor, s.why)
}

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
	maxWarned  = 1024
)

// New makes an engine with no rules.
func New(o Options) *Engine {
	if o.Procs == nil {
		o.Procs = ProcFS{}
	}
	if o.Users == nil {
		o.Users = NewSystemUsers()
	}
	if o.Self == 0 {
		o.Self = os.Getpid()
	}
	if o.Manual == StickNone {
		o.Manual = StickTree
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	if o.Clock == nil {
		o.Clock = procevent.Now // no syscall: the engine reads it per fork
	}
	e := &Engine{o: o, sticky: map[int]stickyEntry{}, recent: map[int]*recentMove{}, warned: map[string]struct{}{}}
	e.rules.Store(&RuleSet{})
	return e
}

// Rules are the rules in force.
func (e *Engine) Rules() *RuleSet { return e.rules.Load() }

// SetRules puts rs in force.
func (e *Engine) SetRules(rs *RuleSet) {
	if rs == nil {
		rs = &RuleSet{}
	}
	e.rules.Store(rs)
}

// SetConfig gives the templates that destinations made on the fly follow.
func (e *Engine) SetConfig(cfg *Config) { e.cfg.Store(cfg) }

// Reload re-reads Options.RulesFile and RulesDir. On any error the rules
// in force stay, and the error lists every bad line.
func (e *Engine) Reload() error {
	if f, ok := e.o.Users.(interface{ Flush() }); ok {
		f.Flush()
	}
	rs, err := LoadRules(e.o.RulesFile, e.o.RulesDir, ParseOptions{Users: e.o.Users, Controllers: e.o.Known})
	if err != nil {
		e.o.Logf("rules not reloaded, the previous %d stay in force:\n%v", e.Rules().Len(), err)
		return err
	}
	for _, w := range rs.Warnings {
		e.o.Logf("rules: %s", w)
	}
	e.rules.Store(rs)
	e.o.Logf("rules: %d lines from %s", rs.Len(), orNone(strings.Join(rs.Files, ", ")))
	return nil
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Sticky = len(e.sticky)
	return s
}

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

// onExit forgets a sticky process once its last thread is gone. The exit
// of a thread group's leader is not always the end of the process: a
// zombie leader's process lives while other threads do, and when another
// thread execs (as Go's syscall.Exec does from whatever thread it runs
// on), the kernel kills the leader, sends its exit, and the exec'ing
// thread takes over its PID and its start time. The model, which has
// applied this exit already, knows whether a thread of the group is left;
// asking it reads nothing from /proc, which matters in a fork storm inside
// a sticky tree, where every child has an entry.
func (e *Engine) onExit(tgid int) {
	s, ok := e.stickyEntry(tgid)
	if !ok || e.o.Model.GroupAlive(tgid) {
		return
	}
	e.mu.Lock()
	if cur, ok := e.sticky[tgid]; ok && cur == s {
		delete(e.sticky, tgid)
	}
	e.mu.Unlock()
}

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
					e.o.Logf("policy: classifying again after lost events: %v", err)
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
		return fmt.Errorf("process %d: %w", pid, withErrno(err, syscall.ESRCH))
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

// Stick leaves process pid alone as mode says (StickNone lets the rules
// act on it again).
func (e *Engine) Stick(pid int, mode Stick) error {
	p, err := e.o.Procs.Process(pid)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, withErrno(err, syscall.ESRCH))
	}
	e.setSticky(p, mode, "on request")
	return nil
}

// NoteManual records that process pid was moved by hand (a write to a
// tasks or cgroup.procs file): the rules leave it alone from then on, as
// Options.Manual says. The daemon calls it for every move not made by the
// engine (see Own).
//
// start is the process's start time (clock ticks, as /proc shows it), which
// the caller already knows: this runs before the writer of tasks is
// answered, so it reads nothing.
func (e *Engine) NoteManual(pid int, start uint64) {
	e.setSticky(Process{PID: pid, Start: start}, e.o.Manual, "moved by hand")
}

func (e *Engine) setSticky(p Process, mode Stick, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if mode == StickNone {
		delete(e.sticky, p.PID)
		return
	}
	e.sticky[p.PID] = stickyEntry{start: p.Start, tree: mode == StickTree, why: why}
}

// pruneSticky drops the entries of processes gone from the model.
func (e *Engine) pruneSticky() {
	e.mu.Lock()
	pids := make([]int, 0, len(e.sticky))
	for pid := range e.sticky {
		pids = append(pids, pid)
	}
	e.mu.Unlock()
	for _, pid := range pids {
		e.onExit(pid)
	}
}

func (e *Engine) stickyEntry(pid int) (stickyEntry, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sticky[pid]
	return s, ok
}

// isSticky tells whether the rules must leave p alone. An entry of an
// earlier holder of the PID (its exit event lost) is dropped.
func (e *Engine) isSticky(p Process) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sticky[p.PID]
	if !ok {
		return false
	}
	if s.start == 0 {
		s.start = p.Start
		e.sticky[p.PID] = s
	} else if !sameStart(s.start, p.Start) {
		delete(e.sticky, p.PID)
		return false
	}
	return true
}

func sameStart(a, b uint64) bool { return a <= b+1 && b <= a+1 }

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

func (e *Engine) count(f func(*Stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// warn logs msg once per key: a rule that fails on every exec would
// otherwise flood the log.
func (e *Engine) warn(key, format string, a ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.warnLocked(key, format, a...)
}

func (e *Engine) warnLocked(key, format string, a ...any) {
	if _, ok := e.warned[key]; ok {
		return
	}
	if len(e.warned) >= maxWarned {
		clear(e.warned)
	}
	e.warned[key] = struct{}{}
	e.o.Logf(format, a...)
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

// target is one container a decision puts a process in.
type target struct {
	h    *core.Hierarchy
	path string // expanded and clean
	rule *Rule  // the line that named it; nil for a spec
	// create marks a destination with templates: missing containers
	// along it are made on the fly, following template sections.
	create bool
	tmpl   string // the destination as written, clean, to find templates
}

// decision is what the rules say of a process, with the reasons.
type decision struct {
	rule     *Rule    // the rule that matched, nil if none
	skipped  []string // why each rule before it did not match
	ignore   string   // the rule matched but leaves the process alone
	targets  []target
	problems []string // lines of the rule that could not apply
}

// decide matches p against rs: the first rule that matches wins, with its
// continuation lines.
func (e *Engine) decide(p Process, rs *RuleSet) decision {
	var d decision
	hs := e.o.Model.Hierarchies()
	for _, r := range rs.Rules {
		if ok, why := e.matches(r, p); !ok {
			d.skipped = append(d.skipped, fmt.Sprintf("%s %q: %s", r.Where(), r.Text, why))
			continue
		}
		d.rule = r
		switch {
		case r.Ignore:
			d.ignore = "the rule says ignore"
			return d
		case r.IgnoreRT && p.RT:
			d.ignore = "the rule says ignore_rt and the process is real-time"
			return d
		}
		for _, line := range append([]*Rule{r}, r.Cont...) {
			found, missing := hierarchiesFor(hs, line.Controllers)
			for _, m := range missing {
				d.problems = append(d.problems, fmt.Sprintf("%s: controller %s is not mounted", line.Where(), m))
			}
			dest := e.expand(line.Destination, p)
			for _, h := range found {
				if slices.ContainsFunc(d.targets, func(t target) bool { return t.h == h }) {
					continue // an earlier line of the rule placed it there
				}
				d.targets = append(d.targets, target{
					h: h, path: dest, rule: line,
					create: hasTemplate(line.Destination),
					tmpl:   cleanPath(line.Destination),
				})
			}
		}
		return d
	}
	return d
}

// matches tells whether rule r applies to p, and if not, why.
func (e *Engine) matches(r *Rule, p Process) (bool, string) {
	switch r.Kind {
	case UserName:
		if !r.Resolved {
			return false, fmt.Sprintf("no user %q when the rules were loaded", r.User)
		}
		if p.EUID != r.ID {
			return false, fmt.Sprintf("euid %d is not %s (%d)", p.EUID, r.User, r.ID)
		}
	case GroupName:
		if !r.Resolved {
			return false, fmt.Sprintf("no group %q when the rules were loaded", r.User[1:])
		}
		if p.EGID != r.ID && !e.o.Users.InGroup(p.EUID, r.ID) {
			return false, fmt.Sprintf("egid %d is not %s (%d), and uid %d is not a member", p.EGID, r.User[1:], r.ID, p.EUID)
		}
	}
	if r.Process != "" && p.Name != r.Process && shortName(p.Name) != r.Process {
		return false, fmt.Sprintf("process %q is not %q", p.Name, r.Process)
	}
	return true, ""
}

// expand expands a destination's templates for p. A value that could not
// be one path component (a comm holding '/', or "..") is replaced by the
// number it stands for, so a process cannot steer itself out of the
// destination by naming itself.
func (e *Engine) expand(dest string, p Process) string {
	safe := func(v, fallback string) string {
		if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\n") {
			return fallback
		}
		return v
	}
	pid, uid, gid := strconv.Itoa(p.PID), strconv.FormatUint(uint64(p.EUID), 10), strconv.FormatUint(uint64(p.EGID), 10)
	out := expandDest(dest, func(c byte) (string, bool) {
		switch c {
		case 'u':
			n, _ := e.o.Users.UserName(p.EUID)
			return safe(n, uid), true
		case 'U':
			return uid, true
		case 'g':
			n, _ := e.o.Users.GroupName(p.EGID)
			return safe(n, gid), true
		case 'G':
			return gid, true
		case 'p':
			return safe(shortName(p.Name), pid), true
		case 'P':
			return pid, true
		}
		return "", false
	})
	return cleanPath(out)
}

// shortName is a process name without its directory. Only a full path
// has one: a name taken from comm may hold '/' of its own.
func shortName(name string) string {
	if strings.HasPrefix(name, "/") {
		return path.Base(name)
	}
	return name
}

// specTargets resolves a -g spec to containers, which must exist.
func (e *Engine) specTargets(spec Spec) ([]target, error) {
	hs := e.o.Model.Hierarchies()
	var ts []target
	for _, pl := range spec {
		found, missing := hierarchiesFor(hs, pl.Controllers)
		if len(missing) > 0 {
			return nil, fmt.Errorf("-g %s: controller %s is not mounted: %w", pl, strings.Join(missing, ","), syscall.EINVAL)
		}
		for _, h := range found {
			if i := slices.IndexFunc(ts, func(t target) bool { return t.h == h }); i >= 0 {
				if ts[i].path != pl.Path {
					return nil, fmt.Errorf("-g %s: hierarchy %s is named twice: %w", pl, label(h), syscall.EINVAL)
				}
				continue
			}
			ts = append(ts, target{h: h, path: pl.Path})
		}
	}
	return ts, nil
}

// container finds a target's container, making it (and, following
// template sections, its missing parents) for a templated destination.
func (e *Engine) container(t target) (*core.Container, error) {
	m := e.o.Model
	if !t.create {
		c, err := m.ContainerAt(t.h, t.path, false)
		if err != nil {
			return nil, fmt.Errorf("destination %s in %s: %w", t.path, label(t.h), err)
		}
		return c, nil
	}
	if c, err := m.ContainerAt(t.h, t.path, false); err == nil {
		return c, nil
	}
	exp := strings.Split(strings.Trim(t.path, "/"), "/")
	tpl := strings.Split(strings.Trim(t.tmpl, "/"), "/")
	if len(exp) != len(tpl) {
		tpl = exp // cannot line them up: no templates
	}
	var c *core.Container
	for i := range exp {
		sub := strings.Join(exp[:i+1], "/")
		if x, err := m.ContainerAt(t.h, sub, false); err == nil {
			c = x
			continue
		}
		x, err := m.ContainerAt(t.h, sub, true)
		if err != nil {
			return nil, fmt.Errorf("create %s in %s: %w", sub, label(t.h), err)
		}
		c = x
		name := strings.Join(tpl[:i+1], "/")
		if name == sub {
			continue // no template at this level: a plain container
		}
		if g := e.cfg.Load().Template(name); g != nil {
			if err := e.applyTemplate(c, t.h, g); err != nil {
				e.warn("template "+name+err.Error(), "policy: template %s for %s: %v", name, sub, err)
			}
		}
	}
	return c, nil
}

// applyTemplate gives a container made on the fly its template's owners,
// modes and settings in hierarchy h. Templates do not use the default
// section (libcgroup).
func (e *Engine) applyTemplate(c *core.Container, h *core.Hierarchy, g *Group) error {
	var errs []error
	if err := applyPerm(c, g.Perm, e.o.Users); err != nil {
		errs = append(errs, err)
	}
	hs := e.o.Model.Hierarchies()
	for _, ctl := range g.Controllers {
		if hierarchyFor(hs, ctl.Name) != h {
			continue
		}
		for _, s := range ctl.Settings {
			if err := writeSetting(e.o.Model, c, s.Name, s.Value); err != nil {
				errs = append(errs, fmt.Errorf("%v: %s = %q: %w", s.Pos, s.Name, s.Value, err))
			}
		}
	}
	return errors.Join(errs...)
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
