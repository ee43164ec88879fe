// The model the policy acts on (Tree, Model), its implementation over a
// core.Registry, acting as the policy (Caller), and lookups of hierarchies
// by controller.

package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// Tree is what the declarative setup needs of the model: find or make
// containers and write their files.
type Tree interface {
	Hierarchies() []*core.Hierarchy
	ContainerAt(h *core.Hierarchy, path string, create bool) (*core.Container, error)
	// WriteFile hands one write to control file f of c, as root.
	WriteFile(c *core.Container, f *core.BoundFile, data string) error
}

// Model is what the rules engine needs of the model: a Tree, plus moving
// processes and asking where tasks are.
type Model interface {
	Tree
	// Attach moves pid's whole thread group into dst, as root writing
	// cgroup.procs would, marked as the policy's own move (see Own).
	Attach(dst *core.Container, pid int) error
	// Where lists task tid's containers; false if the model does not know it.
	Where(tid int) ([]core.Where, bool)
	// GroupAlive tells whether the model still has a thread of process
	// tgid. The tracker applies every event to the model before the engine
	// sees it, so at an exit event this is whether the process lives on.
	GroupAlive(tgid int) bool
}

// CoreModel is Model over a *core.Registry.
type CoreModel struct{ Reg *core.Registry }

var _ Model = CoreModel{}

// Caller is who the policy acts as: root, with the policy's origin, so
// that an observer of attaches can tell its moves from moves made by hand.
var Caller = core.Caller{Origin: core.ByPolicy}

// Own tells whether a move was made by the policy engine, not by hand.
func Own(who core.Caller) bool { return who.Origin == core.ByPolicy }

// Hierarchies implements Tree.
func (m CoreModel) Hierarchies() []*core.Hierarchy { return m.Reg.Hierarchies() }

// ContainerAt implements Tree.
func (m CoreModel) ContainerAt(h *core.Hierarchy, path string, create bool) (*core.Container, error) {
	return m.Reg.ContainerAt(h, path, create)
}

// WriteFile implements Tree.
func (m CoreModel) WriteFile(c *core.Container, f *core.BoundFile, data string) error {
	return m.Reg.WriteFile(c, f, Caller, data)
}

// Attach implements Model.
func (m CoreModel) Attach(dst *core.Container, pid int) error {
	return m.Reg.Attach(dst, Caller, pid, true)
}

// Where implements Model.
func (m CoreModel) Where(tid int) ([]core.Where, bool) { return m.Reg.Where(tid) }

// GroupAlive implements Model.
func (m CoreModel) GroupAlive(tgid int) bool { return m.Reg.GroupAlive(tgid) }

// hierarchyFor finds the hierarchy a controller name stands for: one of
// its subsystems, or "name=X" for a named hierarchy.
func hierarchyFor(hs []*core.Hierarchy, ctrl string) *core.Hierarchy {
	name, named := strings.CutPrefix(ctrl, "name=")
	for _, h := range hs {
		if named {
			if h.Options().Name == name {
				return h
			}
		} else if slices.Contains(h.Subsystems(), ctrl) {
			return h
		}
	}
	return nil
}

// hierarchiesFor resolves a controller list ("*" for all) to hierarchies,
// each once, in the order named; missing lists the names not mounted.
func hierarchiesFor(hs []*core.Hierarchy, ctrls []string) (found []*core.Hierarchy, missing []string) {
	if len(ctrls) == 1 && ctrls[0] == "*" {
		return hs, nil
	}
	for _, c := range ctrls {
		h := hierarchyFor(hs, c)
		if h == nil {
			missing = append(missing, c)
		} else if !slices.Contains(found, h) {
			found = append(found, h)
		}
	}
	return found, missing
}

// label names a hierarchy as /proc/PID/cgroup does: "cpu,cpuacct",
// "name=x", "cpu,name=x".
func label(h *core.Hierarchy) string {
	parts := h.Subsystems()
	if n := h.Options().Name; n != "" {
		parts = append(parts, "name="+n)
	}
	return strings.Join(parts, ",")
}

// primary is the controller name a configuration uses for h: its first
// subsystem, or name=X for a hierarchy with none.
func primary(h *core.Hierarchy) string {
	if ss := h.Subsystems(); len(ss) > 0 {
		return ss[0]
	}
	return "name=" + h.Options().Name
}

// whereIn is a task's container path in h, from a Where list.
func whereIn(ws []core.Where, h *core.Hierarchy) (string, bool) {
	for _, w := range ws {
		if w.Hierarchy == h {
			return w.Path, true
		}
	}
	return "", false
}

// withErrno makes sure err wraps an errno, def if it has none.
func withErrno(err error, def syscall.Errno) error {
	var e syscall.Errno
	if err == nil || errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%w: %w", err, def)
}
