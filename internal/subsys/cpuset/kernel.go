package cpuset

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/subsys/cpulist"
	"golang.org/x/sys/unix"
)

// Kernel is how the subsystem reaches the machine. The running kernel is
// the default; unit tests substitute a fake that records what was asked.
// Every method is a single, short system call or sysfs/procfs read, so the
// hooks may call them with the registry lock held, except MigratePages,
// which may take as long as the pages take to copy and only ever runs on
// the enforcer's goroutine.
type Kernel interface {
	// Topology reads the CPUs and memory nodes the kernel has online.
	Topology() (Topology, error)
	// Affinity is sched_getaffinity(tid): the CPUs task tid may run on.
	Affinity(tid int) (cpulist.Set, error)
	// SetAffinity is sched_setaffinity(tid, cpus).
	SetAffinity(tid int, cpus cpulist.Set) error
	// StartTime is task tid's start time in clock ticks since boot
	// (/proc/TID/stat field 22), to tell a reused TID from the task that
	// had it.
	StartTime(tid int) (uint64, error)
	// MigratePages is migrate_pages(pid, from, to): it moves the pages
	// process pid has on nodes from to nodes to.
	MigratePages(pid int, from, to cpulist.Set) error
}

// Topology is what the root cpuset follows, and the widths the kernel
// parses lists with.
type Topology struct {
	CPUs cpulist.Set // online CPUs: the root's cpus and effective_cpus
	Mems cpulist.Set // memory nodes with memory: the root's mems
	// NrCPUIDs is nr_cpu_ids, the width cpulist_parse parses with: one
	// more than the highest possible CPU. A CPU at or beyond it is ERANGE.
	NrCPUIDs int
	// NrCPUs is NR_CPUS, the kernel's compile-time maximum; a write to
	// cpus longer than 100+6*NR_CPUS bytes is E2BIG.
	NrCPUs int
	// MaxNodes is MAX_NUMNODES, the width nodelist_parse parses with.
	MaxNodes int
}

// linuxKernel is the running kernel.
type linuxKernel struct {
	proc string // procfs root

	once   sync.Once
	nwords int // words in an affinity mask: at least nr_cpu_ids bits
	mwords int // words in a node mask: at least MAX_NUMNODES bits
}

func newLinuxKernel() *linuxKernel { return &linuxKernel{proc: proc.Root} }

func (k *linuxKernel) widths() {
	k.once.Do(func() {
		t, _ := k.Topology()
		// sched_getaffinity wants at least nr_cpu_ids bits; 1024 is
		// glibc's cpu_set_t and always enough below 1024 CPUs.
		k.nwords = max((t.NrCPUIDs+63)/64, 16)
		k.mwords = max((t.MaxNodes+63)/64, 1)
	})
}

// Topology reads sysfs. Where a file is missing it falls back to what the
// daemon itself can see: its own CPU count, node 0.
func (k *linuxKernel) Topology() (Topology, error) {
	var t Topology
	var err error
	if t.CPUs, err = cpulist.OnlineCPUs(); err != nil || t.CPUs.IsEmpty() {
		t.CPUs = cpulist.Range(0, runtime.NumCPU()-1)
	}
	if t.NrCPUIDs, err = cpulist.PossibleCPUs(); err != nil || t.NrCPUIDs <= t.CPUs.Max() {
		t.NrCPUIDs = t.CPUs.Max() + 1
	}
	t.NrCPUs = t.NrCPUIDs
	if b, err := os.ReadFile(cpulist.SysCPU + "/kernel_max"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n+1 >= t.NrCPUIDs {
			t.NrCPUs = n + 1
		}
	}
	// cgroup v1's root follows node_states[N_MEMORY]: has_memory.
	t.Mems, err = cpulist.ReadFile(cpulist.SysNode + "/has_memory")
	if err != nil || t.Mems.IsEmpty() {
		t.Mems, err = cpulist.ReadFile(cpulist.SysNode + "/online")
	}
	if err != nil || t.Mems.IsEmpty() {
		t.Mems = cpulist.Of(0) // no NUMA: node 0 holds all memory
	}
	t.MaxNodes = k.maxNodes()
	if t.MaxNodes <= t.Mems.Max() {
		t.MaxNodes = t.Mems.Max() + 1
	}
	return t, nil
}

// maxNodes is MAX_NUMNODES: the width the kernel prints Mems_allowed
// with in /proc/self/status.
func (k *linuxKernel) maxNodes() int {
	st, err := proc.ReadStatus(k.proc, os.Getpid())
	if err != nil {
		return 1
	}
	return max(proc.MaskBits(st.MemsAllowed), 1)
}

// Affinity is sched_getaffinity(2) on one thread.
func (k *linuxKernel) Affinity(tid int) (cpulist.Set, error) {
	k.widths()
	w := make([]uint64, k.nwords)
	_, _, e := unix.Syscall(unix.SYS_SCHED_GETAFFINITY, uintptr(tid), uintptr(len(w)*8), uintptr(unsafe.Pointer(&w[0])))
	if e != 0 {
		return cpulist.Set{}, fmt.Errorf("sched_getaffinity(%d): %w", tid, e)
	}
	return cpulist.FromWords(w), nil
}

// SetAffinity is sched_setaffinity(2) on one thread. It is short: the
// kernel moves the thread off a CPU it may no longer use before returning.
func (k *linuxKernel) SetAffinity(tid int, cpus cpulist.Set) error {
	k.widths()
	w := cpus.Words(k.nwords)
	_, _, e := unix.Syscall(unix.SYS_SCHED_SETAFFINITY, uintptr(tid), uintptr(len(w)*8), uintptr(unsafe.Pointer(&w[0])))
	if e != 0 {
		return fmt.Errorf("sched_setaffinity(%d, %s): %w", tid, cpus, e)
	}
	return nil
}

// StartTime is field 22 of /proc/TID/stat.
func (k *linuxKernel) StartTime(tid int) (uint64, error) {
	st, err := proc.ReadStat(k.proc, tid)
	if err != nil {
		return 0, fmt.Errorf("task %d: %w", tid, err)
	}
	return st.Start, nil
}

// MigratePages is migrate_pages(2). maxnode counts one more bit than the
// masks hold: the kernel's get_nodes() reads maxnode-1 bits.
func (k *linuxKernel) MigratePages(pid int, from, to cpulist.Set) error {
	k.widths()
	old, nw := from.Words(k.mwords), to.Words(k.mwords)
	n := max(len(old), len(nw))
	old, nw = from.Words(n), to.Words(n)
	_, _, e := unix.Syscall6(unix.SYS_MIGRATE_PAGES, uintptr(pid), uintptr(n*64+1),
		uintptr(unsafe.Pointer(&old[0])), uintptr(unsafe.Pointer(&nw[0])), 0, 0)
	if e != 0 {
		return fmt.Errorf("migrate_pages(%d, %s → %s): %w", pid, from, to, e)
	}
	return nil
}
