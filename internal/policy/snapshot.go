// Snapshot: the live model described as a Config, so that applying it to a
// fresh registry makes an equal tree.

package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// SnapshotOptions tune Snapshot.
type SnapshotOptions struct {
	// MountDirs lists where h is mounted, for the mount section. A
	// hierarchy with no mount point gets no mount line, and applying the
	// snapshot then needs it mounted some other way.
	MountDirs func(h *core.Hierarchy) []string
	// Fresh makes new instances of the registry's subsystems (subsys.All).
	// With it, Snapshot mounts each hierarchy in a scratch registry to
	// learn the values a new container starts with, and writes only the
	// settings that differ. Without it, every file that can be both read
	// and written is written out.
	Fresh func() []core.Subsys
}

// Snapshot describes the live tree of reg in the cgconfig grammar, as
// cgsnapshot does: applying it to a fresh registry (through Apply, with
// the same subsystems) makes an equal tree — the same containers, owners
// and modes, and the same values in every file that can be read and
// written. What the grammar cannot say is approximated: one owner for
// every file but tasks, and the union of their modes (exact when they
// were set through a perm section, as libcgroup masks modes by owner
// bits). A directory owned apart from its files (delegation) is written
// with the duid and dgid extension. Lists with no entries are left out
// (there is nothing to write back). Memberships are not part of it: tasks
// are placed by rules.
func Snapshot(reg *core.Registry, o SnapshotOptions) (*Config, error) {
	cfg := &Config{}
	hs := reg.Hierarchies()
	var errs []error
	defaults := map[*core.Hierarchy]*freshValues{}
	for _, h := range hs {
		if o.MountDirs != nil {
			for _, dir := range o.MountDirs(h) {
				cfg.Mounts = append(cfg.Mounts, mountLines(h, dir)...)
			}
		}
		if o.Fresh != nil {
			fv, err := freshDefaults(h, o.Fresh)
			if err != nil {
				errs = append(errs, err)
			}
			defaults[h] = fv
		}
	}

	// Every container path in any hierarchy, parents first.
	type member struct {
		h *core.Hierarchy
		c *core.Container
	}
	byPath := map[string][]member{}
	for _, h := range hs {
		var walk func(c *core.Container)
		walk = func(c *core.Container) {
			p := c.Path()
			byPath[p] = append(byPath[p], member{h, c})
			for _, e := range c.List() {
				if e.Child != nil {
					walk(e.Child)
				}
			}
		}
		walk(h.Root())
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int {
		return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
	})

	for _, p := range paths {
		name := strings.TrimPrefix(p, "/")
		if p == "/" {
			name = "."
		}
		// Hierarchies whose containers at p have the same owners and
		// modes share one group section.
		var groups []*Group
		for _, m := range byPath[p] {
			perm := permOf(m.c)
			ctls, err := settingsOf(reg, m.h, m.c, defaults[m.h])
			if err != nil {
				errs = append(errs, err)
			}
			if p == "/" && perm == nil && len(ctls) == 0 {
				continue // an unchanged root needs no section
			}
			if len(ctls) == 0 {
				ctls = []*Controller{{Name: primary(m.h)}}
			}
			i := slices.IndexFunc(groups, func(g *Group) bool { return equalPerm(g.Perm, perm) })
			if i < 0 {
				groups = append(groups, &Group{Name: name, Perm: perm})
				i = len(groups) - 1
			}
			groups[i].Controllers = append(groups[i].Controllers, ctls...)
		}
		cfg.Groups = append(cfg.Groups, groups...)
	}
	return cfg, errors.Join(errs...)
}

// mountLines are the mount section's lines for h at dir: one per
// subsystem, the options that change the tree (noprefix) on the first,
// and name=X.
func mountLines(h *core.Hierarchy, dir string) []Mount {
	o := h.Options()
	var ms []Mount
	for i, ss := range h.Subsystems() {
		ctl := ss
		if i == 0 && o.NoPrefix {
			ctl += ",noprefix"
		}
		ms = append(ms, Mount{Controller: ctl, Path: dir})
	}
	if o.Name != "" {
		ms = append(ms, Mount{Controller: "name=" + o.Name, Path: dir})
	}
	return ms
}

// scratchOptions are the mount options that decide a hierarchy's files
// and their defaults, for the scratch copy.
func scratchOptions(h *core.Hierarchy) string {
	o := h.Options()
	opts := h.Subsystems()
	if len(opts) == 0 {
		opts = append(opts, "none")
	}
	if o.NoPrefix {
		opts = append(opts, "noprefix")
	}
	if o.Name != "" {
		opts = append(opts, "name="+o.Name)
	}
	return strings.Join(opts, ",")
}

// freshValues are the values of a new hierarchy's root and of a new child
// container, by file name.
type freshValues struct{ root, child map[string]string }

// noProcs is a Procs with no tasks, for the scratch registry.
type noProcs struct{}

func (noProcs) Task(tid int) (core.TaskInfo, error) {
	return core.TaskInfo{}, fmt.Errorf("task %d: %w", tid, syscall.ESRCH)
}

func (noProcs) Threads(tgid int) ([]int, error) {
	return nil, fmt.Errorf("thread group %d: %w", tgid, syscall.ESRCH)
}

// freshDefaults mounts h's subsystems afresh in a scratch registry, reads
// a root's and a new child's values, and tears it all down.
func freshDefaults(h *core.Hierarchy, fresh func() []core.Subsys) (*freshValues, error) {
	reg := core.NewRegistry(noProcs{}, fresh()...)
	fh, err := reg.Mount(scratchOptions(h))
	if err != nil {
		return nil, fmt.Errorf("scratch mount of %s: %w", label(h), err)
	}
	defer reg.Unmount(fh)
	fv := &freshValues{root: readAll(reg, fh.Root())}
	c, err := reg.Mkdir(fh.Root(), "fresh", 0o755, core.Caller{})
	if err != nil {
		return fv, fmt.Errorf("scratch container in %s: %w", label(h), err)
	}
	fv.child = readAll(reg, c)
	reg.Rmdir(fh.Root(), "fresh", core.Caller{})
	return fv, nil
}

func readAll(reg *core.Registry, c *core.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.List() {
		if e.File != nil && e.File.Readable() {
			if v, err := reg.ReadFile(c, e.File); err == nil {
				m[e.File.Name] = v
			}
		}
	}
	return m
}

// membership files are not settings: tasks are placed, not configured.
var membership = []string{"tasks", "cgroup.procs"}

// settingsOf lists c's settings by controller section: every file that
// can be read and written whose value differs from a fresh container's
// (all of them when fv is nil). Files of the core go in the first section.
func settingsOf(reg *core.Registry, h *core.Hierarchy, c *core.Container, fv *freshValues) ([]*Controller, error) {
	var def map[string]string
	if fv != nil {
		def = fv.child
		if c.Parent() == nil {
			def = fv.root
		}
	}
	first := &Controller{Name: primary(h)}
	ctls := []*Controller{first}
	var errs []error
	for _, e := range c.List() {
		f := e.File
		if f == nil || !f.Readable() || !f.Writable() || f.Flags&core.NotSetting != 0 || slices.Contains(membership, f.Name) {
			continue
		}
		v, err := reg.ReadFile(c, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s/%s: %w", label(h), c.Path(), f.Name, err))
			continue
		}
		if d, ok := def[f.Name]; ok && d == v {
			continue
		}
		if v == "" {
			// A list with no entries (a scalar reads at least "\n"):
			// nothing to write back.
			continue
		}
		if strings.Contains(v, `"`) {
			errs = append(errs, fmt.Errorf("%s %s/%s: value %q cannot be written in the cgconfig grammar", label(h), c.Path(), f.Name, v))
			continue
		}
		ctl := first
		if f.Subsys != nil {
			name := f.Subsys.Name()
			i := slices.IndexFunc(ctls, func(x *Controller) bool { return x.Name == name })
			if i < 0 {
				ctls = append(ctls, &Controller{Name: name})
				i = len(ctls) - 1
			}
			ctl = ctls[i]
		}
		ctl.Settings = append(ctl.Settings, Setting{Name: f.Name, Value: strings.TrimSuffix(v, "\n")})
	}
	// Keep the first section (it places the group in h); drop empty others.
	ctls = slices.DeleteFunc(ctls, func(x *Controller) bool { return x != first && len(x.Settings) == 0 })
	if len(first.Settings) == 0 && len(ctls) > 1 {
		ctls = ctls[1:]
	}
	if len(ctls) == 1 && len(ctls[0].Settings) == 0 {
		return nil, errors.Join(errs...)
	}
	return ctls, errors.Join(errs...)
}

// defaultDirMode is the mode ContainerAt (and mkdir by root with umask
// 022) gives a new container.
const defaultDirMode = 0o755

// permOf describes c's owners and modes as a perm section, nil when they
// are a fresh container's: everything root's, default modes.
func permOf(c *core.Container) *Perm {
	da := c.DirAttr()
	changed := da.UID != 0 || da.GID != 0 || da.Mode != defaultDirMode
	var tasks core.Attr
	tasksDefault := uint32(0o644)
	var fmode uint32
	fchanged := false
	var fowner *core.Attr // the owner of the files but tasks
	for _, e := range c.List() {
		if e.File == nil {
			continue
		}
		if e.File.Name == "tasks" {
			tasks, tasksDefault = e.Attr, e.File.Perm()
			changed = changed || e.Attr.UID != 0 || e.Attr.GID != 0 || e.Attr.Mode != e.File.Perm()
			continue
		}
		if fowner == nil {
			a := e.Attr
			fowner = &a
		}
		fmode |= e.Attr.Mode
		if e.Attr.Mode != e.File.Perm() {
			fchanged = true
		}
		changed = changed || e.Attr.UID != 0 || e.Attr.GID != 0
	}
	if !changed && !fchanged {
		return nil
	}
	if fowner == nil {
		fowner = &da
	}
	admin := &Owner{UID: fmt.Sprint(fowner.UID), GID: fmt.Sprint(fowner.GID), DPerm: int(da.Mode), FPerm: -1}
	if da.UID != fowner.UID || da.GID != fowner.GID {
		admin.DUID, admin.DGID = fmt.Sprint(da.UID), fmt.Sprint(da.GID)
	}
	if fchanged {
		admin.FPerm = int(fmode)
	}
	task := &Owner{UID: fmt.Sprint(tasks.UID), GID: fmt.Sprint(tasks.GID), FPerm: -1, DPerm: -1}
	if tasks.Mode != tasksDefault {
		task.FPerm = int(tasks.Mode)
	}
	return &Perm{Task: task, Admin: admin}
}

func equalPerm(a, b *Perm) bool {
	if a == nil || b == nil {
		return a == b
	}
	eq := func(x, y *Owner) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.UID == y.UID && x.GID == y.GID && x.FPerm == y.FPerm && x.DPerm == y.DPerm && x.DUID == y.DUID && x.DGID == y.DGID
	}
	return eq(a.Task, b.Task) && eq(a.Admin, b.Admin)
}
