// The model as /proc shows cgroup v1: a task's /proc/PID/cgroup lines and
// the /proc/cgroups table.

package daemon

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
)

// CgroupLines is task pid's /proc/PID/cgroup, as the model has it.
func (d *Daemon) CgroupLines(pid int) ([]string, error) {
	ws, ok := d.Reg.Where(pid)
	if !ok {
		return nil, fmt.Errorf("task %d: %w", pid, syscall.ESRCH)
	}
	lines := make([]string, 0, len(ws))
	for _, w := range ws {
		lines = append(lines, fmt.Sprintf("%d:%s:%s", w.Hierarchy.ID(), hierarchyLabel(w.Hierarchy), w.Path))
	}
	return lines, nil
}

// hierarchyLabel is the middle field of /proc/PID/cgroup: the subsystems,
// then name=X for a named hierarchy.
func hierarchyLabel(h *core.Hierarchy) string {
	parts := h.Subsystems()
	if name := h.Options().Name; name != "" {
		parts = append(parts, "name="+name)
	}
	return strings.Join(parts, ",")
}

// ProcCgroups is the /proc/cgroups table.
func (d *Daemon) ProcCgroups() []string {
	lines := []string{"#subsys_name\thierarchy\tnum_cgroups\tenabled"}
	for _, s := range d.Reg.Stats() {
		en := 0
		if s.Enabled {
			en = 1
		}
		lines = append(lines, fmt.Sprintf("%s\t%d\t%d\t%d", s.Subsys, s.Hierarchy, s.Containers, en))
	}
	return lines
}
