package cpuset

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/subsys/cpulist"
)

func TestDefaults(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.mkdir(g.root, "a")
	tests := []struct {
		c          *core.Container
		file, want string
	}{
		{g.root, "cpuset.cpus", "0-3\n"},
		{g.root, "cpuset.mems", "0-1\n"},
		{g.root, "cpuset.effective_cpus", "0-3\n"},
		{g.root, "cpuset.effective_mems", "0-1\n"},
		{g.root, "cpuset.cpu_exclusive", "1\n"},
		{g.root, "cpuset.mem_exclusive", "1\n"},
		{g.root, "cpuset.mem_hardwall", "0\n"},
		{g.root, "cpuset.sched_load_balance", "1\n"},
		{g.root, "cpuset.sched_relax_domain_level", "-1\n"},
		{g.root, "cpuset.memory_pressure_enabled", "0\n"},
		{g.root, "cpuset.memory_pressure", "0\n"},
		{a, "cpuset.cpus", "\n"},
		{a, "cpuset.mems", "\n"},
		{a, "cpuset.effective_cpus", "\n"},
		{a, "cpuset.effective_mems", "\n"},
		{a, "cpuset.cpu_exclusive", "0\n"},
		{a, "cpuset.mem_exclusive", "0\n"},
		{a, "cpuset.memory_migrate", "0\n"},
		{a, "cpuset.memory_spread_page", "0\n"},
		{a, "cpuset.memory_spread_slab", "0\n"},
		{a, "cpuset.sched_load_balance", "1\n"},
		{a, "cpuset.sched_relax_domain_level", "-1\n"},
		{a, "cpuset.memory_pressure", "0\n"},
	}
	for _, tc := range tests {
		if got := g.read(tc.c, tc.file); got != tc.want {
			t.Errorf("%s%s: got %q, want %q", tc.c.Path(), tc.file, got, tc.want)
		}
	}
	if _, ok := a.Lookup("cpuset.memory_pressure_enabled"); ok {
		t.Errorf("child has cpuset.memory_pressure_enabled: want it in the root only")
	}
}

// TestFlagIsInt: cpuset_update_flag takes the written u64 as an int, so a
// value whose low 32 bits are 0 clears the flag and any other sets it.
func TestFlagIsInt(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.mkdir(g.root, "a")
	for _, tc := range []struct{ data, want string }{
		{"1", "1\n"},
		{"0x100000000", "0\n"},
		{"0x100000001", "1\n"},
		{"0", "0\n"},
		{"18446744073709551615", "1\n"},
	} {
		g.mustWrite(a, "cpuset.mem_hardwall", tc.data)
		if got := g.read(a, "cpuset.mem_hardwall"); got != tc.want {
			t.Errorf("after writing %s: mem_hardwall is %q, want %q", tc.data, got, tc.want)
		}
	}
}

func TestNoPrefix(t *testing.T) {
	g := newRig(t, "cpuset,noprefix")
	a := g.mkdir(g.root, "a")
	g.mustWrite(a, "cpus", " 1-2,0\n")
	if got, want := g.read(a, "cpus"), "0-2\n"; got != want {
		t.Errorf("cpus: got %q, want %q", got, want)
	}
}

func TestListWrites(t *testing.T) {
	tests := []struct {
		in, want string
		errno    syscall.Errno
	}{
		{in: "1", want: "1\n"},
		{in: "3,0-1", want: "0-1,3\n"},
		{in: "  0-3 \n", want: "0-3\n"},
		{in: "0,1,2", want: "0-2\n"},
		{in: "0-3:1/2", want: "0,2\n"},
		{in: "", want: "\n"},
		{in: "\n", want: "\n"},
		{in: ",", want: "\n"},
		// N and all name every possible CPU (0-7); 4-7 are offline here.
		{in: "N", errno: syscall.EINVAL},
		{in: "all", errno: syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			g := newRig(t, "cpuset")
			a := g.mkdir(g.root, "a")
			err := g.write(a, "cpuset.cpus", tc.in)
			if got := errnoOf(err); got != tc.errno || (tc.errno == 0) != (err == nil) {
				t.Fatalf("write %q: got %v, want errno %d", tc.in, err, tc.errno)
			}
			if tc.errno != 0 {
				return
			}
			if got := g.read(a, "cpuset.cpus"); got != tc.want {
				t.Errorf("write %q: read back %q, want %q", tc.in, got, tc.want)
			}
			if got := g.read(a, "cpuset.effective_cpus"); got != tc.want {
				t.Errorf("write %q: effective_cpus %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// tree is the fixture of the errno table: a (cpus 0-1, mems 0) holding
// task 100, with child a/b (cpus 1, mems 0); x (cpus 2-3, mems 1) with
// cpu_exclusive and mem_exclusive set; and e, empty.
type tree struct {
	g          *rig
	a, b, x, e *core.Container
}

func newTree(t *testing.T) *tree {
	g := newRig(t, "cpuset")
	tr := &tree{g: g}
	tr.a = g.cpuset(g.root, "a", "0-1", "0")
	tr.b = g.cpuset(tr.a, "b", "1", "0")
	tr.x = g.cpuset(g.root, "x", "2-3", "1")
	g.mustWrite(tr.x, "cpuset.cpu_exclusive", "1")
	g.mustWrite(tr.x, "cpuset.mem_exclusive", "1")
	tr.e = g.mkdir(g.root, "e")
	g.proc(100, cpulist.Range(0, 3))
	g.mustAttach(tr.a, 100)
	return tr
}

func TestWriteErrnos(t *testing.T) {
	tests := []struct {
		name  string
		where func(*tree) *core.Container
		setup func(*tree)
		file  string
		data  string
		errno syscall.Errno
	}{
		// Root lists follow the machine.
		{name: "root cpus", where: root, file: "cpus", data: "0-3", errno: syscall.EACCES},
		{name: "root mems", where: root, file: "mems", data: "0", errno: syscall.EACCES},
		// Syntax and range.
		{name: "cpus not a list", where: child("e"), file: "cpus", data: "abc", errno: syscall.EINVAL},
		{name: "cpus open range", where: child("e"), file: "cpus", data: "1-", errno: syscall.EINVAL},
		{name: "cpus backwards", where: child("e"), file: "cpus", data: "3-1", errno: syscall.EINVAL},
		{name: "cpus offline", where: child("e"), file: "cpus", data: "5", errno: syscall.EINVAL},
		{name: "cpus beyond nr_cpu_ids", where: child("e"), file: "cpus", data: "8", errno: syscall.ERANGE},
		{name: "cpus beyond 32 bits", where: child("e"), file: "cpus", data: "4294967296", errno: syscall.EOVERFLOW},
		{name: "cpus too long a write", where: child("e"), file: "cpus", data: strings.Repeat("0,", 100), errno: syscall.E2BIG},
		{name: "mems not a list", where: child("e"), file: "mems", data: "x", errno: syscall.EINVAL},
		{name: "mems offline", where: child("e"), file: "mems", data: "2", errno: syscall.EINVAL},
		{name: "mems beyond MAX_NUMNODES", where: child("e"), file: "mems", data: "64", errno: syscall.ERANGE},
		// Hierarchy rules.
		{name: "cpus not within the parent", where: child("b"), file: "cpus", data: "2", errno: syscall.EACCES},
		{name: "mems not within the parent", where: child("b"), file: "mems", data: "1", errno: syscall.EACCES},
		{name: "cpus leave a child out", where: child("a"), file: "cpus", data: "0", errno: syscall.EBUSY},
		{name: "mems leave a child out", where: child("a"), setup: func(tr *tree) {
			tr.g.mustWrite(tr.x, "cpuset.mem_exclusive", "0")
			tr.g.mustWrite(tr.a, "cpuset.mems", "0-1")
			tr.g.mustWrite(tr.b, "cpuset.mems", "1")
		}, file: "mems", data: "0", errno: syscall.EBUSY},
		{name: "child before parent rule", where: child("a"), file: "cpus", data: "0,2", errno: syscall.EBUSY},
		{name: "cpus overlap an exclusive sibling", where: child("e"), file: "cpus", data: "3", errno: syscall.EINVAL},
		{name: "mems overlap an exclusive sibling", where: child("e"), file: "mems", data: "1", errno: syscall.EINVAL},
		{name: "exclusive while overlapping", where: child("a"), setup: func(tr *tree) {
			tr.g.mustWrite(tr.e, "cpuset.cpus", "1")
		}, file: "cpu_exclusive", data: "1", errno: syscall.EINVAL},
		{name: "exclusive where the parent is not", where: child("b"), file: "cpu_exclusive", data: "1", errno: syscall.EACCES},
		{name: "mem exclusive where the parent is not", where: child("b"), file: "mem_exclusive", data: "1", errno: syscall.EACCES},
		{name: "parent drops exclusive a child has", where: child("a"), setup: func(tr *tree) {
			tr.g.mustWrite(tr.a, "cpuset.cpu_exclusive", "1")
			tr.g.mustWrite(tr.b, "cpuset.cpu_exclusive", "1")
		}, file: "cpu_exclusive", data: "0", errno: syscall.EBUSY},
		{name: "root drops exclusive a child has", where: root, file: "cpu_exclusive", data: "0", errno: syscall.EBUSY},
		// A write of nothing never reaches a handler (write(2) of 0 bytes
		// returns 0 before any file's write is called): clear a list with
		// a newline, as echo "" does.
		{name: "empty the cpus of a populated cpuset", where: child("a"), setup: func(tr *tree) {
			tr.g.mustWrite(tr.b, "cpuset.cpus", "\n")
		}, file: "cpus", data: "\n", errno: syscall.ENOSPC},
		{name: "empty the mems of a populated cpuset", where: child("a"), setup: func(tr *tree) {
			tr.g.mustWrite(tr.b, "cpuset.mems", "\n")
		}, file: "mems", data: "\n", errno: syscall.ENOSPC},
		{name: "empty the cpus of a cpuset populated below", where: child("b"), setup: func(tr *tree) {
			tr.g.mustAttach(tr.b, 100)
		}, file: "cpus", data: "\n", errno: syscall.ENOSPC},
		// Numbers.
		{name: "flag not a number", where: child("a"), file: "mem_hardwall", data: "yes", errno: syscall.EINVAL},
		{name: "flag negative", where: child("a"), file: "memory_migrate", data: "-1", errno: syscall.EINVAL},
		{name: "relax level too low", where: child("a"), file: "sched_relax_domain_level", data: "-2", errno: syscall.EINVAL},
		{name: "relax level too high", where: child("a"), file: "sched_relax_domain_level", data: "6", errno: syscall.EINVAL},
		{name: "relax level not a number", where: child("a"), file: "sched_relax_domain_level", data: "x", errno: syscall.EINVAL},
		{name: "pressure enabled not a number", where: root, file: "memory_pressure_enabled", data: "on", errno: syscall.EINVAL},
		// The flags, sched_relax_domain_level and memory_pressure_enabled
		// are the kernel's write_u64 and write_s64 files: kstrtoull and
		// kstrtoll take no white space but one trailing newline, and a
		// number beyond 64 bits is ERANGE.
		{name: "flag with a leading space", where: child("a"), file: "cpu_exclusive", data: " 1", errno: syscall.EINVAL},
		{name: "flag with a trailing space", where: child("a"), file: "mem_hardwall", data: "1 ", errno: syscall.EINVAL},
		{name: "flag with two newlines", where: child("a"), file: "memory_migrate", data: "1\n\n", errno: syscall.EINVAL},
		{name: "flag beyond 64 bits", where: child("a"), file: "sched_load_balance", data: "18446744073709551616", errno: syscall.ERANGE},
		{name: "relax level with a space", where: child("a"), file: "sched_relax_domain_level", data: " 1", errno: syscall.EINVAL},
		{name: "relax level beyond 64 bits", where: child("a"), file: "sched_relax_domain_level", data: "9223372036854775808", errno: syscall.ERANGE},
		{name: "relax level below 64 bits", where: child("a"), file: "sched_relax_domain_level", data: "-9223372036854775809", errno: syscall.ERANGE},
		{name: "relax level 64 bits but out of range", where: child("a"), file: "sched_relax_domain_level", data: "9223372036854775807", errno: syscall.EINVAL},
		{name: "pressure enabled beyond 64 bits", where: root, file: "memory_pressure_enabled", data: "0x10000000000000000", errno: syscall.ERANGE},
		{name: "pressure enabled with a space", where: root, file: "memory_pressure_enabled", data: "1 ", errno: syscall.EINVAL},
		{name: "memory_pressure is read-only", where: child("a"), file: "memory_pressure", data: "0", errno: syscall.EINVAL},
		// What succeeds.
		{name: "same cpus on a populated cpuset", where: child("a"), file: "cpus", data: "0-1"},
		{name: "grow within the parent", where: child("b"), file: "cpus", data: "0-1"},
		{name: "empty an unpopulated cpuset", where: child("b"), file: "cpus", data: "\n"},
		{name: "disjoint from an exclusive sibling", where: child("e"), file: "cpus", data: "0-1"},
		{name: "exclusive under an exclusive root", where: child("a"), file: "cpu_exclusive", data: "1"},
		{name: "flags take any number", where: child("a"), file: "memory_spread_page", data: "0x10"},
		{name: "flag with one newline", where: child("a"), file: "memory_spread_slab", data: "1\n"},
		{name: "flag in octal", where: child("a"), file: "memory_spread_slab", data: "010"},
		{name: "relax level -1 with a newline", where: child("a"), file: "sched_relax_domain_level", data: "-1\n"},
		{name: "relax level in range", where: child("a"), file: "sched_relax_domain_level", data: "5"},
		{name: "root flag", where: root, file: "mem_hardwall", data: "1"},
		{name: "pressure enabled", where: root, file: "memory_pressure_enabled", data: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			if tc.setup != nil {
				tc.setup(tr)
			}
			c := tc.where(tr)
			file := "cpuset." + tc.file
			before := snapshot(tr)
			err := tr.g.write(c, file, tc.data)
			if got := errnoOf(err); got != tc.errno || (tc.errno == 0) != (err == nil) {
				t.Fatalf("write %q to %s%s: got %v (errno %d), want errno %d", tc.data, c.Path(), file, err, got, tc.errno)
			}
			if tc.errno != 0 {
				if after := snapshot(tr); !slices.Equal(after, before) {
					t.Errorf("a failed write changed the tree:\n got %q\nwant %q", after, before)
				}
			}
		})
	}
}

func root(tr *tree) *core.Container { return tr.g.root }

func child(name string) func(*tree) *core.Container {
	return func(tr *tree) *core.Container {
		return map[string]*core.Container{"a": tr.a, "b": tr.b, "x": tr.x, "e": tr.e}[name]
	}
}

// snapshot is every readable cpuset file of the tree.
func snapshot(tr *tree) []string {
	var out []string
	for _, c := range []*core.Container{tr.g.root, tr.a, tr.b, tr.x, tr.e} {
		for _, e := range c.List() {
			if e.File != nil && e.File.Subsys != nil {
				out = append(out, c.Path()+e.File.Name+"="+tr.g.read(c, e.File.Name))
			}
		}
	}
	return out
}

func TestCanAttach(t *testing.T) {
	tests := []struct {
		name       string
		cpus, mems string
		errno      syscall.Errno
	}{
		{"no cpus no mems", "", "", syscall.ENOSPC},
		{"no mems", "0", "", syscall.ENOSPC},
		{"no cpus", "", "0", syscall.ENOSPC},
		{"both", "0", "0", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, "cpuset")
			c := g.mkdir(g.root, "c")
			g.mustWrite(c, "cpuset.cpus", tc.cpus)
			g.mustWrite(c, "cpuset.mems", tc.mems)
			g.proc(100, cpulist.Range(0, 3))
			err := g.attach(c, 100)
			if got := errnoOf(err); got != tc.errno {
				t.Fatalf("attach: got %v, want errno %d", err, tc.errno)
			}
			if got, want := g.read(c, "tasks"), map[bool]string{true: "", false: "100\n"}[tc.errno != 0]; got != want {
				t.Errorf("tasks: got %q, want %q", got, want)
			}
			if tc.errno != 0 {
				if sets := g.k.takeSets(); len(sets) != 0 {
					t.Errorf("refused attach set affinities %v, want none", sets)
				}
			}
		})
	}
}

func TestCloneChildren(t *testing.T) {
	tests := []struct {
		name                string
		clone, exclusiveSib bool
		spread              bool
		wantCPUs, wantMems  string
		wantSpread, wantSLB string
	}{
		{name: "no clone", wantCPUs: "\n", wantMems: "\n", wantSpread: "0\n", wantSLB: "1\n"},
		{name: "clone", clone: true, wantCPUs: "0-1\n", wantMems: "0\n", wantSpread: "0\n", wantSLB: "1\n"},
		{name: "clone beside an exclusive sibling", clone: true, exclusiveSib: true, wantCPUs: "\n", wantMems: "\n", wantSpread: "0\n", wantSLB: "1\n"},
		{name: "spread flags are inherited", spread: true, wantCPUs: "\n", wantMems: "\n", wantSpread: "1\n", wantSLB: "1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, "cpuset")
			p := g.cpuset(g.root, "p", "0-1", "0")
			g.mustWrite(p, "cpuset.sched_load_balance", "0")
			if tc.clone {
				g.mustWrite(p, "cgroup.clone_children", "1")
			}
			if tc.spread {
				g.mustWrite(p, "cpuset.memory_spread_page", "1")
			}
			if tc.exclusiveSib {
				g.mustWrite(p, "cpuset.cpu_exclusive", "1")
				sib := g.cpuset(p, "sib", "0", "0")
				g.mustWrite(sib, "cpuset.cpu_exclusive", "1")
			}
			c := g.mkdir(p, "c")
			for file, want := range map[string]string{
				"cpuset.cpus": tc.wantCPUs, "cpuset.mems": tc.wantMems,
				"cpuset.memory_spread_page": tc.wantSpread, "cpuset.sched_load_balance": tc.wantSLB,
			} {
				if got := g.read(c, file); got != want {
					t.Errorf("%s: got %q, want %q", file, got, want)
				}
			}
		})
	}
}

func TestCloneChildrenOfRoot(t *testing.T) {
	g := newRig(t, "cpuset,clone_children")
	c := g.mkdir(g.root, "c")
	if got, want := g.read(c, "cpuset.cpus"), "0-3\n"; got != want {
		t.Errorf("cpus: got %q, want %q", got, want)
	}
	if got, want := g.read(c, "cpuset.mems"), "0-1\n"; got != want {
		t.Errorf("mems: got %q, want %q", got, want)
	}
}

func TestEnforceAttachForkChange(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.cpuset(g.root, "a", "1", "0")
	all := cpulist.Range(0, 3)
	g.proc(100, all)
	g.thread(101, 100, all)

	// cgroup.procs moves both threads; each gets the cpuset's CPUs.
	if err := g.r.WriteFile(a, g.file(a, "cgroup.procs"), rootCaller, "100"); err != nil {
		t.Fatalf("move 100: %v", err)
	}
	if got, want := g.k.takeSets(), []string{"100:1", "101:1"}; !slices.Equal(got, want) {
		t.Errorf("after attach: got set calls %v, want %v", got, want)
	}

	// A child forked after the move inherited {1}: nothing to do. One
	// forked before (still with every CPU) is confined when its fork event
	// arrives. So is a thread.
	g.fork(100, 200, 200, cpulist.Of(1))
	g.fork(100, 201, 201, all)
	g.fork(101, 102, 100, all)
	if got, want := g.k.takeSets(), []string{"201:1", "102:1"}; !slices.Equal(got, want) {
		t.Errorf("after forks: got set calls %v, want %v", got, want)
	}

	// Changing cpus moves every task of the cpuset.
	g.mustWrite(a, "cpuset.cpus", "0")
	got := g.k.takeSets()
	slices.Sort(got)
	if want := []string{"100:0", "101:0", "102:0", "200:0", "201:0"}; !slices.Equal(got, want) {
		t.Errorf("after cpus 0: got set calls %v, want %v", got, want)
	}

	// Back to the root: every online CPU.
	g.mustAttach(g.root, 200)
	if got, want := g.k.takeSets(), []string{"200:0-3"}; !slices.Equal(got, want) {
		t.Errorf("back to the root: got set calls %v, want %v", got, want)
	}
	if got, want := g.enforcer().snapshot().Tracked, 4; got != want {
		t.Errorf("tracked after one left: got %d, want %d", got, want)
	}
	// Exits are forgotten, and tasks in the root are never touched.
	g.exit(201)
	g.mustWrite(a, "cpuset.cpus", "1")
	got = g.k.takeSets()
	slices.Sort(got)
	if want := []string{"100:1", "101:1", "102:1"}; !slices.Equal(got, want) {
		t.Errorf("after exit and cpus 1: got set calls %v, want %v", got, want)
	}
	if got, want := g.k.affinity(200), "0-3"; got != want {
		t.Errorf("task 200 in the root: got affinity %s, want %s", got, want)
	}
}

func TestEnforceGrandchild(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.cpuset(g.root, "a", "0-2", "0")
	b := g.cpuset(a, "b", "1", "0")
	g.proc(100, cpulist.Range(0, 3))
	g.proc(300, cpulist.Range(0, 3))
	g.mustAttach(b, 100)
	g.mustAttach(a, 300)
	g.k.takeSets()
	// Growing the parent touches no task of the child, whose cpus are its
	// own; the parent's own task follows.
	g.mustWrite(a, "cpuset.cpus", "0-3")
	if got, want := g.k.takeSets(), []string{"300:0-3"}; !slices.Equal(got, want) {
		t.Errorf("grow parent: got set calls %v, want %v", got, want)
	}
	g.mustWrite(b, "cpuset.cpus", "2-3")
	if got, want := g.k.takeSets(), []string{"100:2-3"}; !slices.Equal(got, want) {
		t.Errorf("change child: got set calls %v, want %v", got, want)
	}
	// Moving between cpusets keeps tracking the task.
	g.mustAttach(a, 100)
	if got, want := g.k.takeSets(), []string{"100:0-3"}; !slices.Equal(got, want) {
		t.Errorf("move b→a: got set calls %v, want %v", got, want)
	}
}

func TestEnforceKeepsOwnNarrowing(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.cpuset(g.root, "a", "0-1", "0")
	// A task narrowed to CPU 0 with taskset before it moves keeps CPU 0,
	// as with the kernel's user_cpus_ptr since Linux 6.2.
	g.proc(100, cpulist.Of(0))
	g.mustAttach(a, 100)
	if got := g.k.takeSets(); len(got) != 0 {
		t.Errorf("attach of a narrowed task: got set calls %v, want none", got)
	}
	// When cpus no longer hold CPU 0 it gets the whole cpuset; when they
	// do again it is back on CPU 0.
	g.mustWrite(a, "cpuset.cpus", "1")
	g.mustWrite(a, "cpuset.cpus", "0-1")
	if got, want := g.k.takeSets(), []string{"100:1", "100:0"}; !slices.Equal(got, want) {
		t.Errorf("cpus 1 then 0-1: got set calls %v, want %v", got, want)
	}
}

func TestChecker(t *testing.T) {
	tests := []struct {
		name     string
		selfSets string // what the task asks for itself, "" for nothing
		want     string // its affinity after a check
		fixed    int    // corrections counted
		later    string // its affinity after cpus become 0-3
	}{
		{name: "untouched", want: "1-2", later: "0-3"},
		{name: "widened", selfSets: "0-3", want: "1-2", fixed: 1, later: "0-3"},
		{name: "widened in part", selfSets: "2-3", want: "2", fixed: 1, later: "2-3"},
		{name: "narrowed within", selfSets: "1", want: "1", later: "1"},
		{name: "outside entirely", selfSets: "3", want: "1-2", fixed: 1, later: "0-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, "cpuset")
			a := g.cpuset(g.root, "a", "1-2", "0")
			g.proc(100, cpulist.Range(0, 3))
			g.mustAttach(a, 100)
			if tc.selfSets != "" {
				set, _ := cpulist.Parse(tc.selfSets, 8)
				g.k.setAff(100, set)
			}
			e := g.enforcer()
			e.check()
			if got := g.k.affinity(100); got != tc.want {
				t.Errorf("after check: got affinity %s, want %s", got, tc.want)
			}
			if got := e.snapshot().Corrected; got != tc.fixed {
				t.Errorf("corrections: got %d, want %d", got, tc.fixed)
			}
			// A second pass finds nothing more to do.
			e.check()
			if got := e.snapshot().Corrected; got != tc.fixed {
				t.Errorf("corrections after a second pass: got %d, want %d", got, tc.fixed)
			}
			g.mustWrite(a, "cpuset.cpus", "0-3")
			if got := g.k.affinity(100); got != tc.later {
				t.Errorf("after cpus 0-3: got affinity %s, want %s", got, tc.later)
			}
		})
	}
}

func TestCheckerSkipsReusedTID(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.cpuset(g.root, "a", "1", "0")
	g.proc(100, cpulist.Range(0, 3))
	g.mustAttach(a, 100)
	// Task 100 exits and someone else's process gets TID 100 before the
	// exit event arrives.
	g.k.task(100, 5000, cpulist.Range(0, 3))
	g.k.takeSets()
	e := g.enforcer()
	e.check()
	if got := g.k.takeSets(); len(got) != 0 {
		t.Errorf("checker touched a reused TID: got set calls %v, want none", got)
	}
	if got := e.snapshot().Tracked; got != 0 {
		t.Errorf("tracked after the reused TID was seen: got %d, want 0", got)
	}
}

func TestSetAffinityRefused(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.cpuset(g.root, "a", "1", "0")
	g.proc(100, cpulist.Of(0, 2))
	g.k.refuse[100] = true
	g.mustAttach(a, 100) // the attach itself succeeds, as membership
	if got, want := g.k.affinity(100), "0,2"; got != want {
		t.Errorf("affinity: got %s, want %s", got, want)
	}
	g.logMu.Lock()
	logs := slices.Clone(g.logs)
	g.logMu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], "cannot be confined") {
		t.Errorf("logs: got %q, want one line about the task", logs)
	}
	// The checker does not take the unchanged mask for the task's doing.
	e := g.enforcer()
	e.check()
	if got := e.snapshot().Corrected; got != 0 {
		t.Errorf("corrections: got %d, want 0", got)
	}
}

func TestMemoryMigrate(t *testing.T) {
	g := newRig(t, "cpuset")
	a := g.cpuset(g.root, "a", "0-1", "0")
	b := g.cpuset(g.root, "b", "0-1", "1")
	g.mustWrite(b, "cpuset.memory_migrate", "1")
	g.proc(100, cpulist.Range(0, 3))
	g.thread(101, 100, cpulist.Range(0, 3))
	g.proc(200, cpulist.Range(0, 3))
	g.mustAttach(a, 100)
	g.mustAttach(a, 101)
	g.mustAttach(a, 200)
	// Without memory_migrate on the destination nothing moves.
	e := g.enforcer()
	e.migrate()
	if len(g.k.migrated) != 0 {
		t.Errorf("migrations into a: got %v, want none", g.k.migrated)
	}
	// Into b: the leader's pages follow it; a lone thread's do not.
	g.mustAttach(b, 101)
	g.mustAttach(b, 100)
	e.migrate()
	if got, want := g.k.migrated, []string{"100:0>1"}; !slices.Equal(got, want) {
		t.Errorf("migrations into b: got %v, want %v", got, want)
	}
	g.k.migrated = nil
	// Changing b's mems moves each process once.
	g.mustWrite(b, "cpuset.mems", "0")
	e.migrate()
	if got, want := g.k.migrated, []string{"100:1>0"}; !slices.Equal(got, want) {
		t.Errorf("migrations on mems change: got %v, want %v", got, want)
	}
}

func TestUnmountStopsEnforcer(t *testing.T) {
	g := newRig(t, "cpuset")
	e := g.enforcer()
	g.r.Unmount(g.h)
	select {
	case <-e.w.Stopping():
	default:
		t.Fatal("unmount did not stop the enforcer")
	}
	<-e.w.Stop() // wait for its loop to end
	// A new mount gets a new enforcer.
	h, err := g.r.Mount("cpuset")
	if err != nil {
		t.Fatalf("remount: %v", err)
	}
	if e2 := g.ss.state(h.Root()).e; e2 == e {
		t.Errorf("remount reused the stopped enforcer")
	} else {
		e2.close()
	}
}

func TestCheckerRuns(t *testing.T) {
	g := newRigInterval(t, "cpuset", 5*time.Millisecond)
	a := g.cpuset(g.root, "a", "1", "0")
	g.proc(100, cpulist.Range(0, 3))
	g.mustAttach(a, 100)
	g.k.setAff(100, cpulist.Range(0, 3))
	deadline := time.Now().Add(5 * time.Second)
	for g.k.affinity(100) != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: got affinity %s, want 1", g.k.affinity(100))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPause(t *testing.T) {
	tests := []struct {
		scan, want time.Duration
	}{
		{0, 100 * time.Millisecond},
		{time.Millisecond, 100 * time.Millisecond},
		{10 * time.Millisecond, 100 * time.Millisecond},
		{30 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := pause(100*time.Millisecond, tc.scan); got != tc.want {
			t.Errorf("pause(100ms, %v): got %v, want %v", tc.scan, got, tc.want)
		}
	}
}
