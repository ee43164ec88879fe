// libcgroup's group tools over the model: cgcreate, cgdelete, cgset,
// cgget and lscgroup.

package policy

import (
	"errors"
	"fmt"
	pathpkg "path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// The libcgroup tools that act on groups by controller and path, served by
// the daemon so that they reach every hierarchy, mounted or not:
// cgcreate, cgdelete, cgset, cgget and lscgroup, with their options and
// output formats.

// Resolve finds the hierarchies of p's controllers ("*" for all, "name=x"
// for a named one); all must exist, else ENOENT.
func Resolve(reg *core.Registry, p Placement) ([]*core.Hierarchy, error) {
	hs, missing := hierarchiesFor(reg.Hierarchies(), p.Controllers)
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: controller %s is not mounted: %w", p, strings.Join(missing, ", "), syscall.ENOENT)
	}
	return hs, nil
}

// eachGroup calls f for every group of spec in every hierarchy its
// controllers name, and gathers the failures, each named as tool's.
func eachGroup(reg *core.Registry, spec Spec, tool string, f func(h *core.Hierarchy, path string) error) error {
	var errs []error
	for _, p := range spec {
		hs, err := Resolve(reg, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, h := range hs {
			if err := f(h, p.Path); err != nil {
				errs = append(errs, fmt.Errorf("%s %s:%s: %w", tool, label(h), p.Path, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Create is cgcreate: each group of spec is made, with its missing parents,
// in every hierarchy its controllers name.
func Create(reg *core.Registry, spec Spec) error {
	return eachGroup(reg, spec, "cgcreate", func(h *core.Hierarchy, path string) error {
		_, err := reg.ContainerAt(h, path, true)
		return err
	})
}

// Delete is cgdelete: each group of spec is removed in every hierarchy its
// controllers name, its tasks moved to its parent first, as libcgroup
// does. With recursive, its descendants go first (their tasks to the
// group's parent too); without, a group with children is EBUSY. The root
// cannot be removed (EBUSY).
func Delete(reg *core.Registry, spec Spec, recursive bool) error {
	return eachGroup(reg, spec, "cgdelete", func(h *core.Hierarchy, path string) error {
		c, err := reg.ContainerAt(h, path, false)
		if err != nil {
			return err
		}
		return deleteGroup(reg, c, c.Parent(), recursive)
	})
}

func deleteGroup(reg *core.Registry, c, to *core.Container, recursive bool) error {
	if to == nil {
		return fmt.Errorf("the root group cannot be removed: %w", syscall.EBUSY)
	}
	for _, e := range c.List() {
		if e.Child == nil {
			continue
		}
		if !recursive {
			return fmt.Errorf("%s has subgroups (use -r): %w", c.Path(), syscall.EBUSY)
		}
		if err := deleteGroup(reg, e.Child, to, true); err != nil {
			return err
		}
	}
	// Move the tasks out and remove the group; a task forked meanwhile
	// makes the rmdir EBUSY: move again.
	var err error
	for range 10 {
		if err = moveTasks(reg, c, to); err != nil {
			return err
		}
		if err = reg.Rmdir(c.Parent(), pathpkg.Base(c.Path()), Caller); !errors.Is(err, syscall.EBUSY) {
			return err
		}
	}
	return err
}

// moveTasks moves every task of c to dst; a task that exited meanwhile is
// not an error.
func moveTasks(reg *core.Registry, c, dst *core.Container) error {
	e, ok := c.Lookup("tasks")
	if !ok || e.File == nil {
		return fmt.Errorf("%s: %w", c.Path(), syscall.ENOENT)
	}
	s, err := reg.ReadFile(c, e.File)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(s) {
		tid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if err := reg.Attach(dst, Caller, tid, false); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("move task %d to %s: %w", tid, dst.Path(), err)
		}
	}
	return nil
}

// controllerOf is the controller a control file belongs to: the part of
// its name before the first dot (libcgroup's rule).
func controllerOf(name string) (string, error) {
	ctrl, _, ok := strings.Cut(name, ".")
	if !ok || ctrl == "" {
		return "", fmt.Errorf("%q names no controller (want <controller>.<file>): %w", name, syscall.EINVAL)
	}
	return ctrl, nil
}

// fileIn finds control file name of the group at path in the hierarchy its
// controller is bound to.
func fileIn(reg *core.Registry, name, path string) (*core.Container, *core.BoundFile, error) {
	ctrl, err := controllerOf(name)
	if err != nil {
		return nil, nil, err
	}
	h := hierarchyFor(reg.Hierarchies(), ctrl)
	if h == nil {
		return nil, nil, fmt.Errorf("%s: controller %s is not mounted: %w", name, ctrl, syscall.ENOENT)
	}
	c, err := reg.ContainerAt(h, path, false)
	if err != nil {
		return nil, nil, err
	}
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		return nil, nil, fmt.Errorf("%s:%s has no file %s: %w", label(h), path, name, syscall.ENOENT)
	}
	return c, e.File, nil
}

// Set is cgset -r name=value ... path ...: every setting is written to every
// group, in order; the first failure stops it (libcgroup's does too).
func Set(reg *core.Registry, settings, paths []string) error {
	if len(settings) == 0 || len(paths) == 0 {
		return fmt.Errorf("cgset: want at least one -r name=value and one group: %w", syscall.EINVAL)
	}
	for _, path := range paths {
		for _, s := range settings {
			name, value, ok := strings.Cut(s, "=")
			if !ok {
				return fmt.Errorf("cgset -r %q: want name=value: %w", s, syscall.EINVAL)
			}
			c, f, err := fileIn(reg, name, path)
			if err == nil {
				err = reg.WriteFile(c, f, Caller, value)
			}
			if err != nil {
				return fmt.Errorf("cgset %s %s: %w", s, path, err)
			}
		}
	}
	return nil
}

// GetOptions are cgget's.
type GetOptions struct {
	Names       []string // -r: these files
	Controllers []string // -g <controller>: every file of these
	Groups      Spec     // -g <controllers>:<path>: every file of these controllers in that group
	Paths       []string // the groups, for -r and -g <controller> (or every controller with neither)
	NoHeaders   bool     // -n
	ValuesOnly  bool     // -v
}

// Get is cgget: each group's header ("path:"), then "name: value" per
// file (a value's later lines indented with a tab), then an empty line.
func Get(reg *core.Registry, o GetOptions) ([]string, error) {
	if len(o.Names) > 0 && (len(o.Controllers) > 0 || len(o.Groups) > 0) {
		return nil, fmt.Errorf("cgget: -r does not go with -g: %w", syscall.EINVAL)
	}
	if len(o.Groups) > 0 && len(o.Paths) > 0 {
		return nil, fmt.Errorf("cgget: -g <controllers>:<path> does not go with group arguments: %w", syscall.EINVAL)
	}
	type group struct {
		path  string
		names []string // files, or
		ctrls []string // whole controllers
	}
	var groups []group
	switch {
	case len(o.Groups) > 0:
		for _, p := range o.Groups {
			groups = append(groups, group{path: p.Path, ctrls: p.Controllers})
		}
	case len(o.Paths) == 0:
		return nil, fmt.Errorf("cgget: no group given: %w", syscall.EINVAL)
	default:
		ctrls := o.Controllers
		if len(o.Names) == 0 && len(ctrls) == 0 {
			ctrls = []string{"*"}
		}
		for _, path := range o.Paths {
			groups = append(groups, group{path: path, names: o.Names, ctrls: ctrls})
		}
	}
	var out []string
	for _, g := range groups {
		if !o.NoHeaders {
			out = append(out, g.path+":")
		}
		values := func(name string, c *core.Container, f *core.BoundFile) error {
			s, err := reg.ReadFile(c, f)
			if err != nil {
				return fmt.Errorf("cgget %s %s: %w", name, g.path, err)
			}
			v := strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t")
			if !o.ValuesOnly {
				v = name + ": " + v
			}
			out = append(out, strings.Split(v, "\n")...)
			return nil
		}
		for _, name := range g.names {
			c, f, err := fileIn(reg, name, g.path)
			if err != nil {
				return nil, err
			}
			if err := values(name, c, f); err != nil {
				return nil, err
			}
		}
		if len(g.ctrls) > 0 {
			hs, err := Resolve(reg, Placement{Controllers: g.ctrls, Path: g.path})
			if err != nil {
				return nil, err
			}
			for _, h := range hs {
				c, err := reg.ContainerAt(h, g.path, false)
				if err != nil {
					return nil, fmt.Errorf("cgget %s:%s: %w", label(h), g.path, err)
				}
				for _, e := range c.List() {
					if e.File == nil || !e.File.Readable() || !fileOf(e.File.Name, g.ctrls, h) {
						continue
					}
					if err := values(e.File.Name, c, e.File); err != nil {
						return nil, err
					}
				}
			}
		}
		if !o.NoHeaders {
			out = append(out, "")
		}
	}
	return out, nil
}

// fileOf tells whether control file name belongs to one of ctrls ("*": any
// subsystem of h) as libcgroup lists a controller's files: those named
// <controller>.*.
func fileOf(name string, ctrls []string, h *core.Hierarchy) bool {
	ctrl, _, ok := strings.Cut(name, ".")
	if !ok || !slices.Contains(h.Subsystems(), ctrl) {
		return false
	}
	return slices.Contains(ctrls, "*") || slices.Contains(ctrls, ctrl)
}

// List is lscgroup: "controllers:/path" for every group of every hierarchy
// (or of those spec names, at and below its paths), parents first.
func List(reg *core.Registry, spec Spec) ([]string, error) {
	var out []string
	walk := func(h *core.Hierarchy, c *core.Container) {
		var rec func(c *core.Container)
		rec = func(c *core.Container) {
			out = append(out, label(h)+":"+c.Path())
			for _, e := range c.List() {
				if e.Child != nil {
					rec(e.Child)
				}
			}
		}
		rec(c)
	}
	if len(spec) == 0 {
		for _, h := range reg.Hierarchies() {
			walk(h, h.Root())
		}
		return out, nil
	}
	for _, p := range spec {
		hs, err := Resolve(reg, p)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			c, err := reg.ContainerAt(h, p.Path, false)
			if err != nil {
				return nil, fmt.Errorf("lscgroup %s:%s: %w", label(h), p.Path, err)
			}
			walk(h, c)
		}
	}
	return out, nil
}
