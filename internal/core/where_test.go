package core

import (
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// whereLine renders a membership as a /proc/PID/cgroup line would name it.
func whereLines(ws []Where) []string {
	var lines []string
	for _, w := range ws {
		lines = append(lines, strconv.Itoa(w.Hierarchy.ID())+":"+w.Path)
	}
	return lines
}

// /proc/PID/cgroup lists the newest hierarchy first, also when a new
// hierarchy reuses the registry slot of one torn down.
func TestWhereOrder(t *testing.T) {
	r := NewRegistry(newProcs(taskInfo(100, 0, 1)), newFake("a", &callLog{}), newFake("b", &callLog{}),
		newFake("c", &callLog{}))
	r.AddTask(taskInfo(100, 0, 1))
	ha := mustMount(t, r, "a")           // id 1
	hb := mustMount(t, r, "b")           // id 2
	hn := mustMount(t, r, "none,name=n") // id 3
	moveTo(t, r, mustMkdir(t, r, mustMkdir(t, r, hb.Root(), "x"), "y"), 100)

	ws, ok := r.Where(100)
	if !ok {
		t.Fatalf("Where(100): got not found, want found")
	}
	want := []string{"3:/", "2:/x/y", "1:/"}
	if diff := cmp.Diff(want, whereLines(ws)); diff != "" {
		t.Errorf("Where(100) mismatch (-want +got):\n%s", diff)
	}
	if ws[0].Hierarchy != hn || ws[2].Hierarchy != ha {
		t.Errorf("Where(100) hierarchies: got %d, %d, want %d, %d", ws[0].Hierarchy.ID(), ws[2].Hierarchy.ID(), hn.ID(), ha.ID())
	}

	// Tear down a (slot 0) and mount c, which takes that slot with id 4.
	r.Unmount(ha)
	hc := mustMount(t, r, "c")
	if hc.ID() != 4 {
		t.Errorf("id of the new hierarchy: got %d, want 4", hc.ID())
	}
	ws, _ = r.Where(100)
	want = []string{"4:/", "3:/", "2:/x/y"}
	if diff := cmp.Diff(want, whereLines(ws)); diff != "" {
		t.Errorf("Where(100) after slot reuse mismatch (-want +got):\n%s", diff)
	}
	var ids []int
	for _, h := range r.Hierarchies() {
		ids = append(ids, h.ID())
	}
	if diff := cmp.Diff([]int{2, 3, 4}, ids); diff != "" {
		t.Errorf("Hierarchies() ids mismatch (-want +got):\n%s", diff)
	}

	if ws, ok := r.Where(999); ok || ws != nil {
		t.Errorf("Where(999): got %v, %v, want nil, false", ws, ok)
	}
}

// /proc/cgroups: one line per subsystem in registry order; an unbound one
// shows hierarchy 0 and one cgroup.
func TestStats(t *testing.T) {
	r := NewRegistry(newProcs(), newFake("a", &callLog{}), newFake("b", &callLog{}), newFake("c", &callLog{}))
	want := []Stat{
		{Subsys: "a", Hierarchy: 0, Containers: 1, Enabled: true},
		{Subsys: "b", Hierarchy: 0, Containers: 1, Enabled: true},
		{Subsys: "c", Hierarchy: 0, Containers: 1, Enabled: true},
	}
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("Stats() before mounting mismatch (-want +got):\n%s", diff)
	}

	mustMount(t, r, "none,name=n") // takes id 1 but no subsystem
	hac := mustMount(t, r, "a,c")
	x := mustMkdir(t, r, hac.Root(), "x")
	mustMkdir(t, r, x, "y")
	mustMkdir(t, r, hac.Root(), "z")
	want = []Stat{
		{Subsys: "a", Hierarchy: 2, Containers: 4, Enabled: true},
		{Subsys: "b", Hierarchy: 0, Containers: 1, Enabled: true},
		{Subsys: "c", Hierarchy: 2, Containers: 4, Enabled: true},
	}
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("Stats() mismatch (-want +got):\n%s", diff)
	}

	if err := r.Rmdir(x, "y", rootCaller); err != nil {
		t.Fatalf("Rmdir(y): got error %v, want nil", err)
	}
	want[0].Containers, want[2].Containers = 3, 3
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("Stats() after rmdir mismatch (-want +got):\n%s", diff)
	}
}

// Watchers hear of every entry created, removed or renamed, with the view
// that made the change, after the lock is released.
func TestWatch(t *testing.T) {
	r := NewRegistry(newProcs(), newFake("a", &callLog{}))
	h := mustMount(t, r, "a")
	var got []string
	cancel := h.Watch(func(c Change) {
		view, _ := c.View.(string)
		got = append(got, c.Parent.Path()+" "+c.Name+" "+view)
	})
	who := Caller{View: "v1"}
	if _, err := r.Mkdir(h.Root(), "x", 0o755, who); err != nil {
		t.Fatalf("Mkdir(x): got error %v, want nil", err)
	}
	if err := r.Rename(h.Root(), "x", "y", who); err != nil {
		t.Fatalf("Rename(x, y): got error %v, want nil", err)
	}
	if err := r.Rmdir(h.Root(), "y", Caller{View: "v2"}); err != nil {
		t.Fatalf("Rmdir(y): got error %v, want nil", err)
	}
	want := []string{"/ x v1", "/ x v1", "/ y v1", "/ y v2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes mismatch (-want +got):\n%s", diff)
	}
	cancel()
	got = nil
	mustMkdir(t, r, h.Root(), "z")
	if len(got) != 0 {
		t.Errorf("changes after cancel: got %q, want none", got)
	}
}

// Concurrent use through the exported API, for the race detector.
func TestConcurrentUse(t *testing.T) {
	var tasks []TaskInfo
	for i := range 20 {
		tasks = append(tasks, taskInfo(1000+i, 0, uint64(i+1)))
	}
	r := NewRegistry(newProcs(tasks...), newFake("a", &callLog{}), newFake("b", &callLog{}))
	ha := mustMount(t, r, "a")
	hb := mustMount(t, r, "b")
	var cs []*Container
	for i := range 4 {
		cs = append(cs, mustMkdir(t, r, ha.Root(), "c"+strconv.Itoa(i)), mustMkdir(t, r, hb.Root(), "c"+strconv.Itoa(i)))
	}
	tasksFile := map[*Container]*BoundFile{}
	procsFile := map[*Container]*BoundFile{}
	for _, c := range cs {
		tasksFile[c], procsFile[c] = file(t, c, "tasks"), file(t, c, "cgroup.procs")
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i, ti := range tasks {
				c := cs[(i+w)%len(cs)]
				if err := r.WriteFile(c, tasksFile[c], rootCaller, strconv.Itoa(ti.TID)); err != nil {
					t.Errorf("write %d to %s: got error %v, want nil", ti.TID, c.Path(), err)
				}
				if _, err := r.ReadFile(c, procsFile[c]); err != nil {
					t.Errorf("read %s/cgroup.procs: got error %v, want nil", c.Path(), err)
				}
				r.Where(ti.TID)
				r.Stats()
				if w == 0 && i%5 == 0 {
					r.Fork(ti.TID, taskInfo(5000+i, 0, 99))
					r.Exit(5000+i, 0)
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, c := range cs {
		if c.Hierarchy() == ha {
			total += len(members(r, c))
		}
	}
	if total != len(tasks) {
		t.Errorf("tasks in a's children: got %d, want %d", total, len(tasks))
	}
}
