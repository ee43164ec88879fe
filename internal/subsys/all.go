// Package subsys lists every subsystem containerfs knows, in the order the
// kernel lists its cgroup v1 controllers (mount options, /proc/cgroups).
package subsys

import (
	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/subsys/cpu"
	"github.com/containerfs/containerfs/internal/subsys/cpuacct"
	"github.com/containerfs/containerfs/internal/subsys/cpuset"
	"github.com/containerfs/containerfs/internal/subsys/debug"
	"github.com/containerfs/containerfs/internal/subsys/freezer"
	"github.com/containerfs/containerfs/internal/subsys/memory"
	"github.com/containerfs/containerfs/internal/subsys/pids"
)

// All makes a fresh instance of every known subsystem, in order.
func All() []core.Subsys {
	return []core.Subsys{
		&cpuset.Subsys{},
		&cpu.Subsys{},
		&cpuacct.Subsys{},
		&memory.Subsys{},
		&freezer.Subsys{},
		&pids.Subsys{},
		&debug.Subsys{},
	}
}
