package cpu

// Defaults and limits of the cpu subsystem, as in the kernel.
const (
	DefaultShares = 1024
	MinShares     = 2
	MaxShares     = 1 << 18
	// DefaultPeriod is cpu.cfs_period_us's default, in ns.
	DefaultPeriod = 100e6
)
