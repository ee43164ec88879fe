package core

import "fmt"

// Subsys is a resource-control subsystem: the seed's container_subsys. The
// required methods create and destroy its per-container state and declare its
// control files; the optional hooks below are type-asserted once, when the
// subsystem is registered.
type Subsys interface {
	// Name is the subsystem's name as used in mount options and as the
	// prefix of its control files ("cpuset", "debug", ...).
	Name() string
	// Create makes the subsystem's state for a new container. For a
	// hierarchy's root container c.Parent() is nil. An error aborts the
	// mkdir (or the mount) and is returned to the caller.
	Create(c *Container) (any, error)
	// Destroy releases what Create made. The container has no tasks and no
	// children left.
	Destroy(c *Container)
	// Files is the control-file table, the kernel's cftype array. Names are
	// given without the "<subsys>." prefix, which the core adds unless the
	// hierarchy is mounted with noprefix.
	Files() []File
}

// CanAttacher may refuse a migration. If it agrees it must make sure the
// following Attach cannot fail. cgroup v1: can_attach is not called on fork.
type CanAttacher interface {
	CanAttach(ts *TaskSet) error
}

// AttachCanceler undoes what CanAttach prepared, when a later subsystem of the
// same hierarchy refused the migration.
type AttachCanceler interface {
	CancelAttach(ts *TaskSet)
}

// Attacher is told of a migration that has happened: ts.Tasks are now in
// ts.Dst.
type Attacher interface {
	Attach(ts *TaskSet)
}

// Forker is told that a new task t has entered container c because its
// parent is there. Fork and Exit run only for containers that are not a
// hierarchy's root: nothing is enforced there, and the roots hold every
// task on the machine. Userspace learns of a fork after it happened: the child
// may already have run for a while.
type Forker interface {
	Fork(c *Container, t *Task)
}

// Exiter is told that task t, a member of c, has exited. It is no longer a
// member when Exit runs.
type Exiter interface {
	Exit(c *Container, t *Task)
}

// TaskSet is a migration: Tasks move to Dst; Src[i] is where Tasks[i] was.
// A thread-group move (cgroup.procs) carries every thread, leader first.
type TaskSet struct {
	Dst   *Container
	Tasks []*Task
	Src   []*Container
}

// hooks caches the optional interfaces of one subsystem.
type hooks struct {
	ss        Subsys
	canAttach CanAttacher
	cancel    AttachCanceler
	attach    Attacher
	fork      Forker
	exit      Exiter
}

func newHooks(ss Subsys) *hooks {
	h := &hooks{ss: ss}
	h.canAttach, _ = ss.(CanAttacher)
	h.cancel, _ = ss.(AttachCanceler)
	h.attach, _ = ss.(Attacher)
	h.fork, _ = ss.(Forker)
	h.exit, _ = ss.(Exiter)
	return h
}

// FileFlags say where a control file appears.
type FileFlags uint8

const (
	// OnlyOnRoot files exist only in a hierarchy's root container.
	OnlyOnRoot FileFlags = 1 << iota
	// NotOnRoot files exist everywhere but the root container.
	NotOnRoot
	// NotSetting marks a writable file whose writes are not a setting to
	// save and restore: counter resets (failcnt, max_usage_in_bytes,
	// cpuacct.usage), triggers (force_empty), or a file whose read format
	// is not what a write takes (memory.oom_control). Snapshots skip it.
	NotSetting
	// NoPrefix files keep their name without the subsystem's prefix
	// (the kernel's CFTYPE_NO_PREFIX): memory's cgroup.event_control.
	NoPrefix
)

// Origin says who made a request.
type Origin uint8

const (
	// ByUser is a request from a process: through a mount, the socket or
	// a tool acting for a user.
	ByUser Origin = iota
	// ByPolicy is the policy engine acting on its rules (a move when a
	// process runs a program, a sticky fix-up). Observers of moves tell
	// the engine's own from a user's by it.
	ByPolicy
)

// Caller is the process that made a request, as the FUSE request tells it.
// For a write to a control file UID and GID are those of the process that
// opened the file, and PID is the writer's: the kernel judges a cgroup
// write by the file's f_cred, so that a descriptor passed to a more
// privileged process carries no more right than its opener had.
type Caller struct {
	PID      int // the calling thread's TID
	UID, GID uint32
	// View is the filesystem view (mount) the request came through, if any.
	// Watchers are told of it, so the view that made a change need not drop
	// its own, already correct, cached entries. It means nothing else.
	View   any
	Origin Origin
}

// MaxWrite is the longest write a control file takes: the kernel's
// cgroup files have an atomic_write_len of PAGE_SIZE, and a longer write
// fails whole with E2BIG.
const MaxWrite = 4096

// File is one control file, the kernel's cftype. It has one read form and
// at most one write form. Handlers run with the registry lock held, except
// WriteUnlocked; errors should wrap a syscall.Errno, which becomes the
// reply to the reader or writer (anything else is EIO).
//
// A handler sees what the kernel's would: the written bytes cut at the
// first NUL, never more than MaxWrite of them. The typed forms parse and
// format numbers as the kernel's read_u64/write_u64 and read_s64/write_s64
// cftypes do; use them for every file that holds one number.
type File struct {
	Name  string
	Flags FileFlags
	// Mode is the permission bits; zero derives them as the kernel does:
	// 0644 readable and writable, 0444 read-only, 0200 write-only.
	Mode uint32
	// MaxWrite is the cftype's max_write_len: the longest write taken, a
	// longer one failing whole with E2BIG. Zero is the kernel's default,
	// MaxWrite (a page); cpuset's lists set their own (100 + 6 * NR_CPUS
	// or MAX_NUMNODES bytes).
	MaxWrite int

	// Read formats the file's content.
	Read func(c *Container) (string, error)
	// ReadU64 and ReadS64 give the number the file reads as, printed
	// "%llu\n" or "%lld\n".
	ReadU64 func(c *Container) uint64
	ReadS64 func(c *Container) int64

	// Write takes the whole of one write(2), as the kernel's cftype write
	// does (cut at a NUL). Trim or strstrip it as the kernel handler does.
	Write func(c *Container, who Caller, data string) error
	// WriteU64 gets the write parsed by kstrtoull(buf, 0) (Kstrtoull):
	// EINVAL or ERANGE is answered before the handler runs.
	WriteU64 func(c *Container, who Caller, v uint64) error
	// WriteS64 gets it parsed by kstrtoll(buf, 0) (Kstrtoll).
	WriteS64 func(c *Container, who Caller, v int64) error
	// WriteUnlocked is a write handler that runs without the registry
	// lock, for one that must do I/O or wait first (tasks, cgroup.procs,
	// freezer.state, cgroup.event_control). It takes the lock itself,
	// through the Registry's methods or Container.WithLock, and must call
	// no method whose name ends in Locked outside those.
	WriteUnlocked UnlockedWrite
}

// UnlockedWrite is a write handler called without the registry lock: a
// distinct type, so that a handler cannot change its locking contract by
// accident.
type UnlockedWrite func(c *Container, who Caller, data string) error

// Readable tells whether the file has a read handler.
func (f *File) Readable() bool { return f.Read != nil || f.ReadU64 != nil || f.ReadS64 != nil }

// Writable tells whether the file has a write handler.
func (f *File) Writable() bool {
	return f.Write != nil || f.WriteU64 != nil || f.WriteS64 != nil || f.WriteUnlocked != nil
}

// check tells what is wrong with a file's declaration: a programming
// error, reported when the subsystem is registered.
func (f *File) check() error {
	reads, writes := 0, 0
	for _, ok := range []bool{f.Read != nil, f.ReadU64 != nil, f.ReadS64 != nil} {
		if ok {
			reads++
		}
	}
	for _, ok := range []bool{f.Write != nil, f.WriteU64 != nil, f.WriteS64 != nil, f.WriteUnlocked != nil} {
		if ok {
			writes++
		}
	}
	switch {
	case f.Name == "":
		return fmt.Errorf("a file has no name")
	case reads > 1:
		return fmt.Errorf("file %s has %d read handlers", f.Name, reads)
	case writes > 1:
		return fmt.Errorf("file %s has %d write handlers", f.Name, writes)
	case reads == 0 && writes == 0:
		return fmt.Errorf("file %s has no handler", f.Name)
	}
	return nil
}

// Perm is the file's permission bits.
func (f *File) Perm() uint32 {
	if f.Mode != 0 {
		return f.Mode
	}
	switch {
	case f.Readable() && f.Writable():
		return 0o644
	case f.Writable():
		return 0o200
	default:
		return 0o444
	}
}

func (f *File) on(root bool) bool {
	if root {
		return f.Flags&NotOnRoot == 0
	}
	return f.Flags&OnlyOnRoot == 0
}
