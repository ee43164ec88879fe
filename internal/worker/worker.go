// Package worker is the one background-goroutine type of containerfs: a
// loop that sleeps until a tick, a wake-up or a stop. It imports nothing,
// so that every layer (the stopper below core, the subsystems above it)
// can use it.
package worker

import (
	"sync"
	"time"
)

// Worker is a background goroutine that wakes on a tick or when told
// something changed: a subsystem's enforcer, sampler or checker (one per
// hierarchy, owned by its root state) or the stopper's loop. Code that
// runs under a lock the loop takes only Wakes it, and never waits for it
// to stop.
type Worker struct {
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New makes a worker that has not started.
func New() *Worker {
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
