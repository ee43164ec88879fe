// Who may ask what on the control socket, as the kernel decides who may
// read and write a hierarchy: every user may query, a user may move its own
// processes into groups whose cgroup.procs it may write, and everything
// else (mounts, the policy, group tools that change the model) is root's.

package daemon

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/policy"
)

// forEveryone are the read-only queries. Their kernel equivalents are
// world-readable: /proc/PID/cgroup, /proc/cgroups and /proc/mounts
// (lssubsys), a hierarchy's directories (lscgroup) and its files, mode 0644
// or 0444 unless changed (cgget, cgsnapshot).
var forEveryone = map[string]bool{
	"ping": true, "cgroup": true, "lssubsys": true, "explain": true, "stats": true,
	"snapshot": true, "cgget": true, "lscgroup": true,
}

// forOwners are the moves a user may ask for, judged by userPlace.
var forOwners = map[string]bool{"classify": true, "exec": true}

// authorize refuses, with EPERM, what the peer may not ask at all.
func authorize(req Request) error {
	if req.uid == 0 || forEveryone[req.Op] || forOwners[req.Op] {
		return nil
	}
	return fmt.Errorf("permission denied: %q on the control socket is root's (uid %d asked): %w", req.Op, req.uid, syscall.EPERM)
}

// userPlace serves cgclassify and cgexec for a user other than root, as
// the kernel serves that user's write to cgroup.procs: the groups must be
// named (placing by the rules, and stickiness, are the policy's, which acts
// as root), the user must be allowed to write each group's cgroup.procs
// (the VFS's permission check at open), and each process must be the
// user's (Attach checks the uid as cgroup v1's procs write does).
func (d *Daemon) userPlace(req Request) error {
	if req.Op == "sticky" || req.Sticky != "" {
		return fmt.Errorf("permission denied: stickiness is the policy's, root's: %w", syscall.EPERM)
	}
	spec, err := policy.ParseSpec(req.Groups)
	if err != nil {
		return err
	}
	if spec == nil {
		return fmt.Errorf("permission denied: placing by the rules is root's; name the groups with -g: %w", syscall.EPERM)
	}
	who := core.Caller{PID: req.peer, UID: req.uid, GID: req.gid, Origin: core.ByUser}
	var dsts []*core.Container
	for _, p := range spec {
		hs, err := policy.Resolve(d.Reg, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, h := range hs {
			c, err := d.Reg.ContainerAt(h, p.Path, false)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if err := mayWrite(c, "cgroup.procs", who); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			dsts = append(dsts, c)
		}
	}
	pids := req.PIDs
	if req.Op == "exec" {
		pid := req.PID
		if pid == 0 {
			pid = req.peer
		}
		pids = []int{pid}
	}
	var errs []error
	for _, pid := range pids {
		for _, c := range dsts {
			if err := d.Reg.Attach(c, who, pid, true); err != nil {
				errs = append(errs, fmt.Errorf("process %d to %s: %w", pid, c.Path(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// mayWrite is the VFS's check for opening c's file name for writing
// (generic_permission in fs/namei.c): search permission on every directory
// from the root down, then write permission on the file, by owner, group or
// other bits. Only the primary gid is known from SO_PEERCRED, so a right
// given through a supplementary group alone is not seen.
func mayWrite(c *core.Container, name string, who core.Caller) error {
	for p := c; p != nil; p = p.Parent() {
		if !permits(p.DirAttr(), who, 0o1) {
			return fmt.Errorf("%s: %w", p.Path(), syscall.EACCES)
		}
	}
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		return fmt.Errorf("%s/%s: %w", c.Path(), name, syscall.ENOENT)
	}
	if !permits(c.FileAttr(e.File), who, 0o2) {
		return fmt.Errorf("%s/%s: %w", c.Path(), name, syscall.EACCES)
	}
	return nil
}

func permits(a core.Attr, who core.Caller, bit uint32) bool {
	switch {
	case who.UID == 0:
		return true
	case who.UID == a.UID:
		return a.Mode&(bit<<6) != 0
	case who.GID == a.GID:
		return a.Mode&(bit<<3) != 0
	}
	return a.Mode&bit != 0
}
