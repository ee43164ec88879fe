// The kernel's defaults and limits of cpu.shares and cpu.cfs_period_us.

package cpu

import "github.com/containerfs/containerfs/internal/subsys/cpu/sched"

// Defaults and limits of the cpu subsystem, as in the kernel.
const (
	DefaultShares = sched.DefaultShares
	MinShares     = 2
	MaxShares     = 1 << 18
	// DefaultPeriod is cpu.cfs_period_us's default, in ns.
	DefaultPeriod = sched.DefaultPeriod
)
