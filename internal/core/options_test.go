package core

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// known is the subsystem list the option tests use, in registry order.
var known = []string{"cpuset", "cpu", "cpuacct", "memory"}

// optionsCmp compares Options by what they say, not by how they were parsed.
var optionsCmp = cmp.Options{cmpopts.IgnoreUnexported(Options{}), cmpopts.EquateEmpty()}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    string
		want    Options
		wantErr syscall.Errno
	}{
		// cgroup1 parse_cgroup_root_flags: with no subsystem, no none and no name=, all are mounted.
		{name: "empty defaults to all", opts: "", want: Options{Subsys: known}},
		{name: "only flags defaults to all", opts: "xattr", want: Options{XAttr: true, Subsys: known}},
		{name: "all", opts: "all", want: Options{All: true, Subsys: known}},
		{name: "one subsystem", opts: "cpu", want: Options{Subsys: []string{"cpu"}}},
		{name: "registry order", opts: "memory,cpu,cpuset", want: Options{Subsys: []string{"cpuset", "cpu", "memory"}}},
		{name: "subsystem twice", opts: "cpu,cpu", want: Options{Subsys: []string{"cpu"}}},
		{name: "empty elements skipped", opts: ",cpu,,", want: Options{Subsys: []string{"cpu"}}},
		{name: "every flag", opts: "cpu,xattr,clone_children,cpuset_v2_mode,release_agent=/sbin/agent,name=n",
			want: Options{Subsys: []string{"cpu"}, XAttr: true, CloneChildren: true, CPUsetV2Mode: true,
				ReleaseAgent: "/sbin/agent", Name: "n"}},
		{name: "name alone", opts: "name=x", want: Options{Name: "x"}},
		{name: "none and name", opts: "none,name=x", want: Options{None: true, Name: "x"}},
		{name: "name chars", opts: "name=A_b-c.9", want: Options{Name: "A_b-c.9"}},
		{name: "name 63 chars", opts: "name=" + strings.Repeat("n", 63), want: Options{Name: strings.Repeat("n", 63)}},
		{name: "noprefix with cpuset", opts: "cpuset,noprefix", want: Options{Subsys: []string{"cpuset"}, NoPrefix: true}},
		{name: "noprefix with a named empty hierarchy", opts: "none,name=x,noprefix", want: Options{None: true, Name: "x", NoPrefix: true}},
		{name: "legacy cpuset", opts: "cpuset,noprefix,release_agent=/sbin/cpuset_release_agent",
			want: Options{Subsys: []string{"cpuset"}, NoPrefix: true, ReleaseAgent: "/sbin/cpuset_release_agent"}},

		{name: "all then subsystem", opts: "all,cpu", wantErr: syscall.EINVAL},
		{name: "subsystem then all", opts: "cpu,all", wantErr: syscall.EINVAL},
		{name: "none then subsystem", opts: "none,cpu", wantErr: syscall.EINVAL},
		{name: "subsystem then none", opts: "cpu,none", wantErr: syscall.EINVAL},
		{name: "none and all", opts: "none,all", wantErr: syscall.EINVAL},
		{name: "none without name", opts: "none", wantErr: syscall.EINVAL},
		{name: "empty name", opts: "cpu,name=", wantErr: syscall.EINVAL},
		{name: "name without value", opts: "cpu,name", wantErr: syscall.EINVAL},
		{name: "name with slash", opts: "name=a/b", wantErr: syscall.EINVAL},
		{name: "name with space", opts: "name=a b", wantErr: syscall.EINVAL},
		{name: "name with colon", opts: "name=a:b", wantErr: syscall.EINVAL},
		{name: "name 64 chars", opts: "name=" + strings.Repeat("n", 64), wantErr: syscall.EINVAL},
		{name: "name twice", opts: "name=x,name=y", wantErr: syscall.EINVAL},
		{name: "same name twice", opts: "name=x,name=x", wantErr: syscall.EINVAL},
		{name: "release_agent twice", opts: "cpu,release_agent=/a,release_agent=/b", wantErr: syscall.EINVAL},
		{name: "release_agent twice, same", opts: "cpu,release_agent=/a,release_agent=/a", wantErr: syscall.EINVAL},
		{name: "noprefix with cpu", opts: "cpu,noprefix", wantErr: syscall.EINVAL},
		{name: "noprefix with cpuset and cpu", opts: "cpuset,cpu,noprefix", wantErr: syscall.EINVAL},
		{name: "noprefix alone means all", opts: "noprefix", wantErr: syscall.EINVAL},
		{name: "noprefix with all", opts: "all,noprefix", wantErr: syscall.EINVAL},
		{name: "unknown option", opts: "cpu,bogus", wantErr: syscall.EINVAL},
		{name: "flag with value", opts: "cpu,noprefix=1", wantErr: syscall.EINVAL},
		{name: "gVisor-only option", opts: "cpu,dentry_cache_limit=10", wantErr: syscall.EINVAL},
		{name: "case matters", opts: "CPU", wantErr: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOptions(tc.opts, known)
			checkErrno(t, "ParseOptions("+tc.opts+")", err, tc.wantErr)
			if tc.wantErr != 0 || err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, got, optionsCmp); diff != "" {
				t.Errorf("ParseOptions(%q) mismatch (-want +got):\n%s", tc.opts, diff)
			}
		})
	}
}

// ParseOptions must not alias the caller's list of known subsystems: the
// registry's list is shared by every mount.
func TestParseOptionsDoesNotAliasKnown(t *testing.T) {
	k := []string{"cpuset", "cpu"}
	o, err := ParseOptions("all", k)
	if err != nil {
		t.Fatalf("ParseOptions(all): got error %v, want nil", err)
	}
	o.Subsys[0] = "changed"
	if k[0] != "cpuset" {
		t.Errorf("known[0] after changing Options.Subsys: got %q, want %q", k[0], "cpuset")
	}
}

// String renders what /proc/mounts shows; parsing it again gives the same
// hierarchy. "all" and "none" are not shown (as the kernel does not show
// them), so they are not compared.
func TestOptionsStringRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opts string
		want string
	}{
		{name: "subsystems in registry order", opts: "memory,cpu", want: "cpu,memory"},
		{name: "all", opts: "all", want: "cpuset,cpu,cpuacct,memory"},
		{name: "named empty", opts: "none,name=x", want: "name=x"},
		{name: "legacy cpuset", opts: "release_agent=/sbin/cpuset_release_agent,noprefix,cpuset",
			want: "cpuset,noprefix,release_agent=/sbin/cpuset_release_agent"},
		{name: "every flag", opts: "name=n,cpuset_v2_mode,clone_children,xattr,cpu",
			want: "cpu,xattr,clone_children,cpuset_v2_mode,name=n"},
	}
	ignore := cmpopts.IgnoreFields(Options{}, "All", "None")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseOptions(tc.opts, known)
			if err != nil {
				t.Fatalf("ParseOptions(%q): got error %v, want nil", tc.opts, err)
			}
			s := o.String()
			if s != tc.want {
				t.Errorf("String(): got %q, want %q", s, tc.want)
			}
			again, err := ParseOptions(s, known)
			if err != nil {
				t.Fatalf("ParseOptions(%q) of String(): got error %v, want nil", s, err)
			}
			if diff := cmp.Diff(o, again, optionsCmp, ignore); diff != "" {
				t.Errorf("ParseOptions(String()) mismatch (-first +again):\n%s", diff)
			}
			if got := again.String(); got != s {
				t.Errorf("String() after round trip: got %q, want %q", got, s)
			}
		})
	}
}

// newMountRegistry has fake subsystems named like the kernel's, so that the
// noprefix rule (cpuset only) applies.
func newMountRegistry(log *callLog) *Registry {
	var ss []Subsys
	for _, n := range known {
		ss = append(ss, newFake(n, log))
	}
	return NewRegistry(newProcs(), ss...)
}

func TestMount(t *testing.T) {
	const fresh = -1
	tests := []struct {
		name       string
		setup      []string // mounts made first; each must succeed
		opts       string
		wantErr    syscall.Errno
		wantSame   int // index in setup of the hierarchy reused, or fresh
		wantSubsys []string
		wantName   string
	}{
		{name: "defaults to all", opts: "", wantSame: fresh, wantSubsys: known},
		{name: "all", opts: "all", wantSame: fresh, wantSubsys: known},
		{name: "one subsystem", opts: "cpu", wantSame: fresh, wantSubsys: []string{"cpu"}},
		{name: "named empty hierarchy", opts: "none,name=x", wantSame: fresh, wantSubsys: []string{}, wantName: "x"},
		{name: "name alone, none exists", opts: "name=x", wantErr: syscall.EINVAL},
		{name: "name alone, another name exists", setup: []string{"none,name=y"}, opts: "name=x", wantErr: syscall.EINVAL},
		{name: "name alone finds it", setup: []string{"cpu", "cpuacct,name=x"}, opts: "name=x",
			wantSame: 1, wantSubsys: []string{"cpuacct"}, wantName: "x"},
		{name: "name alone finds empty named", setup: []string{"none,name=x"}, opts: "name=x",
			wantSame: 0, wantSubsys: []string{}, wantName: "x"},
		{name: "same set reused", setup: []string{"cpu"}, opts: "cpu", wantSame: 0, wantSubsys: []string{"cpu"}},
		{name: "same set in another order", setup: []string{"memory,cpu"}, opts: "cpu,memory",
			wantSame: 0, wantSubsys: []string{"cpu", "memory"}},
		{name: "same set, no name asked, finds named", setup: []string{"cpu,name=x"}, opts: "cpu",
			wantSame: 0, wantSubsys: []string{"cpu"}, wantName: "x"},
		{name: "same set and name", setup: []string{"cpu,name=x"}, opts: "name=x,cpu",
			wantSame: 0, wantSubsys: []string{"cpu"}, wantName: "x"},
		{name: "differing flags ignored", setup: []string{"cpuset"}, opts: "cpuset,noprefix,xattr",
			wantSame: 0, wantSubsys: []string{"cpuset"}},
		{name: "all reused", setup: []string{"all"}, opts: "", wantSame: 0, wantSubsys: known},
		{name: "disjoint set is new", setup: []string{"cpu"}, opts: "cpuacct", wantSame: fresh,
			wantSubsys: []string{"cpuacct"}},
		{name: "other name is new", setup: []string{"none,name=x"}, opts: "none,name=y", wantSame: fresh,
			wantSubsys: []string{}, wantName: "y"},
		{name: "name matches, set differs", setup: []string{"cpu,name=x"}, opts: "cpuacct,name=x", wantErr: syscall.EBUSY},
		{name: "name matches, none asked", setup: []string{"cpu,name=x"}, opts: "none,name=x", wantErr: syscall.EBUSY},
		{name: "name matches, superset", setup: []string{"cpu,name=x"}, opts: "cpu,cpuacct,name=x", wantErr: syscall.EBUSY},
		{name: "subsystem bound elsewhere", setup: []string{"cpu"}, opts: "cpu,cpuacct", wantErr: syscall.EBUSY},
		{name: "subset of a bound set", setup: []string{"cpu,cpuacct"}, opts: "cpu", wantErr: syscall.EBUSY},
		{name: "bound, under a new name", setup: []string{"cpu"}, opts: "cpu,name=x", wantErr: syscall.EBUSY},
		{name: "all with one bound", setup: []string{"memory"}, opts: "all", wantErr: syscall.EBUSY},
		{name: "default with one bound", setup: []string{"memory"}, opts: "", wantErr: syscall.EBUSY},
		{name: "parse error", opts: "cpu,bogus", wantErr: syscall.EINVAL},
		{name: "noprefix with cpu", opts: "cpu,noprefix", wantErr: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newMountRegistry(&callLog{})
			var setup []*Hierarchy
			for _, o := range tc.setup {
				setup = append(setup, mustMount(t, r, o))
			}
			before := r.Hierarchies()
			h, err := r.Mount(tc.opts)
			checkErrno(t, "Mount("+tc.opts+")", err, tc.wantErr)
			if tc.wantErr != 0 {
				if h != nil {
					t.Errorf("Mount(%q): got hierarchy %d with the error, want nil", tc.opts, h.ID())
				}
				if got := r.Hierarchies(); !slices.Equal(got, before) {
					t.Errorf("hierarchies after a failed mount: got %d, want %d", len(got), len(before))
				}
				return
			}
			if err != nil {
				return
			}
			if tc.wantSame == fresh {
				for i, s := range setup {
					if h == s {
						t.Errorf("Mount(%q): got setup hierarchy %d, want a new one", tc.opts, i)
					}
				}
				if got, want := len(r.Hierarchies()), len(before)+1; got != want {
					t.Errorf("hierarchies: got %d, want %d", got, want)
				}
			} else if h != setup[tc.wantSame] {
				t.Errorf("Mount(%q): got hierarchy %d, want setup[%d] (id %d)", tc.opts, h.ID(), tc.wantSame, setup[tc.wantSame].ID())
			}
			if diff := cmp.Diff(tc.wantSubsys, h.Subsystems(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Subsystems() mismatch (-want +got):\n%s", diff)
			}
			if got := h.Options().Name; got != tc.wantName {
				t.Errorf("Options().Name: got %q, want %q", got, tc.wantName)
			}
		})
	}
}

// A hierarchy is counted once per mount and torn down when the last mount
// goes and it has no children: its subsystems are then free, and the next
// hierarchy gets a new id.
func TestUnmountTearsDownEmpty(t *testing.T) {
	log := &callLog{}
	r := newMountRegistry(log)
	r.AddTask(taskInfo(100, 0, 1))
	h := mustMount(t, r, "cpu,cpuacct")
	if h2 := mustMount(t, r, "cpuacct,cpu"); h2 != h {
		t.Fatalf("second Mount: got hierarchy %d, want %d", h2.ID(), h.ID())
	}
	log.take()

	r.Unmount(h)
	if got := r.Hierarchies(); len(got) != 1 || got[0] != h {
		t.Fatalf("after one of two unmounts: got %d hierarchies, want h still there", len(got))
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("hooks after one of two unmounts: got %q, want none", got)
	}

	r.Unmount(h)
	if got := r.Hierarchies(); len(got) != 0 {
		t.Errorf("after the last unmount: got %d hierarchies, want 0", len(got))
	}
	want := []string{"cpuacct: destroy /", "cpu: destroy /"}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("teardown hooks mismatch (-want +got):\n%s", diff)
	}
	for _, st := range r.Stats() {
		if st.Hierarchy != 0 {
			t.Errorf("Stats %s after teardown: got hierarchy %d, want 0", st.Subsys, st.Hierarchy)
		}
	}
	if ws, ok := r.Where(100); !ok || len(ws) != 0 {
		t.Errorf("Where(100) after teardown: got %v, %v, want no memberships, true", ws, ok)
	}
	// An extra Unmount of a dead hierarchy does nothing.
	r.Unmount(h)
	if got := log.take(); len(got) != 0 {
		t.Errorf("hooks after unmounting a dead hierarchy: got %q, want none", got)
	}

	// The subsystems are free: one of them alone makes a new hierarchy.
	h3 := mustMount(t, r, "cpu")
	if h3 == h || h3.ID() == h.ID() {
		t.Errorf("Mount after teardown: got id %d, want a new hierarchy with an id other than %d", h3.ID(), h.ID())
	}
	if got := pathOf(r, h3, 100); got != "/" {
		t.Errorf("task 100 in the new hierarchy: got %q, want %q", got, "/")
	}
}

// A hierarchy whose last mount goes while it has children stays active and
// is what the next matching mount returns.
func TestUnmountKeepsHierarchyWithChildren(t *testing.T) {
	log := &callLog{}
	r := newMountRegistry(log)
	h := mustMount(t, r, "cpu,name=x")
	a := mustMkdir(t, r, h.Root(), "a")
	log.take()

	r.Unmount(h)
	if got := log.take(); len(got) != 0 {
		t.Errorf("hooks on unmount with children: got %q, want none", got)
	}
	if _, err := r.Mount("cpu,cpuacct"); err == nil {
		t.Errorf("Mount(cpu,cpuacct) while cpu is still bound: got nil, want EBUSY")
	}
	for _, opts := range []string{"cpu", "name=x"} {
		h2, err := r.Mount(opts)
		if err != nil {
			t.Fatalf("Mount(%q) after unmount: got error %v, want nil", opts, err)
		}
		if h2 != h {
			t.Errorf("Mount(%q) after unmount: got hierarchy %d, want the old one, %d", opts, h2.ID(), h.ID())
		}
		if e, ok := h2.Root().Lookup("a"); !ok || e.Child != a {
			t.Errorf("Lookup(a) in the reused hierarchy: got %+v, %v, want the old child", e, ok)
		}
		r.Unmount(h2)
	}

	// With the child gone, the next unmount tears it down.
	if err := r.Rmdir(h.Root(), "a", rootCaller); err != nil {
		t.Fatalf("Rmdir(a): got error %v, want nil", err)
	}
	mustMount(t, r, "cpu")
	r.Unmount(h)
	if got := r.Hierarchies(); len(got) != 0 {
		t.Errorf("after unmounting the emptied hierarchy: got %d hierarchies, want 0", len(got))
	}
}

// A Create failure in the root aborts the mount: the subsystems that were
// created are destroyed in reverse, and nothing is bound.
func TestMountCreateFailure(t *testing.T) {
	log := &callLog{}
	cpuset, cpu, cpuacct := newFake("cpuset", log), newFake("cpu", log), newFake("cpuacct", log)
	cpuacct.failCreate = map[string]error{"/": syscall.ENOMEM}
	r := NewRegistry(newProcs(), cpuset, cpu, cpuacct)

	_, err := r.Mount("cpuset,cpu,cpuacct")
	checkErrno(t, "Mount", err, syscall.ENOMEM)
	want := []string{"cpuset: create /", "cpu: create /", "cpuacct: create /", "cpu: destroy /", "cpuset: destroy /"}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("hooks mismatch (-want +got):\n%s", diff)
	}
	if got := r.Hierarchies(); len(got) != 0 {
		t.Errorf("hierarchies after a failed mount: got %d, want 0", len(got))
	}
	// Nothing stayed bound.
	h := mustMount(t, r, "cpuset,cpu")
	if diff := cmp.Diff([]string{"cpuset", "cpu"}, h.Subsystems()); diff != "" {
		t.Errorf("Subsystems() mismatch (-want +got):\n%s", diff)
	}
}
