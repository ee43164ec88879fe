package cpuacct

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerfs/containerfs/internal/subsys/cpulist"
)

// The machine's figures: possible CPUs, and /proc/stat for the root's files.

// possibleCPUs is how many columns the kernel's per-CPU files have: one
// per possible CPU (for_each_possible_cpu).
func possibleCPUs() int {
	n, err := cpulist.PossibleCPUs()
	if err != nil {
		return runtime.NumCPU()
	}
	return n
}

// procStat is what the root's files show: the machine's CPU time by CPU,
// from /proc/stat. The kernel's root cpuacct shows kernel_cpustat for its
// user and system figures, which is what /proc/stat prints, and charges
// every task to its usage; /proc/stat's busy time (user, nice, system, irq,
// softirq) is that usage to the tick, in 10 ms units.
type procStat struct {
	cpus  []counters
	btime uint64 // boot time, seconds since the epoch
}

func readProcStat(path string, ncpu int) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b, ncpu)
}

func parseProcStat(b []byte, ncpu int) (procStat, error) {
	ps := procStat{cpus: make([]counters, ncpu)}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "btime" && len(f) == 2 {
			ps.btime, _ = strconv.ParseUint(f[1], 10, 64)
			continue
		}
		rest, ok := strings.CutPrefix(f[0], "cpu")
		if !ok || rest == "" {
			continue
		}
		cpu, err := strconv.Atoi(rest)
		if err != nil || cpu < 0 || cpu >= ncpu || len(f) < 8 {
			continue
		}
		var v [7]uint64 // user nice system idle iowait irq softirq
		for i := range v {
			if v[i], err = strconv.ParseUint(f[1+i], 10, 64); err != nil {
				return procStat{}, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
		}
		user := (v[0] + v[1]) * nsPerTick
		sys := (v[2] + v[5] + v[6]) * nsPerTick
		ps.cpus[cpu] = counters{usage: user + sys, user: user, sys: sys}
	}
	return ps, sc.Err()
}
