package cpuacct

import (
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/taskstats"
)

// TestReconcile: what a child's exit record missed is charged from its
// parent's cutime+cstime once an observation of it is kinDelay old, and
// never twice.
func TestReconcile(t *testing.T) {
	// A parent 10 in a container forks child 20, which is sampled at
	// 60 ms and exits having used 93 ms; the parent reaps it, so its
	// cutime+cstime goes from 5 s (before it was moved in) to 5.093 s.
	tests := []struct {
		name  string
		story func(g *rig)
		want  uint64
	}{{
		name: "the record misses 3 ms",
		story: func(g *rig) {
			g.exit(20)
			g.record(0, 20, 20, 10, 90*ms1, 0, 0)
			g.reap(5093 * ms1)
		},
		want: 93*ms1 + ms1/10, // and the parent's 0.1 ms of reaping
	}, {
		name: "the reap is seen before the record: nothing is charged twice",
		story: func(g *rig) {
			g.reap(5093 * ms1) // the observation includes the child...
			g.advance(10 * time.Millisecond)
			g.acct().sampleAll(nil)
			g.record(0, 20, 20, 10, 90*ms1, 0, 0) // ...whose record comes after
			g.exit(20)
		},
		want: 93*ms1 + ms1/10, // and the parent's 0.1 ms of reaping
	}, {
		name: "the record was lost: the sampled 60 ms are expected",
		story: func(g *rig) {
			g.exit(20)
			g.advance(exitWait + time.Second)
			g.acct().sampleAll(nil)
			g.reap(5093 * ms1)
		},
		want: 93*ms1 + ms1/10, // and the parent's 0.1 ms of reaping
	}, {
		name: "a zombie's figure after the record was linked",
		story: func(g *rig) {
			g.record(0, 20, 20, 10, 90*ms1, 0, 0)
			g.w.set(20, 92*ms1, 0, 0, 0)
			g.r.Exit(20, 0) // reads 92 ms from the zombie
			g.reap(5093 * ms1)
		},
		want: 93*ms1 + ms1/10, // and the parent's 0.1 ms of reaping
	}, {
		name: "a multi-threaded child: the group's aggregate",
		story: func(g *rig) {
			g.exit(20)
			g.acct().onRecords(nil, 0, []taskstats.Record{
				{ID: 20, Stats: taskstats.Stats{PID: 20, TGID: 20, PPID: 10, RunVirtualNS: 90 * ms1}},
				// 20 ms of another thread that was never tracked.
				{ID: 20, Group: true, Stats: taskstats.Stats{RunVirtualNS: 110 * ms1}},
			})
			g.reap(5113 * ms1)
		},
		want: 93*ms1 + ms1/10, // and the parent's 0.1 ms of reaping
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t)
			c := g.mkdir("c")
			g.spawn(10, 10, 0)
			g.w.setKids(10, 5000*ms1, 1)
			g.attach(c, 10) // the parent's base: 5 s of children before
			g.fork(10, 20)
			g.w.set(20, 60*ms1, 0, 0, 0)
			g.w.setKids(20, 0, 10)
			g.acct().sampleAll(nil)
			tc.story(g)
			// Nothing is charged from an observation younger than kinDelay.
			g.acct().sampleAll(nil)
			before := g.usage(c)
			g.advance(kinDelay)
			g.acct().sampleAll(nil)
			if got := g.usage(c); got != tc.want {
				t.Errorf("usage: got %v, want %v (before the delay: %v)", time.Duration(got), time.Duration(tc.want), time.Duration(before))
			}
			// Later rounds change nothing.
			g.advance(time.Second)
			g.acct().sampleAll(nil)
			if got := g.usage(c); got != tc.want {
				t.Errorf("usage a second later: got %v, want %v", time.Duration(got), time.Duration(tc.want))
			}
		})
	}
}

// reap makes the parent, 10, run a little and show kids ns of reaped
// children, and samples it.
func (g *rig) reap(kids uint64) {
	g.w.mu.Lock()
	sm := g.w.samples[10]
	g.w.mu.Unlock()
	g.w.set(10, sm.run+ms1/10, 0, 0, 0)
	g.w.setKids(10, kids, 1)
	g.acct().sampleAll(nil)
}

// TestReconcileNotBeforeDelay: a difference seen less than kinDelay ago is
// not charged.
func TestReconcileNotBeforeDelay(t *testing.T) {
	g := newRig(t)
	c := g.mkdir("c")
	g.spawn(10, 10, 0)
	g.w.setKids(10, 0, 1)
	g.attach(c, 10)
	g.fork(10, 20)
	g.exit(20) // never sampled, record lost: all of it comes from the parent
	g.reap(40 * ms1)
	g.advance(kinDelay - time.Millisecond)
	g.acct().sampleAll(nil)
	if got := g.usage(c); got > ms1 {
		t.Errorf("usage before kinDelay: got %v, want the parent's 0.1 ms", time.Duration(got))
	}
	g.advance(2 * time.Millisecond)
	g.acct().sampleAll(nil)
	if got, want := g.usage(c), 40*ms1+ms1/10; got != want {
		t.Errorf("usage after kinDelay: got %v, want %v", time.Duration(got), time.Duration(want))
	}
}
