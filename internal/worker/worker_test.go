package worker

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWorker(t *testing.T) {
	w := New()
	var looks atomic.Int32
	busy := make(chan struct{}) // the loop is in its work, until released
	release := make(chan struct{})
	w.Start(func() {
		for w.Wait(-1) {
			looks.Add(1)
			busy <- struct{}{}
			<-release
		}
	})
	w.Wake()
	select {
	case <-busy:
	case <-time.After(5 * time.Second):
		t.Fatal("Wake did not wake the loop")
	}
	// Wakes while the loop works coalesce into one more look.
	for range 100 {
		w.Wake()
	}
	release <- struct{}{}
	<-busy
	release <- struct{}{}
	time.Sleep(20 * time.Millisecond)
	if n := looks.Load(); n != 2 {
		t.Errorf("%d looks for 1 + 100 coalesced wakes, want 2", n)
	}
	select {
	case <-w.Stop():
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the loop")
	}
	<-w.Stop() // again: returns at once
}

func TestWorkerTick(t *testing.T) {
	w := New()
	ticks := make(chan struct{}, 100)
	w.Start(func() {
		for w.Wait(time.Millisecond) {
			ticks <- struct{}{}
		}
	})
	for range 3 {
		select {
		case <-ticks:
		case <-time.After(5 * time.Second):
			t.Fatal("no tick")
		}
	}
	<-w.Stop()
}
