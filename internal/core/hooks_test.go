package core

import (
	"errors"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hookRig is one hierarchy "a,b,c" of recording subsystems sharing a log,
// with task 100 in the root.
type hookRig struct {
	r       *Registry
	h       *Hierarchy
	log     *callLog
	a, b, c *fakeSubsys
}

func newHookRig(t *testing.T) *hookRig {
	t.Helper()
	log := &callLog{}
	g := &hookRig{log: log, a: newFake("a", log), b: newFake("b", log), c: newFake("c", log)}
	g.r = NewRegistry(newProcs(taskInfo(100, 0, 10)), g.a, plainSubsys{"plain"}, g.b, g.c)
	g.h = mustMount(t, g.r, "a,b,c,plain")
	g.r.AddTask(taskInfo(100, 0, 10))
	return g
}

func TestHookOrderCreateDestroy(t *testing.T) {
	log := &callLog{}
	r := NewRegistry(newProcs(), newFake("a", log), plainSubsys{"plain"}, newFake("b", log), newFake("c", log))
	// The mount names them out of order; registration order wins.
	h := mustMount(t, r, "c,plain,a,b")
	want := []string{"a: create /", "b: create /", "c: create /"}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("mount hooks mismatch (-want +got):\n%s", diff)
	}

	x := mustMkdir(t, r, h.Root(), "x")
	mustMkdir(t, r, x, "y")
	want = []string{"a: create /x", "b: create /x", "c: create /x", "a: create /x/y", "b: create /x/y", "c: create /x/y"}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("mkdir hooks mismatch (-want +got):\n%s", diff)
	}

	if err := r.Rmdir(x, "y", rootCaller); err != nil {
		t.Fatalf("Rmdir(/x/y): got error %v, want nil", err)
	}
	want = []string{"c: destroy /x/y", "b: destroy /x/y", "a: destroy /x/y"}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("rmdir hooks mismatch (-want +got):\n%s", diff)
	}
}

func TestHookOrderAttach(t *testing.T) {
	tests := []struct {
		name      string
		refuse    map[string]error // by subsystem name
		wantLog   []string
		wantErrno syscall.Errno
	}{
		{
			name: "all agree",
			wantLog: []string{
				"a: can_attach /dst 100", "b: can_attach /dst 100", "c: can_attach /dst 100",
				"a: attach /dst 100", "b: attach /dst 100", "c: attach /dst 100",
			},
		},
		{
			name:      "first refuses",
			refuse:    map[string]error{"a": syscall.EPERM},
			wantLog:   []string{"a: can_attach /dst 100"},
			wantErrno: syscall.EPERM,
		},
		{
			name:   "second refuses",
			refuse: map[string]error{"b": syscall.ENOSPC},
			wantLog: []string{
				"a: can_attach /dst 100", "b: can_attach /dst 100",
				"a: cancel_attach /dst 100",
			},
			wantErrno: syscall.ENOSPC,
		},
		{
			name:   "last refuses",
			refuse: map[string]error{"c": syscall.EBUSY},
			wantLog: []string{
				"a: can_attach /dst 100", "b: can_attach /dst 100", "c: can_attach /dst 100",
				"b: cancel_attach /dst 100", "a: cancel_attach /dst 100",
			},
			wantErrno: syscall.EBUSY,
		},
		{
			name:   "the first refusal stops the round",
			refuse: map[string]error{"b": syscall.EAGAIN, "c": syscall.EBUSY},
			wantLog: []string{
				"a: can_attach /dst 100", "b: can_attach /dst 100",
				"a: cancel_attach /dst 100",
			},
			wantErrno: syscall.EAGAIN,
		},
		{
			name:   "wrapped errno",
			refuse: map[string]error{"b": errors.Join(errors.New("cpuset: no cpus"), syscall.ENOSPC)},
			wantLog: []string{
				"a: can_attach /dst 100", "b: can_attach /dst 100",
				"a: cancel_attach /dst 100",
			},
			wantErrno: syscall.ENOSPC,
		},
		{
			// An error without an errno would be EIO at the FUSE layer; the
			// core makes it EINVAL.
			name:   "refusal without errno",
			refuse: map[string]error{"c": errors.New("no")},
			wantLog: []string{
				"a: can_attach /dst 100", "b: can_attach /dst 100", "c: can_attach /dst 100",
				"b: cancel_attach /dst 100", "a: cancel_attach /dst 100",
			},
			wantErrno: syscall.EINVAL,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newHookRig(t)
			dst := mustMkdir(t, g.r, g.h.Root(), "dst")
			for _, f := range []*fakeSubsys{g.a, g.b, g.c} {
				f.refuse = tc.refuse[f.name]
			}
			g.log.take()

			err := g.r.WriteFile(dst, file(t, dst, "tasks"), rootCaller, "100")
			checkErrno(t, "write 100 to /dst/tasks", err, tc.wantErrno)
			if diff := cmp.Diff(tc.wantLog, g.log.take()); diff != "" {
				t.Errorf("hooks mismatch (-want +got):\n%s", diff)
			}
			wantPath := "/dst"
			if tc.wantErrno != 0 {
				wantPath = "/"
			}
			if got := pathOf(g.r, g.h, 100); got != wantPath {
				t.Errorf("task 100: got %q, want %q", got, wantPath)
			}
			if tc.wantErrno != 0 {
				if got := members(g.r, dst); len(got) != 0 {
					t.Errorf("members of /dst after refusal: got %v, want none", got)
				}
			}
		})
	}
}

// Moving a task to where it already is runs no hook.
func TestAttachToCurrentContainerRunsNoHooks(t *testing.T) {
	g := newHookRig(t)
	dst := mustMkdir(t, g.r, g.h.Root(), "dst")
	moveTo(t, g.r, dst, 100)
	g.log.take()
	moveTo(t, g.r, dst, 100)
	if got := g.log.take(); len(got) != 0 {
		t.Errorf("hooks: got %q, want none", got)
	}
}

// Fork hooks run in registration order where the child lands outside a root;
// Exit hooks run after the task left, for every container it was in.
func TestHookOrderForkExit(t *testing.T) {
	g := newHookRig(t)
	x := mustMkdir(t, g.r, g.h.Root(), "x")
	moveTo(t, g.r, x, 100)
	g.log.take()

	g.r.Fork(100, taskInfo(200, 0, 20))
	want := []string{"a: fork /x 200", "b: fork /x 200", "c: fork /x 200"}
	if diff := cmp.Diff(want, g.log.take()); diff != "" {
		t.Errorf("fork hooks mismatch (-want +got):\n%s", diff)
	}

	g.r.Exit(200, 0)
	// fakeSubsys.Exit logs an extra line if the task is still a member.
	want = []string{"a: exit /x 200", "b: exit /x 200", "c: exit /x 200"}
	if diff := cmp.Diff(want, g.log.take()); diff != "" {
		t.Errorf("exit hooks mismatch (-want +got):\n%s", diff)
	}
}
