package testutil

import (
	"testing"

	"github.com/containerfs/containerfs/internal/core"
)

// Model is an in-process registry over fake tasks, the fixture of a
// subsystem's unit tests: no /proc, no FUSE, no real process. Tasks are
// made known with Task and Fork, moved with Attach, and the control files
// are read and written as the FUSE layer would, as root.
type Model struct {
	T     testing.TB
	Reg   *core.Registry
	Procs Procs
}

// NewModel registers the subsystems in a new registry whose tasks are
// those Task and Fork make.
func NewModel(t testing.TB, ss ...core.Subsys) *Model {
	m := &Model{T: t, Procs: Procs{}}
	m.Reg = core.NewRegistry(m.Procs, ss...)
	return m
}

// Mount makes a hierarchy as mount -o opts would; the test fails if it
// cannot.
func (m *Model) Mount(opts string) *core.Hierarchy {
	m.T.Helper()
	h, err := m.Reg.Mount(opts)
	if err != nil {
		m.T.Fatalf("mount -o %s: %v", opts, err)
	}
	return h
}

// Mkdir makes container name in parent, as root.
func (m *Model) Mkdir(parent *core.Container, name string) *core.Container {
	m.T.Helper()
	c, err := m.Reg.Mkdir(parent, name, 0o755, core.Caller{})
	if err != nil {
		m.T.Fatalf("mkdir %s/%s: %v", parent.Path(), name, err)
	}
	return c
}

// Task makes a process (tid == tgid) or a thread known to the machine and,
// as a scan would, to the model, in every root container.
func (m *Model) Task(tid, tgid int, start uint64) core.TaskInfo {
	ti := core.TaskInfo{TID: tid, TGID: tgid, Start: start}
	m.Procs[tid] = ti
	m.Reg.AddTask(ti)
	return ti
}

// Fork makes tid, forked by parent, known as the proc connector would
// tell it; the test fails if the model does not know the parent.
func (m *Model) Fork(parent, tid, tgid int, start uint64) {
	m.T.Helper()
	ti := core.TaskInfo{TID: tid, TGID: tgid, Start: start}
	m.Procs[tid] = ti
	if !m.Reg.Fork(parent, ti) {
		m.T.Fatalf("fork %d from %d: parent unknown", tid, parent)
	}
}

// Exit ends tid, as its exit event would.
func (m *Model) Exit(tid int) {
	delete(m.Procs, tid)
	m.Reg.Exit(tid, 0)
}

// Attach moves task pid (a thread alone) into c, as root writing tasks.
func (m *Model) Attach(c *core.Container, pid int) {
	m.T.Helper()
	if err := m.Reg.Attach(c, core.Caller{}, pid, false); err != nil {
		m.T.Fatalf("attach %d to %s: %v", pid, c.Path(), err)
	}
}

// Read is c's control file name, read through the registry.
func (m *Model) Read(c *core.Container, name string) string {
	m.T.Helper()
	return Read(m.T, m.Reg, c, name)
}

// Write writes data to c's control file name as root, and returns the
// handler's error.
func (m *Model) Write(c *core.Container, name, data string) error {
	m.T.Helper()
	return Write(m.T, m.Reg, c, name, data)
}

// MustWrite is Write, failing the test on an error.
func (m *Model) MustWrite(c *core.Container, name, data string) {
	m.T.Helper()
	if err := m.Write(c, name, data); err != nil {
		m.T.Fatalf("write %q to %s/%s: %v", data, c.Path(), name, err)
	}
}

// Want checks that c's control file name reads want.
func (m *Model) Want(c *core.Container, name, want string) {
	m.T.Helper()
	if got := m.Read(c, name); got != want {
		m.T.Errorf("%s/%s: got %q, want %q", c.Path(), name, got, want)
	}
}

// File is c's control file name; the test fails if c has none.
func (m *Model) File(c *core.Container, name string) *core.BoundFile {
	m.T.Helper()
	return File(m.T, c, name)
}
