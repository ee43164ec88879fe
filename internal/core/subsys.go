package core

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
	// WriteUnlocked files' Write runs without the registry lock, for
	// handlers that must do I/O first and take the lock themselves through
	// the Registry's methods (tasks, cgroup.procs).
	WriteUnlocked
	// NotSetting marks a writable file whose writes are not a setting to
	// save and restore: counter resets (failcnt, max_usage_in_bytes,
	// cpuacct.usage), triggers (force_empty), or a file whose read format
	// is not what a write takes (memory.oom_control). Snapshots skip it.
	NotSetting
	// NoPrefix files keep their name without the subsystem's prefix
	// (the kernel's CFTYPE_NO_PREFIX): memory's cgroup.event_control.
	NoPrefix
)

// Caller is the process that made a request, as the FUSE request tells it.
type Caller struct {
	PID      int // the calling thread's TID
	UID, GID uint32
	// View is the filesystem view (mount) the request came through, if any.
	// Watchers are told of it, so the view that made a change need not drop
	// its own, already correct, cached entries.
	View any
}

// File is one control file, the kernel's cftype. Read and Write run with the
// registry lock held; errors should wrap a syscall.Errno, which becomes the
// reply to the reader or writer (anything else is EIO).
type File struct {
	Name  string
	Flags FileFlags
	// Mode is the permission bits; zero derives them as the kernel does:
	// 0644 readable and writable, 0444 read-only, 0200 write-only.
	Mode uint32
	// Read formats the file's content. Nil means write-only.
	Read func(c *Container) (string, error)
	// Write takes the whole of one write(2), as the kernel's cftype write
	// does. Nil means read-only.
	Write func(c *Container, who Caller, data string) error
}

// Perm is the file's permission bits.
func (f *File) Perm() uint32 {
	if f.Mode != 0 {
		return f.Mode
	}
	switch {
	case f.Read != nil && f.Write != nil:
		return 0o644
	case f.Write != nil:
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
