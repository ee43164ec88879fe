// The differences the fuzzer found, kept as expectations on the in-process
// model: a fixed one cannot come back, a documented one cannot change
// unnoticed. This test needs neither root nor the kernel.
package kdiff

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/subsys/cpuset"
	"github.com/containerfs/containerfs/internal/testutil"
)

// known is one input the kernel and containerfs answered differently (or
// did, before a fix): what the kernel answered on the machine measured,
// what containerfs answers, and, while they differ, why (a row of
// docs/deviations.md).
type known struct {
	hier, file, input string
	populated         bool // with a task in the child (cpuset: after cpus and mems are set)
	kernel, ours      syscall.Errno
	why               string
}

var knownDiffs = []known{
	// A cpuset child's lists take writes up to their cftype's
	// max_write_len (kernel/cgroup/cpuset-v1.c: 100 + 6 * MAX_NUMNODES for
	// mems, 6244 bytes with NODES_SHIFT 10): core.File.MaxWrite lets them
	// through to the handler, which answers as the kernel. These rows
	// were differences (E2BIG) until it did.
	{hier: "cpuset", file: "cpuset.mems", input: strings.Repeat("0", 4096) + "1", kernel: syscall.EINVAL, ours: syscall.EINVAL},
	{hier: "cpuset", file: "cpuset.mems", input: strings.Repeat("1\n", 3000), kernel: syscall.EINVAL, ours: syscall.EINVAL},
	{hier: "cpuset", file: "cpuset.mems", input: strings.Repeat("0", 4096) + "1", populated: true, kernel: syscall.EINVAL, ours: syscall.EINVAL},
	// update_relax_domain_level allows up to sched_domain_level_max + 1:
	// 2 on the machine measured (2 CPUs, one package), which userspace
	// cannot see; containerfs allows 5.
	{hier: "cpuset", file: "cpuset.sched_relax_domain_level", input: "3", kernel: syscall.EINVAL, ours: 0,
		why: "the kernel's bound is the topology's level count"},
	{hier: "cpuset", file: "cpuset.sched_relax_domain_level", input: "5", kernel: syscall.EINVAL, ours: 0,
		why: "the kernel's bound is the topology's level count"},
	{hier: "cpuset", file: "cpuset.sched_relax_domain_level", input: "6", kernel: syscall.EINVAL, ours: syscall.EINVAL},
	{hier: "cpuset", file: "cpuset.sched_relax_domain_level", input: "2", kernel: 0, ours: 0},
	// Without clone_children in the root (cgroup v1's default, and the
	// daemon's under --strict-v1) a new cpuset is empty and attaching to
	// it is ENOSPC (cpuset_can_attach); containerfs's daemon turns
	// clone_children on by default (docs/deviations.md, the core).
	{hier: "cpuset", file: "cgroup.procs", input: "{pid}", kernel: syscall.ENOSPC, ours: syscall.ENOSPC},
	{hier: "cpuset", file: "tasks", input: "{pid}\n", kernel: syscall.ENOSPC, ours: syscall.ENOSPC},
	{hier: "cpuset", file: "cgroup.clone_children", input: "", kernel: 0, ours: 0},
}

// reason says why a difference the fuzzer saw is a known one, or "" if it
// is not.
func reason(d diff) string {
	hier, populated := strings.CutSuffix(d.hier, "+task")
	for _, k := range knownDiffs {
		if k.hier == hier && k.file == d.file && k.input == d.input && k.populated == populated &&
			k.kernel == d.kErr && k.ours == d.oErr && k.why != "" {
			return k.why
		}
	}
	// The relax bound is the machine's: any level up to ours (5) that the
	// kernel refuses is this one difference.
	if d.file == "cpuset.sched_relax_domain_level" && d.kErr == syscall.EINVAL && d.oErr == 0 {
		return "the kernel's bound is the topology's level count"
	}
	return ""
}

// TestKnownDifferences replays every row on the in-process model: the
// errno must be containerfs's as recorded, and the value read back must be
// the reset value when the write failed.
func TestKnownDifferences(t *testing.T) {
	const pid = 4242
	for _, k := range knownDiffs {
		t.Run(k.file+"/"+show(k.input), func(t *testing.T) {
			m := testutil.NewModel(t, &cpuset.Subsys{})
			m.Task(pid, pid, 1)
			h := m.Mount(k.hier)
			c := m.Mkdir(h.Root(), "kdiff")
			if got := m.Read(c, "cgroup.clone_children"); got != "0\n" {
				t.Fatalf("a new child's cgroup.clone_children reads %q, want the kernel's \"0\\n\"", got)
			}
			if k.populated {
				m.MustWrite(c, "cpuset.mems", strings.TrimSuffix(m.Read(h.Root(), "cpuset.mems"), "\n"))
				m.MustWrite(c, "cpuset.cpus", strings.TrimSuffix(m.Read(h.Root(), "cpuset.cpus"), "\n"))
				m.Attach(c, pid)
			}
			before := m.Read(c, k.file)
			err := m.Write(c, k.file, subst(k.input, pid))
			var got syscall.Errno
			if err != nil && !errors.As(err, &got) {
				t.Fatalf("write: %v, not an errno", err)
			}
			if got != k.ours {
				t.Errorf("write %s: %s, want %s (kernel: %s)", show(k.input), name(got), name(k.ours), name(k.kernel))
			}
			if k.ours == k.kernel && k.why != "" {
				t.Errorf("row says %q but containerfs now answers as the kernel: drop the reason and the docs/deviations.md row", k.why)
			}
			if got != 0 {
				if after := m.Read(c, k.file); after != before {
					t.Errorf("a failed write changed %s: %q, was %q", k.file, after, before)
				}
			}
		})
	}
}
