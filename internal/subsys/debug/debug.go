// Package debug is the debug subsystem, as in the original process-containers
// patch: it controls nothing and shows the core's own view of a container, so
// hierarchies with a subsystem can be exercised before any resource
// controller is bound to them.
package debug

import (
	"strconv"

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

// Files implements core.Subsys: read-only counters of the container.
func (*Subsys) Files() []core.File {
	num := func(f func(c *core.Container) int) func(*core.Container) (string, error) {
		return func(c *core.Container) (string, error) { return strconv.Itoa(f(c)) + "\n", nil }
	}
	return []core.File{
		{Name: "taskcount", Read: num(func(c *core.Container) int { return c.NumTasksLocked() })},
		{Name: "childcount", Read: num(func(c *core.Container) int { return len(c.ChildrenLocked()) })},
		{Name: "hierarchy_id", Read: num(func(c *core.Container) int { return c.Hierarchy().ID() })},
		{Name: "releasable", Read: num(func(c *core.Container) int {
			if !c.IsRoot() && c.NumTasksLocked() == 0 && len(c.ChildrenLocked()) == 0 {
				return 1
			}
			return 0
		})},
	}
}
