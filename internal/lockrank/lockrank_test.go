package lockrank

import (
	"strings"
	"testing"
)

func TestLadderOrder(t *testing.T) {
	var reg Mutex[Registry]
	var sub Mutex[Subsys]
	var stop Mutex[Stopper]
	// Down the ladder: always fine.
	reg.Lock()
	sub.Lock()
	stop.Lock()
	stop.Unlock()
	sub.Unlock()
	reg.Unlock()
	// Out of order release, then a fresh start: fine too.
	reg.Lock()
	sub.Lock()
	reg.Unlock()
	sub.Unlock()
	sub.Lock()
	sub.Unlock()
}

func TestLadderViolation(t *testing.T) {
	if !Enabled {
		t.Skip("the ladder is checked in lockrank builds: go test -tags lockrank")
	}
	var reg Mutex[Registry]
	var stop Mutex[Stopper]
	stop.Lock()
	defer stop.Unlock()
	defer func() {
		r := recover()
		msg, _ := r.(string)
		if !strings.Contains(msg, "taking a registry lock") || !strings.Contains(msg, "holding a stopper lock") {
			t.Errorf("registry under stopper: recovered %v, want a ladder panic", r)
		}
	}()
	reg.Lock()
	reg.Unlock()
	t.Error("registry lock taken under the stopper's")
}

// Each goroutine has its own ladder: a lock held by one does not order
// another's.
func TestLadderPerGoroutine(t *testing.T) {
	var reg Mutex[Registry]
	var stop Mutex[Stopper]
	stop.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Lock()
		reg.Unlock()
	}()
	<-done
	stop.Unlock()
}
