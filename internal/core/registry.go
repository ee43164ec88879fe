package core

import (
	"fmt"
	"slices"
	"syscall"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// Registry is the whole model: every hierarchy, container and task.
type Registry struct {
	mu lockrank.Mutex[lockrank.Registry] // the ladder: core/doc.go

	procs  Procs
	subsys []*hooks // every known subsystem, in registration order; immutable

	self int // the daemon's own TGID; 0 if none. Guarded by mu.

	hier  []*Hierarchy          // by slot; nil where free. Guarded by mu.
	bound map[string]*Hierarchy // subsystem name → its hierarchy. Guarded by mu.
	tasks map[int]*Task         // by TID. Guarded by mu.
	// threads counts the known threads other than the leader of each
	// thread group, by TGID, so that GroupAlive need not scan tasks.
	// Guarded by mu.
	threads    map[int]int
	nextHierID int    // guarded by mu
	nextID     uint64 // container ids; guarded by mu

	// after is work queued under mu to run once mu is released: release
	// agents and change notifications. Guarded by mu.
	after []func()

	onRelease func(h *Hierarchy, path string)
	onAttach  func(dst *Container, who Caller, tgid int, start uint64) // guarded by mu

	// cloneByDefault turns cgroup.clone_children on in the root of every
	// new hierarchy. Guarded by mu.
	cloneByDefault bool
}

// NewRegistry makes an empty model with the given subsystems, in the order
// they are listed everywhere (mount options, /proc/cgroups).
func NewRegistry(procs Procs, subsys ...Subsys) *Registry {
	r := &Registry{
		procs:      procs,
		bound:      map[string]*Hierarchy{},
		tasks:      map[int]*Task{},
		threads:    map[int]int{},
		nextHierID: 1,
		nextID:     1,
	}
	for _, ss := range subsys {
		for _, f := range ss.Files() {
			if err := f.check(); err != nil {
				panic("subsystem " + ss.Name() + ": " + err.Error())
			}
		}
		r.subsys = append(r.subsys, newHooks(ss))
	}
	return r
}

// lock and unlock take the registry lock; unlock runs the work queued
// meanwhile, after releasing it.
func (r *Registry) lock() { r.mu.Lock() }

func (r *Registry) unlock() {
	after := r.after
	r.after = nil
	r.mu.Unlock()
	for _, f := range after {
		f()
	}
}

// SetSelf names the daemon's own thread group, which is never moved.
func (r *Registry) SetSelf(tgid int) {
	r.lock()
	defer r.unlock()
	r.self = tgid
}

// CloneChildrenByDefault makes every new hierarchy start with
// cgroup.clone_children set in its root, as if mounted with clone_children,
// so that new cpusets start with their parent's CPUs and memory nodes
// instead of empty. cgroup v1 starts with it unset: the seed's session
// (mkdir, then echo $$ > tasks) then fails with ENOSPC in a hierarchy that
// has cpuset. Writing 0 to the root's cgroup.clone_children undoes it.
func (r *Registry) CloneChildrenByDefault(on bool) {
	r.lock()
	defer r.unlock()
	r.cloneByDefault = on
}

// OnRelease sets what runs when a container with notify_on_release set
// becomes empty (no tasks, no children). It runs outside the registry lock.
func (r *Registry) OnRelease(f func(h *Hierarchy, path string)) {
	r.lock()
	defer r.unlock()
	r.onRelease = f
}

// OnAttach sets what runs after each Attach that succeeded (even one that
// found the task already in dst): dst, the caller, and the thread group of
// the task written with its leader's start time. It runs outside the
// registry lock, before the writer is answered. The policy engine learns of
// moves made by hand so.
func (r *Registry) OnAttach(f func(dst *Container, who Caller, tgid int, start uint64)) {
	r.lock()
	defer r.unlock()
	r.onAttach = f
}

// Subsystems lists the names of the known subsystems.
func (r *Registry) Subsystems() []string {
	names := make([]string, len(r.subsys))
	for i, h := range r.subsys {
		names[i] = h.ss.Name()
	}
	return names
}

// Hierarchy is one tree of containers with its set of subsystems.
type Hierarchy struct {
	r    *Registry
	id   int
	slot int
	opts Options // guarded by Registry.mu
	ss   []*hooks
	root *Container

	mounts     int // live mounts; guarded by Registry.mu
	containers int // guarded by Registry.mu
	dead       bool

	rootFiles, childFiles []BoundFile

	watchers map[int]func(Change) // guarded by Registry.mu
	nextW    int
}

// BoundFile is a control file as it appears in a hierarchy: its full name
// and the subsystem that declared it (nil for core files).
type BoundFile struct {
	Name   string
	Subsys Subsys
	*File
}

// Change tells a watcher that the entry Name of Parent was created, removed
// or renamed, so that views of the hierarchy can drop cached entries.
type Change struct {
	Parent *Container
	Name   string
	View   any // Caller.View of the request that made the change
}

// ID is the hierarchy id shown in /proc/PID/cgroup.
func (h *Hierarchy) ID() int { return h.id }

// Root is the hierarchy's root container.
func (h *Hierarchy) Root() *Container { return h.root }

// Options are the hierarchy's mount options as they stand.
func (h *Hierarchy) Options() Options {
	h.r.lock()
	defer h.r.unlock()
	return h.opts
}

// Subsystems lists the names of the subsystems bound to h.
func (h *Hierarchy) Subsystems() []string {
	names := make([]string, len(h.ss))
	for i, s := range h.ss {
		names[i] = s.ss.Name()
	}
	return names
}

// Mount finds or creates the hierarchy that a mount with the option string
// opts stands for, following cgroup v1's rules, and counts one more mount of
// it. Every Mount that succeeds is paired with an Unmount.
func (r *Registry) Mount(opts string) (*Hierarchy, error) {
	o, err := ParseOptions(opts, r.Subsystems())
	if err != nil {
		return nil, err
	}
	r.lock()
	defer r.unlock()
	for _, h := range r.hier {
		if h == nil {
			continue
		}
		nameMatch := false
		if o.Name != "" {
			if o.Name != h.opts.Name {
				continue
			}
			nameMatch = true
		}
		if o.specifiesSet() && !slices.Equal(o.Subsys, h.Subsystems()) {
			if !nameMatch {
				continue
			}
			// cgroup v1: the name matches but the set differs.
			return nil, fmt.Errorf("hierarchy %q has subsystems %v: %w", o.Name, h.Subsystems(), syscall.EBUSY)
		}
		// Another view of the same hierarchy; differing flags are ignored,
		// as the kernel does (it warns).
		h.mounts++
		return h, nil
	}
	if !o.specifiesSet() {
		return nil, fmt.Errorf("no hierarchy named %q, and no subsystem list or none specified: %w", o.Name, syscall.EINVAL)
	}
	for _, name := range o.Subsys {
		if other := r.bound[name]; other != nil {
			return nil, fmt.Errorf("subsystem %s is already mounted on hierarchy %d: %w", name, other.id, syscall.EBUSY)
		}
	}
	h, err := r.newHierarchyLocked(o)
	if err != nil {
		return nil, err
	}
	h.mounts++
	return h, nil
}

func (r *Registry) newHierarchyLocked(o Options) (*Hierarchy, error) {
	h := &Hierarchy{r: r, id: r.nextHierID, opts: o, watchers: map[int]func(Change){}}
	for _, name := range o.Subsys {
		for _, hk := range r.subsys {
			if hk.ss.Name() == name {
				h.ss = append(h.ss, hk)
			}
		}
	}
	h.bindFiles()
	root := &Container{h: h, id: r.nextID, mode: 0o755}
	root.notifyOnRelease = false
	root.cloneChildren = o.CloneChildren || r.cloneByDefault
	if err := r.createStatesLocked(root); err != nil {
		return nil, err
	}
	r.nextID++
	r.nextHierID++
	h.root = root
	h.containers = 1
	h.slot = slices.Index(r.hier, nil)
	if h.slot < 0 {
		h.slot = len(r.hier)
		r.hier = append(r.hier, nil)
	}
	r.hier[h.slot] = h
	for _, name := range o.Subsys {
		r.bound[name] = h
	}
	// A new hierarchy takes every known task into its root.
	for _, t := range r.tasks {
		t.setIn(h, root)
	}
	return h, nil
}

// Unmount counts one mount of h gone. A hierarchy with no mounts and no child
// containers is torn down and its subsystems are free again; one that still
// has children lives on and comes back with the next matching mount.
func (r *Registry) Unmount(h *Hierarchy) {
	r.lock()
	defer r.unlock()
	if h.mounts > 0 {
		h.mounts--
	}
	if h.mounts > 0 || len(h.root.children) > 0 || h.dead {
		return
	}
	h.dead = true
	for _, t := range r.tasks {
		t.setIn(h, nil)
	}
	r.destroyStatesLocked(h.root)
	h.root.removed = true
	for _, name := range h.Subsystems() {
		delete(r.bound, name)
	}
	r.hier[h.slot] = nil
}

// Hierarchies lists the live hierarchies, by id.
func (r *Registry) Hierarchies() []*Hierarchy {
	r.lock()
	defer r.unlock()
	var hs []*Hierarchy
	for _, h := range r.hier {
		if h != nil {
			hs = append(hs, h)
		}
	}
	slices.SortFunc(hs, func(a, b *Hierarchy) int { return a.id - b.id })
	return hs
}

// Watch registers f to be told of entries created, removed or renamed in h.
// f runs outside the registry lock. The returned function unregisters it.
func (h *Hierarchy) Watch(f func(Change)) (cancel func()) {
	h.r.lock()
	defer h.r.unlock()
	id := h.nextW
	h.nextW++
	h.watchers[id] = f
	return func() {
		h.r.lock()
		defer h.r.unlock()
		delete(h.watchers, id)
	}
}

func (h *Hierarchy) changedLocked(parent *Container, name string, view any) {
	for _, w := range h.watchers {
		h.r.after = append(h.r.after, func() { w(Change{Parent: parent, Name: name, View: view}) })
	}
}

// Files lists the control files of container c.
func (h *Hierarchy) Files(c *Container) []BoundFile {
	if c.parent == nil {
		return h.rootFiles
	}
	return h.childFiles
}

func (h *Hierarchy) bindFiles() {
	add := func(ss Subsys, prefix string, files []File) {
		for i := range files {
			f := &files[i]
			name := prefix + f.Name
			if f.Flags&NoPrefix != 0 {
				name = f.Name
			}
			bf := BoundFile{Name: name, Subsys: ss, File: f}
			if f.on(true) {
				h.rootFiles = append(h.rootFiles, bf)
			}
			if f.on(false) {
				h.childFiles = append(h.childFiles, bf)
			}
		}
	}
	add(nil, "", coreFiles(h.r))
	for _, hk := range h.ss {
		prefix := hk.ss.Name() + "."
		if h.opts.NoPrefix {
			prefix = ""
		}
		add(hk.ss, prefix, hk.ss.Files())
	}
}

// Stat is one line of /proc/cgroups.
type Stat struct {
	Subsys     string
	Hierarchy  int // 0 when unbound
	Containers int
	Enabled    bool
}

// Stats is the /proc/cgroups table: one line per known subsystem.
func (r *Registry) Stats() []Stat {
	r.lock()
	defer r.unlock()
	var st []Stat
	for _, hk := range r.subsys {
		s := Stat{Subsys: hk.ss.Name(), Containers: 1, Enabled: true}
		if h := r.bound[s.Subsys]; h != nil {
			s.Hierarchy, s.Containers = h.id, h.containers
		}
		st = append(st, s)
	}
	return st
}
