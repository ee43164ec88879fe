package core

import (
	"log"
	"sync"
	"time"
)

// The pieces every subsystem is built of (docs/subsystems.md): its state
// accessor, its background goroutine and its logger.

// StateOf is the state that subsystem ss's Create made for c, as the type T
// it made: every subsystem's accessor is one call of it,
//
//	func (s *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, s) }
//
// It panics if c's hierarchy does not have ss bound or the state is not a
// T: a programming error, as the kernel's css lookups assume.
func StateOf[T any](c *Container, ss Subsys) T {
	return c.State(ss).(T)
}

// Logf is how a subsystem reports what it could not do or chose not to
// (a task it could not confine, a kill it skipped). The daemon sets it to
// its own logger; the zero value logs with the standard logger.
type Logf func(format string, a ...any)

// Printf logs through l, or log.Printf when l is nil.
func (l Logf) Printf(format string, a ...any) {
	if l == nil {
		log.Printf(format, a...)
		return
	}
	l(format, a...)
}

// Worker is a subsystem's background goroutine, one per hierarchy (its
// root state owns it): an enforcer, sampler or checker that wakes on a
// tick or when told something changed. The hooks and handlers that run
// under the registry lock only Wake it; it takes no registry lock itself
// unless it can never be stopped while holding one.
type Worker struct {
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewWorker makes a worker that has not started.
func NewWorker() *Worker {
	return &Worker{
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// Start runs loop in its own goroutine. loop returns once Stopping is
// closed; Wait and the two channels are how it sleeps.
func (w *Worker) Start(loop func()) {
	go func() {
		defer close(w.done)
		loop()
	}()
}

// Wake tells the loop to look again now. It never blocks, and wakes
// coalesce: many before the loop looks are one.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Woken receives after a Wake, for a loop that selects on more than
// Wait offers.
func (w *Worker) Woken() <-chan struct{} { return w.wake }

// Stopping is closed when Stop was called.
func (w *Worker) Stopping() <-chan struct{} { return w.stop }

// Wait sleeps until woken, stopped or d has passed (never, for d < 0). It
// is false when the loop should return.
func (w *Worker) Wait(d time.Duration) bool {
	var tick <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		tick = t.C
	}
	select {
	case <-w.stop:
		return false
	case <-w.wake:
	case <-tick:
	}
	select {
	case <-w.stop:
		return false
	default:
		return true
	}
}

// Stop tells the loop to return, and returns a channel closed once it has:
// receive from it to wait, unless the loop may need a lock the caller
// holds. Stop may be called more than once; wait on the channel only
// if Start was called.
func (w *Worker) Stop() <-chan struct{} {
	w.once.Do(func() { close(w.stop) })
	return w.done
}
