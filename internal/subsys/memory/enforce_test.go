package memory

import (
	"errors"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
)

func TestOOMKillLargest(t *testing.T) {
	f := newFixture(t)
	p := f.Mkdir(f.h.Root(), "p")
	c := f.Mkdir(p, "c")
	f.process(100, 50, mem{rss: 60, pss: 60, anon: 60})
	f.process(200, 51, mem{rss: 30, pss: 30, anon: 30})
	f.attach(c, 100, true)
	f.attach(c, 200, true)
	f.MustWrite(c, "memory.limit_in_bytes", "100M")
	f.tick(false)
	if len(f.killed) != 0 {
		t.Fatalf("under the limit: got kills %v, want none", f.killed)
	}
	f.setMem(100, mem{rss: 75, pss: 75, anon: 75})
	f.tick(false)
	if !slices.Equal(f.killed, []int{100}) {
		t.Fatalf("over the limit: got kills %v, want [100] (the largest)", f.killed)
	}
	f.Want(c, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
	f.Want(p, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n") // counted above too
	f.Want(c, "memory.failcnt", "1\n")
	f.Want(p, "memory.failcnt", "0\n") // p's limit was not hit

	// The victim is still dying: v1 waits for it before choosing another.
	f.tick(false)
	if !slices.Equal(f.killed, []int{100}) {
		t.Fatalf("victim still dying: got kills %v, want only [100]", f.killed)
	}
	f.Want(c, "memory.failcnt", "2\n")
	f.exit(100)
	f.tick(false)
	f.Want(c, "memory.usage_in_bytes", strconv.Itoa(30*mib)+"\n")
	if !slices.Equal(f.killed, []int{100}) {
		t.Fatalf("back under the limit: got kills %v, want only [100]", f.killed)
	}
}

func TestOOMKillVictimTimeout(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 80, pss: 80, anon: 80})
	f.process(200, 51, mem{rss: 70, pss: 70, anon: 70})
	f.attach(c, 100, true)
	f.attach(c, 200, true)
	f.MustWrite(c, "memory.limit_in_bytes", "160M")
	f.setMem(200, mem{rss: 90, pss: 90, anon: 90})
	f.tick(false)
	if !slices.Equal(f.killed, []int{200}) {
		t.Fatalf("got kills %v, want [200]", f.killed)
	}
	// 200 does not die (say it is stuck in the kernel): after victimWait
	// the next one is chosen.
	f.now = f.now.Add(victimWait)
	f.tick(false)
	if !slices.Equal(f.killed, []int{200, 200}) && !slices.Equal(f.killed, []int{200, 100}) {
		t.Fatalf("victim did not die in %v: got kills %v, want a second kill", victimWait, f.killed)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	tests := []struct {
		name string
		adj  [2]int
		want []int
	}{
		{name: "largest", adj: [2]int{0, 0}, want: []int{100}},
		{name: "unkillable largest", adj: [2]int{-1000, 0}, want: []int{200}},
		{name: "preferred smaller", adj: [2]int{0, 500}, want: []int{200}},
		{name: "none killable", adj: [2]int{-1000, -1000}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.Mkdir(f.h.Root(), "c")
			f.process(100, 50, mem{rss: 70, pss: 70, anon: 70, adj: tc.adj[0]})
			f.process(200, 51, mem{rss: 40, pss: 40, anon: 40, adj: tc.adj[1]})
			f.attach(c, 100, true)
			f.attach(c, 200, true)
			f.MustWrite(c, "memory.limit_in_bytes", "100M")
			f.tick(false)
			if !slices.Equal(f.killed, tc.want) {
				t.Fatalf("got kills %v, want %v", f.killed, tc.want)
			}
		})
	}
}

// Two processes share pages (a fork's copy-on-write): Rss counts them in
// both, Pss once. A kill is decided on Pss, read before deciding.
func TestSharedPagesCountedOnce(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 80, pss: 40, anon: 40})
	f.process(200, 51, mem{rss: 80, pss: 40, anon: 40})
	f.attach(c, 100, true)
	f.attach(c, 200, true)
	f.MustWrite(c, "memory.limit_in_bytes", "100M")
	f.tick(false) // statm alone says 160 MiB: over; the rollups say 80
	if len(f.killed) != 0 {
		t.Fatalf("got kills %v, want none: shared pages count once", f.killed)
	}
	f.Want(c, "memory.usage_in_bytes", strconv.Itoa(80*mib)+"\n")
	f.Want(c, "memory.failcnt", "0\n")
	// Growth since the rollup is read from statm alone.
	f.setMem(100, mem{rss: 90, pss: 999, anon: 999}) // rollup not reread
	f.tick(false)
	f.Want(c, "memory.usage_in_bytes", strconv.Itoa(90*mib)+"\n")
}

func TestLimitBelowUsage(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 60, pss: 60, anon: 60})
	f.attach(c, 100, true)
	f.tick(true)
	err := f.Write(c, "memory.limit_in_bytes", "50M")
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("limit below usage: got %v, want EBUSY", err)
	}
	f.Want(c, "memory.limit_in_bytes", "9223372036854771712\n") // unchanged
	f.MustWrite(c, "memory.limit_in_bytes", "60M")              // equal is fine
	f.Want(c, "memory.limit_in_bytes", strconv.Itoa(60*mib)+"\n")
}

func TestPauseWhenOOMKillDisabled(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	d := f.Mkdir(c, "d")
	f.process(100, 50, mem{rss: 60, pss: 60, anon: 60})
	f.thread(101, 100, 55)
	f.attach(c, 100, true)
	f.MustWrite(c, "memory.limit_in_bytes", "100M")
	f.MustWrite(c, "memory.oom_control", "1")
	f.tick(false)
	f.setMem(100, mem{rss: 120, pss: 120, anon: 120})
	f.tick(false)
	if len(f.killed) != 0 {
		t.Fatalf("OOM killer disabled: got kills %v, want none", f.killed)
	}
	if !f.pauser.held[100] || !f.pauser.held[101] {
		t.Fatalf("got held %v, want 100 and 101", f.pauser.held)
	}
	f.Want(c, "memory.oom_control", "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n")
	f.Want(d, "memory.oom_control", "oom_kill_disable 0\nunder_oom 1\noom_kill 0\n") // the subtree
	f.Want(c, "memory.failcnt", "1\n")
	f.tick(false)
	f.Want(c, "memory.failcnt", "1\n") // its tasks sleep: no new failures

	// A task born or moved in now is paused too; one moved out runs.
	f.fork(100, 102, 100, 60)
	f.process(300, 61, mem{rss: 1, pss: 1, anon: 1})
	f.attach(d, 300, true)
	if !f.pauser.held[102] || !f.pauser.held[300] {
		t.Fatalf("got held %v, want 102 and 300 too", f.pauser.held)
	}
	f.attach(f.h.Root(), 300, true)
	if f.pauser.held[300] {
		t.Fatalf("300 moved to the root: still held")
	}

	// Raising the limit lets them run.
	f.MustWrite(c, "memory.limit_in_bytes", "200M")
	f.tick(false)
	if len(f.pauser.held) != 0 {
		t.Fatalf("limit raised: got held %v, want none", f.pauser.held)
	}
	f.Want(c, "memory.oom_control", "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n")

	// Over again, paused again; re-enabling the OOM killer kills, and the
	// rest run.
	f.setMem(100, mem{rss: 250, pss: 250, anon: 250})
	f.tick(false)
	if len(f.pauser.held) != 3 {
		t.Fatalf("over again: got held %v, want 100, 101, 102", f.pauser.held)
	}
	f.MustWrite(c, "memory.oom_control", "0")
	f.tick(false)
	if !slices.Equal(f.killed, []int{100}) {
		t.Fatalf("OOM killer re-enabled: got kills %v, want [100]", f.killed)
	}
	if len(f.pauser.held) != 0 {
		t.Fatalf("after the kill: got held %v, want none", f.pauser.held)
	}
	f.Want(c, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")

	// A process moved in over the limit is paused at once.
	f.exit(100)
	f.process(400, 70, mem{rss: 300, pss: 300, anon: 300})
	f.MustWrite(c, "memory.oom_control", "1")
	f.attach(c, 400, true)
	f.tick(false)
	if !f.pauser.held[400] {
		t.Fatalf("got held %v, want 400", f.pauser.held)
	}
}

// A process whose leader alone was moved (tasks, not cgroup.procs) has a
// thread left in the root container: SIGKILL would kill it too, so the
// process is not killed. One whose thread was moved back into the root
// likewise.
func TestNoKillWithThreadInRoot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture, c *core.Container)
	}{
		{name: "leader moved alone", setup: func(f *fixture, c *core.Container) {
			f.attach(c, 100, false)
		}},
		{name: "thread moved back", setup: func(f *fixture, c *core.Container) {
			f.attach(c, 100, true)
			f.attach(f.h.Root(), 101, false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.Mkdir(f.h.Root(), "c")
			f.process(100, 50, mem{rss: 150, pss: 150, anon: 150})
			f.thread(101, 100, 51)
			tc.setup(f, c)
			f.MustWrite(c, "memory.limit_in_bytes", "160M")
			f.setMem(100, mem{rss: 170, pss: 170, anon: 170})
			f.tick(false)
			if len(f.killed) != 0 {
				t.Fatalf("got kills %v, want none: a thread is in the root container", f.killed)
			}
			f.Want(c, "memory.failcnt", "1\n")
		})
	}
	// A thread born after the leader came in, not yet reported, is no
	// obstacle: it joined its leader.
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 150, pss: 150, anon: 150})
	f.attach(c, 100, true)
	f.MustWrite(c, "memory.limit_in_bytes", "160M")
	f.writeProc("100/task/105/stat", "105 (proc100) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 "+
		strconv.FormatUint(f.e.nowTicks()+5, 10)+" 0 0\n")
	f.setMem(100, mem{rss: 170, pss: 170, anon: 170})
	f.tick(false)
	if !slices.Equal(f.killed, []int{100}) {
		t.Fatalf("unreported new thread: got kills %v, want [100]", f.killed)
	}
}

// Limits are hierarchical: a parent's limit covers its children's tasks.
func TestHierarchicalLimit(t *testing.T) {
	f := newFixture(t)
	p := f.Mkdir(f.h.Root(), "p")
	a := f.Mkdir(p, "a")
	b := f.Mkdir(p, "b")
	f.process(100, 50, mem{rss: 40, pss: 40, anon: 40})
	f.process(200, 51, mem{rss: 50, pss: 50, anon: 50})
	f.attach(a, 100, true)
	f.attach(b, 200, true)
	f.MustWrite(p, "memory.limit_in_bytes", "100M")
	f.MustWrite(a, "memory.limit_in_bytes", "1G") // looser than p's: p's wins
	if got := f.stat(a, "hierarchical_memory_limit"); got != 100*mib {
		t.Errorf("a hierarchical_memory_limit: got %d, want %d", got, 100*mib)
	}
	f.tick(false)
	f.setMem(100, mem{rss: 60, pss: 60, anon: 60})
	f.tick(false)
	if !slices.Equal(f.killed, []int{100}) {
		t.Fatalf("p over its limit through its children: got kills %v, want [100]", f.killed)
	}
	f.Want(p, "memory.failcnt", "1\n")
	f.Want(a, "memory.failcnt", "0\n")
	f.Want(a, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
	f.Want(b, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	f.Want(p, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
}

// With move_charge_at_immigrate set, v1 refuses a move whose charge does
// not fit (ENOMEM); without it, a move is never refused.
func TestMoveChargeAtImmigrate(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 150, pss: 150, anon: 150})
	f.MustWrite(c, "memory.limit_in_bytes", "100M")
	f.MustWrite(c, "memory.move_charge_at_immigrate", "1")
	err := f.Reg.Attach(c, core.Caller{}, 100, true)
	if !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("move with charge over the limit: got %v, want ENOMEM", err)
	}
	f.MustWrite(c, "memory.move_charge_at_immigrate", "2") // file only: 0 bytes
	f.attach(c, 100, true)
}

// A paused task moved into the root container runs again; unmounting stops
// the engine.
func TestLeaveAndUnmount(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 150, pss: 150, anon: 150})
	f.attach(c, 100, true)
	f.MustWrite(c, "memory.limit_in_bytes", "160M")
	f.MustWrite(c, "memory.oom_control", "1")
	f.setMem(100, mem{rss: 170, pss: 170, anon: 170})
	f.tick(false)
	if !f.pauser.held[100] {
		t.Fatalf("got held %v, want 100", f.pauser.held)
	}
	f.attach(f.h.Root(), 100, true)
	if err := f.Reg.Rmdir(f.h.Root(), "c", core.Caller{}); err != nil {
		t.Fatal(err)
	}
	if len(f.pauser.held) != 0 {
		t.Fatalf("got held %v, want none", f.pauser.held)
	}
	f.Reg.Unmount(f.h)
	f.e.mu.Lock()
	shut := f.e.shut
	f.e.mu.Unlock()
	if !shut {
		t.Fatalf("unmounted: the engine is not shut")
	}
}

// A fork shares its parent's pages: the parent's Pss drops though its
// statm does not change. A rollup older than the fork is read again before
// a kill is decided on it.
func TestForkMakesRollupStale(t *testing.T) {
	f := newFixture(t)
	c := f.Mkdir(f.h.Root(), "c")
	f.process(100, 50, mem{rss: 80, pss: 80, anon: 80})
	f.attach(c, 100, true)
	f.MustWrite(c, "memory.limit_in_bytes", "100M")
	f.tick(true) // rolls 100 up: 80 MiB
	f.Want(c, "memory.usage_in_bytes", strconv.Itoa(80*mib)+"\n")
	// 100 forks 101; they share all 80 MiB, 40 each by Pss.
	f.fork(100, 101, 101, 60)
	f.setMem(100, mem{rss: 80, pss: 40, anon: 40})
	f.setMem(101, mem{rss: 80, pss: 40, anon: 40})
	f.tick(false)
	if len(f.killed) != 0 {
		t.Fatalf("got kills %v, want none: the fork's pages are shared", f.killed)
	}
	f.Want(c, "memory.usage_in_bytes", strconv.Itoa(80*mib)+"\n")
}
