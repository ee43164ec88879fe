// Destinations: finding the containers a decision or a -g spec names, and
// making a templated one on the fly.

package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// specTargets resolves a -g spec to containers, which must exist.
func (e *Engine) specTargets(spec Spec) ([]target, error) {
	hs := e.o.Model.Hierarchies()
	var ts []target
	for _, pl := range spec {
		found, missing := hierarchiesFor(hs, pl.Controllers)
		if len(missing) > 0 {
			return nil, fmt.Errorf("-g %s: controller %s is not mounted: %w", pl, strings.Join(missing, ","), syscall.EINVAL)
		}
		for _, h := range found {
			if i := slices.IndexFunc(ts, func(t target) bool { return t.h == h }); i >= 0 {
				if ts[i].path != pl.Path {
					return nil, fmt.Errorf("-g %s: hierarchy %s is named twice: %w", pl, label(h), syscall.EINVAL)
				}
				continue
			}
			ts = append(ts, target{h: h, path: pl.Path})
		}
	}
	return ts, nil
}

// container finds a target's container, making it (and, following
// template sections, its missing parents) for a templated destination.
func (e *Engine) container(t target) (*core.Container, error) {
	m := e.o.Model
	if !t.create {
		c, err := m.ContainerAt(t.h, t.path, false)
		if err != nil {
			return nil, fmt.Errorf("destination %s in %s: %w", t.path, label(t.h), err)
		}
		return c, nil
	}
	if c, err := m.ContainerAt(t.h, t.path, false); err == nil {
		return c, nil
	}
	exp := strings.Split(strings.Trim(t.path, "/"), "/")
	tpl := strings.Split(strings.Trim(t.tmpl, "/"), "/")
	if len(exp) != len(tpl) {
		tpl = exp // cannot line them up: no templates
	}
	var c *core.Container
	for i := range exp {
		sub := strings.Join(exp[:i+1], "/")
		if x, err := m.ContainerAt(t.h, sub, false); err == nil {
			c = x
			continue
		}
		x, err := m.ContainerAt(t.h, sub, true)
		if err != nil {
			return nil, fmt.Errorf("create %s in %s: %w", sub, label(t.h), err)
		}
		c = x
		name := strings.Join(tpl[:i+1], "/")
		if name == sub {
			continue // no template at this level: a plain container
		}
		if g := e.cfg.Load().Template(name); g != nil {
			if err := e.applyTemplate(c, t.h, g); err != nil {
				e.warn("template "+name+err.Error(), "policy: template %s for %s: %v", name, sub, err)
			}
		}
	}
	return c, nil
}

// applyTemplate gives a container made on the fly its template's owners,
// modes and settings in hierarchy h. Templates do not use the default
// section (libcgroup).
func (e *Engine) applyTemplate(c *core.Container, h *core.Hierarchy, g *Group) error {
	var errs []error
	if err := applyPerm(c, g.Perm, e.o.Users); err != nil {
		errs = append(errs, err)
	}
	hs := e.o.Model.Hierarchies()
	for _, ctl := range g.Controllers {
		if hierarchyFor(hs, ctl.Name) != h {
			continue
		}
		for _, s := range ctl.Settings {
			if err := writeSetting(e.o.Model, c, s.Name, s.Value); err != nil {
				errs = append(errs, fmt.Errorf("%v: %s = %q: %w", s.Pos, s.Name, s.Value, err))
			}
		}
	}
	return errors.Join(errs...)
}
