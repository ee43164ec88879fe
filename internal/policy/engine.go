// The Engine: its options, its state, its counters and the rules in force.

package policy

import (
	"os"
	"strings"
	"sync/atomic"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"

	"github.com/containerfs/containerfs/internal/lockrank"
)

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
	Logf   core.Logf // log.Printf if nil
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
	moveMu lockrank.Mutex[lockrank.PolicyMove]

	mu      lockrank.Mutex[lockrank.Policy]
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
		e.o.Logf.Printf("rules not reloaded, the previous %d stay in force:\n%v", e.Rules().Len(), err)
		return err
	}
	for _, w := range rs.Warnings {
		e.o.Logf.Printf("rules: %s", w)
	}
	e.rules.Store(rs)
	e.o.Logf.Printf("rules: %d lines from %s", rs.Len(), orNone(strings.Join(rs.Files, ", ")))
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
	e.o.Logf.Printf(format, a...)
}

const maxWarned = 1024 // messages remembered by warn
