// Source, what every event source is, and Fake, the one tests feed.

package procevent

import (
	"fmt"
	"os"
	"slices"
	"sync"
)

// Source is where a consumer gets task events from: a *Conn, a *Poller or,
// in tests, a *Fake. Receive blocks until there are events or an error; an
// error wrapping ErrLost means events went missing and the source carries
// on; after Close, Receive returns an error wrapping os.ErrClosed.
type Source interface {
	Receive() ([]Event, error)
	Close() error
}

var (
	_ Source = (*Conn)(nil)
	_ Source = (*Poller)(nil)
	_ Source = (*Fake)(nil)
)

// Fake is a Source fed by a test. Unlike Conn, it hands out what was
// queued before Close ahead of os.ErrClosed, so a test can queue a whole
// story, close, and run its consumer to the end.
type Fake struct {
	mu     sync.Mutex
	cond   sync.Cond
	queue  []item
	closed bool
}

// NewFake returns a Fake holding the given batches, one per Receive.
func NewFake(batches ...[]Event) *Fake {
	f := &Fake{}
	f.cond.L = &f.mu
	for _, b := range batches {
		f.Send(b...)
	}
	return f
}

// Send queues events to be returned by one Receive.
func (f *Fake) Send(events ...Event) { f.push(item{events: slices.Clone(events)}) }

// Fail queues an error for Receive to return, such as ErrLost.
func (f *Fake) Fail(err error) { f.push(item{err: err}) }

func (f *Fake) push(it item) {
	f.mu.Lock()
	f.queue = append(f.queue, it)
	f.mu.Unlock()
	f.cond.Signal()
}

// Receive returns the next queued batch or error, waiting for one.
func (f *Fake) Receive() ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) == 0 && !f.closed {
		f.cond.Wait()
	}
	if len(f.queue) == 0 {
		return nil, fmt.Errorf("procevent: fake: %w", os.ErrClosed)
	}
	it := f.queue[0]
	f.queue = f.queue[1:]
	return it.events, it.err
}

// Close makes Receive return os.ErrClosed once the queue is empty.
func (f *Fake) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
	return nil
}
