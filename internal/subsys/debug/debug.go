// Package debug is the debug subsystem, as in the original process-containers
// patch: it controls nothing and shows the core's own view of a container, so
// hierarchies with a subsystem can be exercised before any resource
// controller is bound to them.
package debug

import (
	"github.com/containerfs/containerfs/internal/core"
)

// Subsys is the debug subsystem. It has no per-container state.
type Subsys struct{}

var _ core.Subsys = (*Subsys)(nil)

// Name implements core.Subsys.
func (*Subsys) Name() string { return "debug" }

// Create implements core.Subsys.
func (*Subsys) Create(*core.Container) (any, error) { return nil, nil }

// Destroy implements core.Subsys.
func (*Subsys) Destroy(*core.Container) {}

// Files implements core.Subsys: read-only counters of the container, each
// one number as the kernel's read_u64 files are (kernel/cgroup/debug.c:
// debug_taskcount_read, releasable_read).
func (*Subsys) Files() []core.File {
	return []core.File{
		{Name: "taskcount", ReadU64: func(c *core.Container) uint64 { return uint64(c.NumTasksLocked()) }},
		{Name: "childcount", ReadU64: func(c *core.Container) uint64 { return uint64(len(c.ChildrenLocked())) }},
		{Name: "hierarchy_id", ReadU64: func(c *core.Container) uint64 { return uint64(c.Hierarchy().ID()) }},
		{Name: "releasable", ReadU64: func(c *core.Container) uint64 {
			if !c.IsRoot() && c.NumTasksLocked() == 0 && len(c.ChildrenLocked()) == 0 {
				return 1
			}
			return 0
		}},
	}
}
