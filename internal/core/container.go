package core

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// Container is a group of tasks in one hierarchy: a directory of the
// filesystem.
type Container struct {
	h      *Hierarchy
	id     uint64
	parent *Container

	// The fields below are guarded by Registry.mu.
	name            string
	children        map[string]*Container
	tasks           map[*Task]struct{}
	states          []any // per subsystem of h, in h.ss order
	notifyOnRelease bool
	cloneChildren   bool
	removed         bool
	mode            uint32          // directory permission bits
	uid, gid        uint32          // the directory's owner
	fuid, fgid      uint32          // the control files' owner: the creator
	fattr           map[string]Attr // control files whose attributes were changed

	// pids caches the formatted tasks ([0]) and cgroup.procs ([1]) until
	// membership changes; pidsOK says which entries are valid.
	pids   [2]string
	pidsOK [2]bool
}

// membersChangedLocked drops the formatted member lists.
func (c *Container) membersChangedLocked() { c.pidsOK = [2]bool{} }

// Attr is an entry's ownership and permission bits.
type Attr struct {
	Mode     uint32 // permission bits only
	UID, GID uint32
}

// ID is unique among all containers the registry ever made.
func (c *Container) ID() uint64 { return c.id }

// Hierarchy is the container's hierarchy.
func (c *Container) Hierarchy() *Hierarchy { return c.h }

// Parent is nil for a root container.
func (c *Container) Parent() *Container { return c.parent }

// IsRoot tells whether c is its hierarchy's root. Subsystems never enforce
// anything on tasks of a root container.
func (c *Container) IsRoot() bool { return c.parent == nil }

// Removed tells whether c has been rmdir'ed (or its hierarchy torn down).
// Call with the registry lock held.
func (c *Container) Removed() bool { return c.removed }

// NameLocked is the container's directory name ("" for a root).
func (c *Container) NameLocked() string { return c.name }

// PathLocked is the container's path from its hierarchy root, "/" for the
// root itself, as /proc/PID/cgroup shows it.
func (c *Container) PathLocked() string {
	if c.parent == nil {
		return "/"
	}
	var parts []string
	for x := c; x.parent != nil; x = x.parent {
		parts = append(parts, x.name)
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

// Path is PathLocked, taking the lock.
func (c *Container) Path() string {
	c.h.r.lock()
	defer c.h.r.unlock()
	return c.PathLocked()
}

// State is subsystem ss's state for c, as its Create returned it. Call with
// the registry lock held.
func (c *Container) State(ss Subsys) any {
	for i, hk := range c.h.ss {
		if hk.ss == ss {
			return c.states[i]
		}
	}
	return nil
}

// TasksLocked lists c's member tasks, in no particular order.
func (c *Container) TasksLocked() []*Task {
	ts := make([]*Task, 0, len(c.tasks))
	for t := range c.tasks {
		ts = append(ts, t)
	}
	return ts
}

// NumTasksLocked is how many tasks c holds.
func (c *Container) NumTasksLocked() int { return len(c.tasks) }

// ChildrenLocked lists c's child containers, sorted by name.
func (c *Container) ChildrenLocked() []*Container {
	cs := make([]*Container, 0, len(c.children))
	for _, ch := range c.children {
		cs = append(cs, ch)
	}
	slices.SortFunc(cs, func(a, b *Container) int { return strings.Compare(a.name, b.name) })
	return cs
}

// CloneChildrenLocked is c's cgroup.clone_children flag.
func (c *Container) CloneChildrenLocked() bool { return c.cloneChildren }

func (t *Task) setIn(h *Hierarchy, c *Container) {
	for len(t.in) <= h.slot {
		t.in = append(t.in, nil)
	}
	if old := t.in[h.slot]; old != nil {
		delete(old.tasks, t)
		old.membersChangedLocked()
	}
	t.in[h.slot] = c
	if c != nil {
		if c.tasks == nil {
			c.tasks = map[*Task]struct{}{}
		}
		c.tasks[t] = struct{}{}
		c.membersChangedLocked()
	}
}

// Entry is what a name in a container's directory stands for: a child
// container or a control file.
type Entry struct {
	Child *Container
	File  *BoundFile
	Index int // File's place in the container's file table
	Attr  Attr
}

// WithLock runs f with the registry lock held, as a locked file handler
// runs: for WriteUnlocked handlers that must also wait outside the lock.
// It fails with ENODEV if c has been removed.
func (c *Container) WithLock(f func() error) error {
	r := c.h.r
	r.lock()
	defer r.unlock()
	if c.removed {
		return fmt.Errorf("container removed: %w", syscall.ENODEV)
	}
	return f()
}

// Lookup finds name in c's directory.
func (c *Container) Lookup(name string) (Entry, bool) {
	r := c.h.r
	r.lock()
	defer r.unlock()
	if c.removed {
		return Entry{}, false
	}
	if ch := c.children[name]; ch != nil {
		return Entry{Child: ch, Attr: ch.dirAttrLocked()}, true
	}
	files := c.h.Files(c)
	for i := range files {
		if files[i].Name == name {
			return Entry{File: &files[i], Index: i, Attr: c.fileAttrLocked(&files[i])}, true
		}
	}
	return Entry{}, false
}

// List lists c's directory: children first, then control files.
func (c *Container) List() []Entry {
	r := c.h.r
	r.lock()
	defer r.unlock()
	if c.removed {
		return nil
	}
	var es []Entry
	for _, ch := range c.ChildrenLocked() {
		es = append(es, Entry{Child: ch, Attr: ch.dirAttrLocked()})
	}
	files := c.h.Files(c)
	for i := range files {
		es = append(es, Entry{File: &files[i], Index: i, Attr: c.fileAttrLocked(&files[i])})
	}
	return es
}

// DirAttr is c's directory ownership and mode.
func (c *Container) DirAttr() Attr {
	c.h.r.lock()
	defer c.h.r.unlock()
	return c.dirAttrLocked()
}

func (c *Container) dirAttrLocked() Attr { return Attr{Mode: c.mode, UID: c.uid, GID: c.gid} }

// FileAttr is the ownership and mode of c's control file f.
func (c *Container) FileAttr(f *BoundFile) Attr {
	c.h.r.lock()
	defer c.h.r.unlock()
	return c.fileAttrLocked(f)
}

func (c *Container) fileAttrLocked(f *BoundFile) Attr {
	if a, ok := c.fattr[f.Name]; ok {
		return a
	}
	// cgroup v1: control files keep their creator as owner when the
	// directory is chowned, so a delegate cannot write its own limits.
	return Attr{Mode: f.Perm(), UID: c.fuid, GID: c.fgid}
}

// SetAttr changes c's directory attributes (file == nil) or those of one of
// its control files: chmod and chown, as delegation uses them. Nil fields
// stay as they are.
func (c *Container) SetAttr(file *BoundFile, mode *uint32, uid, gid *uint32) (Attr, error) {
	c.h.r.lock()
	defer c.h.r.unlock()
	if c.removed {
		return Attr{}, fmt.Errorf("%s: %w", c.PathLocked(), syscall.ENODEV)
	}
	a := c.dirAttrLocked()
	if file != nil {
		a = c.fileAttrLocked(file)
	}
	if mode != nil {
		a.Mode = *mode & 0o7777
	}
	if uid != nil {
		a.UID = *uid
	}
	if gid != nil {
		a.GID = *gid
	}
	if file == nil {
		c.mode, c.uid, c.gid = a.Mode, a.UID, a.GID
		return a, nil
	}
	if c.fattr == nil {
		c.fattr = map[string]Attr{}
	}
	c.fattr[file.Name] = a
	return a, nil
}

// Mkdir creates container name under parent, owned by the caller (as the
// kernel creates cgroup directories and files with the creator's fsuid).
func (r *Registry) Mkdir(parent *Container, name string, mode uint32, who Caller) (*Container, error) {
	r.lock()
	defer r.unlock()
	if parent.removed {
		return nil, fmt.Errorf("%s: %w", name, syscall.ENODEV)
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if parent.children[name] != nil || parent.h.hasFile(parent, name) {
		return nil, fmt.Errorf("%s: %w", name, syscall.EEXIST)
	}
	c := &Container{
		h: parent.h, id: r.nextID, parent: parent, name: name,
		notifyOnRelease: parent.notifyOnRelease,
		cloneChildren:   parent.cloneChildren,
		mode:            mode & 0o7777,
		uid:             who.UID, gid: who.GID,
		fuid: who.UID, fgid: who.GID,
	}
	if err := r.createStatesLocked(c); err != nil {
		return nil, err
	}
	r.nextID++
	if parent.children == nil {
		parent.children = map[string]*Container{}
	}
	parent.children[name] = c
	c.h.containers++
	c.h.changedLocked(parent, name, who.View)
	return c, nil
}

// checkName refuses names the VFS would never pass and, as cgroup v1 does,
// names with a newline, which would make /proc/PID/cgroup unparseable.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\n") {
		return fmt.Errorf("container name %q: %w", name, syscall.EINVAL)
	}
	return nil
}

func (h *Hierarchy) hasFile(c *Container, name string) bool {
	for _, f := range h.Files(c) {
		if f.Name == name {
			return true
		}
	}
	return false
}

// createStatesLocked runs every subsystem's Create for c, in order; if one
// fails, those that succeeded are destroyed in reverse order.
func (r *Registry) createStatesLocked(c *Container) error {
	c.states = make([]any, len(c.h.ss))
	for i, hk := range c.h.ss {
		st, err := hk.ss.Create(c)
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				c.h.ss[j].ss.Destroy(c)
			}
			return fmt.Errorf("%s: create: %w", hk.ss.Name(), err)
		}
		c.states[i] = st
	}
	return nil
}

func (r *Registry) destroyStatesLocked(c *Container) {
	for i := len(c.h.ss) - 1; i >= 0; i-- {
		c.h.ss[i].ss.Destroy(c)
	}
}

// Rmdir removes the empty container name under parent.
func (r *Registry) Rmdir(parent *Container, name string, who Caller) error {
	r.reapExited(parent, name)
	r.lock()
	defer r.unlock()
	c := parent.children[name]
	if c == nil {
		if parent.h.hasFile(parent, name) {
			return fmt.Errorf("%s: %w", name, syscall.ENOTDIR)
		}
		return fmt.Errorf("%s: %w", name, syscall.ENOENT)
	}
	// cgroup v1: rmdir of a cgroup with tasks or children is EBUSY.
	if len(c.tasks) > 0 || len(c.children) > 0 {
		return fmt.Errorf("%s: has tasks or children: %w", c.PathLocked(), syscall.EBUSY)
	}
	r.destroyStatesLocked(c)
	c.removed = true
	delete(parent.children, name)
	c.h.containers--
	c.h.changedLocked(parent, name, who.View)
	// The last child gone may make the parent releasable.
	r.checkReleaseLocked(parent)
	return nil
}

// reapExited removes from container name under parent the tasks that have
// exited but whose exit events have not been applied yet, so that
// "kill; wait; rmdir" works as it does with the kernel, where the exit is
// done before wait(2) returns. It looks only at a container with few
// tasks and no children: rmdir's case.
func (r *Registry) reapExited(parent *Container, name string) {
	r.lock()
	c := parent.children[name]
	var ts []Task
	if c != nil && len(c.children) == 0 && len(c.tasks) <= 64 {
		for t := range c.tasks {
			ts = append(ts, Task{TID: t.TID, Start: t.Start})
		}
	}
	r.unlock()
	var gone []Task
	for _, t := range ts {
		if info, err := r.procs.Task(t.TID); err != nil || info.Exited || !proc.SameStart(t.Start, info.Start) {
			gone = append(gone, t)
		}
	}
	if len(gone) == 0 {
		return
	}
	r.lock()
	defer r.unlock()
	for _, g := range gone {
		if t := r.tasks[g.TID]; t != nil && t.Start == g.Start {
			r.exitLocked(t)
		}
	}
}

// Rename renames container old under parent to new, within the same parent.
func (r *Registry) Rename(parent *Container, old, new string, who Caller) error {
	r.lock()
	defer r.unlock()
	c := parent.children[old]
	if c == nil {
		if parent.h.hasFile(parent, old) {
			// cgroup v1: only directories can be renamed.
			return fmt.Errorf("%s: %w", old, syscall.ENOTDIR)
		}
		return fmt.Errorf("%s: %w", old, syscall.ENOENT)
	}
	if err := checkName(new); err != nil {
		return err
	}
	if old == new {
		return nil
	}
	if parent.children[new] != nil || parent.h.hasFile(parent, new) {
		return fmt.Errorf("%s: %w", new, syscall.EEXIST)
	}
	delete(parent.children, old)
	c.name = new
	parent.children[new] = c
	c.h.changedLocked(parent, old, who.View)
	c.h.changedLocked(parent, new, who.View)
	return nil
}

// checkReleaseLocked queues the release agent for c if it has become
// releasable: notify_on_release set, no tasks, no children. cgroup v1 runs
// argv {agent, path} with a minimal environment, waiting only for the exec.
func (r *Registry) checkReleaseLocked(c *Container) {
	if c.parent == nil || !c.notifyOnRelease || len(c.tasks) > 0 || len(c.children) > 0 || c.removed {
		return
	}
	if r.onRelease == nil {
		return
	}
	f, h, path := r.onRelease, c.h, c.PathLocked()
	r.after = append(r.after, func() { f(h, path) })
}

// ContainerAt finds the container at path ("/", "/a/b" or "a/b") in h. With
// create set, missing containers along the path are made as root would
// make them with mkdir (mode 0755); otherwise a missing one is ENOENT.
func (r *Registry) ContainerAt(h *Hierarchy, path string, create bool) (*Container, error) {
	c := h.root
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" || name == "." {
			continue
		}
		e, ok := c.Lookup(name)
		switch {
		case ok && e.Child != nil:
			c = e.Child
			continue
		case ok:
			return nil, fmt.Errorf("%s: %s is a control file: %w", path, name, syscall.ENOTDIR)
		case !create:
			return nil, fmt.Errorf("%s: %w", path, syscall.ENOENT)
		}
		child, err := r.Mkdir(c, name, 0o755, Caller{})
		if errors.Is(err, syscall.EEXIST) {
			// Made meanwhile by someone else: use theirs.
			if e, ok := c.Lookup(name); ok && e.Child != nil {
				child, err = e.Child, nil
			}
		}
		if err != nil {
			return nil, err
		}
		c = child
	}
	return c, nil
}

// NumTasks is how many tasks c holds, taking the lock.
func (c *Container) NumTasks() int {
	c.h.r.lock()
	defer c.h.r.unlock()
	return len(c.tasks)
}
