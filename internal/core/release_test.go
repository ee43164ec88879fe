package core

import (
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// relRig has hierarchies s and t and tasks 100 (with thread 101) and 200,
// all in the roots, and records release notifications as "s:/path".
type relRig struct {
	r      *Registry
	hs, ht *Hierarchy
	s      *fakeSubsys

	mu       sync.Mutex
	released []string
}

func newRelRig(t *testing.T) *relRig {
	t.Helper()
	g := &relRig{s: newFake("s", &callLog{})}
	tasks := []TaskInfo{taskInfo(100, 0, 10), thread(101, 100, 0, 11), taskInfo(200, 0, 20)}
	g.r = NewRegistry(newProcs(tasks...), g.s, newFake("t", &callLog{}))
	for _, ti := range tasks {
		g.r.AddTask(ti)
	}
	g.hs = mustMount(t, g.r, "s")
	g.ht = mustMount(t, g.r, "t")
	g.r.OnRelease(func(h *Hierarchy, path string) {
		// Runs outside the registry lock: taking it here must not deadlock.
		name := h.Subsystems()[0]
		_ = h.Root().Path()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.released = append(g.released, name+":"+path)
	})
	return g
}

func (g *relRig) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.released
	g.released = nil
	return r
}

// mkdirNotify makes a container and sets its notify_on_release.
func (g *relRig) mkdirNotify(t *testing.T, parent *Container, name, notify string) *Container {
	t.Helper()
	c := mustMkdir(t, g.r, parent, name)
	mustWrite(t, g.r, c, "notify_on_release", rootCaller, notify)
	return c
}

func TestReleaseNotification(t *testing.T) {
	tests := []struct {
		name string
		// setup runs before the recording is cleared; act is what is
		// checked.
		setup func(t *testing.T, g *relRig)
		act   func(t *testing.T, g *relRig)
		want  []string
	}{
		{
			name:  "last task moves out",
			setup: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "1"), 100) },
			act:   func(t *testing.T, g *relRig) { moveTo(t, g.r, g.hs.Root(), 100) },
			want:  []string{"s:/p"},
		},
		{
			name:  "last task moves to a sibling",
			setup: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "1"), 100) },
			act:   func(t *testing.T, g *relRig) { moveTo(t, g.r, mustMkdir(t, g.r, g.hs.Root(), "q"), 100) },
			want:  []string{"s:/p"},
		},
		{
			name:  "last task exits",
			setup: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "1"), 200) },
			act:   func(t *testing.T, g *relRig) { g.r.Exit(200, 0) },
			want:  []string{"s:/p"},
		},
		{
			name: "nested path, inherited flag",
			setup: func(t *testing.T, g *relRig) {
				p := g.mkdirNotify(t, g.hs.Root(), "p", "1")
				moveTo(t, g.r, mustMkdir(t, g.r, p, "q"), 200)
			},
			act:  func(t *testing.T, g *relRig) { g.r.Exit(200, 0) },
			want: []string{"s:/p/q"},
		},
		{
			name: "path relative to its own hierarchy",
			setup: func(t *testing.T, g *relRig) {
				moveTo(t, g.r, mustMkdir(t, g.r, g.hs.Root(), "x"), 200)
				moveTo(t, g.r, g.mkdirNotify(t, g.ht.Root(), "p", "1"), 200)
			},
			act:  func(t *testing.T, g *relRig) { g.r.Exit(200, 0) },
			want: []string{"t:/p"},
		},
		{
			name: "not the last task",
			setup: func(t *testing.T, g *relRig) {
				p := g.mkdirNotify(t, g.hs.Root(), "p", "1")
				moveTo(t, g.r, p, 100)
				moveTo(t, g.r, p, 200)
			},
			act: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.hs.Root(), 100) },
		},
		{
			name:  "notify_on_release off",
			setup: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "0"), 100) },
			act: func(t *testing.T, g *relRig) {
				moveTo(t, g.r, g.hs.Root(), 100)
				if err := g.r.Rmdir(g.hs.Root(), "p", rootCaller); err != nil {
					t.Fatalf("Rmdir(p): got error %v, want nil", err)
				}
			},
		},
		{
			name: "has a child",
			setup: func(t *testing.T, g *relRig) {
				p := g.mkdirNotify(t, g.hs.Root(), "p", "1")
				g.mkdirNotify(t, p, "q", "0")
				moveTo(t, g.r, p, 100)
			},
			act: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.hs.Root(), 100) },
		},
		{
			name: "last child removed",
			setup: func(t *testing.T, g *relRig) {
				g.mkdirNotify(t, g.mkdirNotify(t, g.hs.Root(), "p", "1"), "q", "0")
			},
			act: func(t *testing.T, g *relRig) {
				p, _ := g.hs.Root().Lookup("p")
				if err := g.r.Rmdir(p.Child, "q", rootCaller); err != nil {
					t.Fatalf("Rmdir(q): got error %v, want nil", err)
				}
			},
			want: []string{"s:/p"},
		},
		{
			name: "a child removed, another left",
			setup: func(t *testing.T, g *relRig) {
				p := g.mkdirNotify(t, g.hs.Root(), "p", "1")
				mustMkdir(t, g.r, p, "q")
				mustMkdir(t, g.r, p, "r")
			},
			act: func(t *testing.T, g *relRig) {
				p, _ := g.hs.Root().Lookup("p")
				if err := g.r.Rmdir(p.Child, "q", rootCaller); err != nil {
					t.Fatalf("Rmdir(q): got error %v, want nil", err)
				}
			},
		},
		{
			name: "last child removed, tasks left",
			setup: func(t *testing.T, g *relRig) {
				p := g.mkdirNotify(t, g.hs.Root(), "p", "1")
				mustMkdir(t, g.r, p, "q")
				moveTo(t, g.r, p, 200)
			},
			act: func(t *testing.T, g *relRig) {
				p, _ := g.hs.Root().Lookup("p")
				if err := g.r.Rmdir(p.Child, "q", rootCaller); err != nil {
					t.Fatalf("Rmdir(q): got error %v, want nil", err)
				}
			},
		},
		{
			name: "root never",
			setup: func(t *testing.T, g *relRig) {
				mustWrite(t, g.r, g.hs.Root(), "notify_on_release", rootCaller, "1")
				g.mkdirNotify(t, g.hs.Root(), "a", "0")
				g.mkdirNotify(t, g.hs.Root(), "b", "0")
			},
			act: func(t *testing.T, g *relRig) {
				a, _ := g.hs.Root().Lookup("a")
				mustWrite(t, g.r, a.Child, "cgroup.procs", rootCaller, "100")
				moveTo(t, g.r, a.Child, 200)
				if err := g.r.Rmdir(g.hs.Root(), "b", rootCaller); err != nil {
					t.Fatalf("Rmdir(b): got error %v, want nil", err)
				}
				g.r.Exit(200, 0)
				g.r.Exit(101, 0)
				g.r.Exit(100, 0)
				if err := g.r.Rmdir(g.hs.Root(), "a", rootCaller); err != nil {
					t.Fatalf("Rmdir(a): got error %v, want nil", err)
				}
			},
		},
		{
			name:  "refused move",
			setup: func(t *testing.T, g *relRig) { moveTo(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "1"), 200) },
			act: func(t *testing.T, g *relRig) {
				g.s.refuse = syscall.ENOSPC
				err := g.r.WriteFile(g.hs.Root(), file(t, g.hs.Root(), "tasks"), rootCaller, "200")
				checkErrno(t, "move out of /p", err, syscall.ENOSPC)
			},
		},
		{
			name: "threads exit one by one",
			setup: func(t *testing.T, g *relRig) {
				mustWrite(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "1"), "cgroup.procs", rootCaller, "100")
			},
			act: func(t *testing.T, g *relRig) {
				g.r.Exit(101, 0)
				if got := g.take(); len(got) != 0 {
					t.Errorf("after the first thread exits: got %q, want nothing", got)
				}
				g.r.Exit(100, 0)
			},
			want: []string{"s:/p"},
		},
		{
			// cgroup v1 checks for release when the cgroup goes from
			// populated to empty: once, however many tasks left together.
			name: "thread group leaves together",
			setup: func(t *testing.T, g *relRig) {
				mustWrite(t, g.r, g.mkdirNotify(t, g.hs.Root(), "p", "1"), "cgroup.procs", rootCaller, "100")
			},
			act:  func(t *testing.T, g *relRig) { mustWrite(t, g.r, g.hs.Root(), "cgroup.procs", rootCaller, "100") },
			want: []string{"s:/p"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRelRig(t)
			tc.setup(t, g)
			if got := g.take(); len(got) != 0 {
				t.Fatalf("release during setup: got %q, want nothing", got)
			}
			tc.act(t, g)
			if diff := cmp.Diff(tc.want, g.take()); diff != "" {
				t.Errorf("release notifications mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Without OnRelease nothing is queued and nothing breaks.
func TestReleaseWithoutHandler(t *testing.T) {
	r := NewRegistry(newProcs(taskInfo(100, 0, 1)), newFake("s", &callLog{}))
	h := mustMount(t, r, "s")
	p := mustMkdir(t, r, h.Root(), "p")
	mustWrite(t, r, p, "notify_on_release", rootCaller, "1")
	moveTo(t, r, p, 100)
	r.Exit(100, 0)
	if err := r.Rmdir(h.Root(), "p", rootCaller); err != nil {
		t.Errorf("Rmdir(p): got error %v, want nil", err)
	}
}
