// Apply: making a Config true on the model: its mounts, then its groups
// with their owners, modes and settings, in the order written.

package policy

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"

	"github.com/containerfs/containerfs/internal/proc"
)

// ApplyOptions are what Apply needs from its caller.
type ApplyOptions struct {
	// Mount mounts the hierarchy that opts stand for at dir (the daemon's
	// Mount). Nil means the configuration may have no mount section.
	Mount func(source, dir, opts string) error
	// IsMounted tells whether dir is already one of ours, so that applying
	// a configuration twice does not stack a second mount. Nil reads
	// /proc/self/mountinfo for a fuse.container mount at dir.
	IsMounted func(dir string) bool
	Users     Users // NewSystemUsers if nil
}

// vfsFlags are the mount flags libcgroup accepts among a controller's
// options; they are the kernel's, not cgroup options, and the daemon's
// FUSE mounts are made nosuid and nodev anyway.
var vfsFlags = []string{"nodev", "nosuid", "noexec"}

// Apply makes cfg true: it mounts the mount section's hierarchies, then
// creates each group (and its missing parents) in the hierarchies of its
// controllers, sets its owners and modes, and writes its settings, in the
// order written. Templates are left for the rules engine. It carries on
// past a failure and returns every error, each with its place in the file:
// nothing is undone, as a daemon at start-up should make as much of its
// setup true as it can.
func Apply(t Tree, cfg *Config, o ApplyOptions) error {
	if o.Users == nil {
		o.Users = NewSystemUsers()
	}
	if o.IsMounted == nil {
		o.IsMounted = isOwnMount
	}
	var errs []error
	errs = append(errs, applyMounts(cfg.Mounts, o)...)
	hs := t.Hierarchies()
	for _, g := range cfg.Groups {
		perm := g.Perm
		if perm == nil {
			perm = cfg.Default
		}
		if err := applyGroup(t, hs, g, perm, "", o.Users); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyMounts mounts each mount point once, with every controller listed
// for it (libcgroup co-mounts controllers given the same path).
func applyMounts(ms []Mount, o ApplyOptions) []error {
	var errs []error
	var dirs []string
	byDir := map[string][]Mount{}
	for _, m := range ms {
		d := filepath.Clean(m.Path)
		if _, ok := byDir[d]; !ok {
			dirs = append(dirs, d)
		}
		byDir[d] = append(byDir[d], m)
	}
	for _, dir := range dirs {
		var subsys, extra []string
		name := ""
		for _, m := range byDir[dir] {
			parts := strings.Split(m.Controller, ",")
			switch n, ok := strings.CutPrefix(parts[0], "name="); {
			case ok && name != "" && name != n:
				errs = append(errs, fmt.Errorf("%v: mount point %s has two names, %s and %s: %w", m.Pos, dir, name, n, syscall.EINVAL))
			case ok:
				name = n
			default:
				subsys = append(subsys, parts[0])
			}
			for _, p := range parts[1:] {
				if !slices.Contains(vfsFlags, p) && !slices.Contains(extra, p) {
					extra = append(extra, p)
				}
			}
		}
		opts := slices.Clone(subsys)
		source := "none"
		if len(subsys) == 0 {
			opts = append(opts, "none")
		} else {
			source = subsys[0]
		}
		opts = append(opts, extra...)
		if name != "" {
			opts = append(opts, "name="+name)
		}
		pos := byDir[dir][0].Pos
		if o.IsMounted(dir) {
			continue
		}
		if o.Mount == nil {
			errs = append(errs, fmt.Errorf("%v: cannot mount %s here: %w", pos, dir, syscall.EPERM))
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("%v: %w", pos, err))
			continue
		}
		if err := o.Mount(source, dir, strings.Join(opts, ",")); err != nil {
			errs = append(errs, fmt.Errorf("%v: mount -o %s %s: %w", pos, strings.Join(opts, ","), dir, err))
		}
	}
	return errs
}

// applyGroup makes group g at path (g.Name if path is "") in the
// hierarchy of each of its controllers, with perm and its settings.
func applyGroup(t Tree, hs []*core.Hierarchy, g *Group, perm *Perm, path string, users Users) error {
	if path == "" {
		path = g.Name
	}
	var errs []error
	done := map[*core.Container]bool{}
	for _, ctl := range g.Controllers {
		h := hierarchyFor(hs, ctl.Name)
		if h == nil {
			errs = append(errs, fmt.Errorf("%v: group %s: controller %s is not mounted: %w", ctl.Pos, g.Name, ctl.Name, syscall.ENOENT))
			continue
		}
		c, err := t.ContainerAt(h, path, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("%v: group %s: %w", ctl.Pos, g.Name, err))
			continue
		}
		if !done[c] {
			done[c] = true
			if err := applyPerm(c, perm, users); err != nil {
				errs = append(errs, fmt.Errorf("%v: group %s: perm: %w", g.Pos, g.Name, err))
			}
		}
		for _, s := range ctl.Settings {
			if err := writeSetting(t, c, s.Name, s.Value); err != nil {
				errs = append(errs, fmt.Errorf("%v: group %s: %s = %q: %w", s.Pos, g.Name, s.Name, s.Value, err))
			}
		}
	}
	return errors.Join(errs...)
}

// writeSetting writes value to file name of c. A value of several lines
// is written a line at a time, as libcgroup does for files such as
// devices.allow that take one entry per write.
func writeSetting(t Tree, c *core.Container, name, value string) error {
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		return fmt.Errorf("no control file %s in %s: %w", name, c.Path(), syscall.ENOENT)
	}
	if !strings.Contains(value, "\n") {
		return t.WriteFile(c, e.File, value)
	}
	for _, line := range strings.Split(value, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := t.WriteFile(c, e.File, line); err != nil {
			return err
		}
	}
	return nil
}

// applyPerm sets owners and modes as libcgroup does: the admin user and
// group own the directory (unless duid and dgid say otherwise) and every
// file, then the task user and group own the tasks file; an unset uid or
// gid is root. Modes are changed only
// where given, masked by each entry's owner bits (fperm 777 gives group
// and others what the owner has). A nil perm changes nothing.
func applyPerm(c *core.Container, p *Perm, users Users) error {
	if p == nil {
		return nil
	}
	admin, task := p.Admin, p.Task
	if admin == nil {
		admin = &Owner{FPerm: -1, DPerm: -1}
	}
	if task == nil {
		task = &Owner{FPerm: -1, DPerm: -1}
	}
	auid, agid, err := owners(admin, users)
	if err != nil {
		return err
	}
	tuid, tgid, err := owners(task, users)
	if err != nil {
		return err
	}
	duid, dgid := auid, agid
	if admin.DUID != "" || admin.DGID != "" {
		if duid, dgid, err = owners(&Owner{UID: cmp.Or(admin.DUID, admin.UID), GID: cmp.Or(admin.DGID, admin.GID)}, users); err != nil {
			return err
		}
	}
	da := c.DirAttr()
	if _, err := c.SetAttr(nil, masked(admin.DPerm, da.Mode), &duid, &dgid); err != nil {
		return err
	}
	for _, e := range c.List() {
		if e.File == nil {
			continue
		}
		uid, gid, fperm := auid, agid, admin.FPerm
		if e.File.Name == "tasks" {
			uid, gid, fperm = tuid, tgid, task.FPerm
		}
		if _, err := c.SetAttr(e.File, masked(fperm, e.Attr.Mode), &uid, &gid); err != nil {
			return err
		}
	}
	return nil
}

// masked is libcgroup's cg_chmod_path with owner_is_umask: the owner's
// bits of the current mode bound what group and others may get; the
// set-id and sticky bits pass.
func masked(perm int, cur uint32) *uint32 {
	if perm < 0 {
		return nil
	}
	o := cur & 0o700
	m := uint32(perm) & (o | o>>3 | o>>6 | 0o7000)
	return &m
}

func owners(o *Owner, users Users) (uid, gid uint32, err error) {
	if o.UID != "" {
		var ok bool
		if uid, ok = resolveUser(users, o.UID); !ok {
			return 0, 0, fmt.Errorf("no user %q: %w", o.UID, syscall.EINVAL)
		}
	}
	if o.GID != "" {
		var ok bool
		if gid, ok = resolveGroup(users, o.GID); !ok {
			return 0, 0, fmt.Errorf("no group %q: %w", o.GID, syscall.EINVAL)
		}
	}
	return uid, gid, nil
}

// isOwnMount tells whether dir is a mount point of a fuse.container
// filesystem.
func isOwnMount(dir string) bool {
	ms, err := proc.ReadMountInfo("")
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.FSType == "fuse.container" && m.Point == dir {
			return true
		}
	}
	return false
}
