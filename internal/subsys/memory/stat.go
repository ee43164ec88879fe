package memory

// memory.stat: its keys in the kernel's order, for a container from its
// processes' figures and for the root from the machine's.

import (
	"strconv"
	"strings"
)

// statKeys are memory.stat's keys in the kernel's order (memcg1_stats,
// memcg1_events, then the LRU lists). thp marks rss_huge, which exists with
// CONFIG_TRANSPARENT_HUGEPAGE; swap marks the keys of CONFIG_SWAP.
var statKeys = []struct {
	name      string
	thp, swap bool
}{
	{name: "cache"},
	{name: "rss"},
	{name: "rss_huge", thp: true},
	{name: "shmem"},
	{name: "mapped_file"},
	{name: "dirty"},
	{name: "writeback"},
	{name: "workingset_refault_anon"},
	{name: "workingset_refault_file"},
	{name: "swap", swap: true},
	{name: "swapcached", swap: true},
	{name: "pgpgin"},
	{name: "pgpgout"},
	{name: "pgfault"},
	{name: "pgmajfault"},
	{name: "inactive_anon"},
	{name: "active_anon"},
	{name: "inactive_file"},
	{name: "active_file"},
	{name: "unevictable"},
}

// statValues maps a key to its value; a missing key is 0: something
// userspace cannot know per container (docs/deviations.md).
type statValues map[string]int64

// containerStat is what we can tell of a non-root container's memory from
// its processes' smaps_rollup and statm: anon and file pages mapped (page
// cache that no process maps is invisible), shmem, anon THPs, swap and
// mlocked pages, and the page faults of its processes while they were in
// it. Dirty and writeback pages, refaults, page-ins and page-outs, and the
// LRU lists are per page in the kernel and not visible per process: 0.
func containerStat(st stats, faults, majFaults uint64) statValues {
	return statValues{
		"cache":       st.file,
		"rss":         st.anon,
		"rss_huge":    min(st.huge, st.anon),
		"shmem":       st.shmem,
		"mapped_file": st.file,
		"swap":        st.swap,
		"pgfault":     int64(faults),
		"pgmajfault":  int64(majFaults),
		"unevictable": st.locked,
	}
}

// machineStat is the whole machine's figures from /proc/vmstat and
// /proc/meminfo, for the root's total_ lines: v1's root memcg counts every
// page.
func machineStat(sys sysStats) statValues {
	vm := sys.vm
	return statValues{
		"cache":                   vm["nr_file_pages"] * pageSize,
		"rss":                     vm["nr_anon_pages"] * pageSize,
		"rss_huge":                sys.anonHuge,
		"shmem":                   vm["nr_shmem"] * pageSize,
		"mapped_file":             vm["nr_mapped"] * pageSize,
		"dirty":                   vm["nr_dirty"] * pageSize,
		"writeback":               vm["nr_writeback"] * pageSize,
		"workingset_refault_anon": vm["workingset_refault_anon"],
		"workingset_refault_file": vm["workingset_refault_file"],
		"swap":                    sys.swapUsed,
		"swapcached":              vm["nr_swapcached"] * pageSize,
		"pgpgin":                  vm["pgpgin"],
		"pgpgout":                 vm["pgpgout"],
		"pgfault":                 vm["pgfault"],
		"pgmajfault":              vm["pgmajfault"],
		"inactive_anon":           vm["nr_inactive_anon"] * pageSize,
		"active_anon":             vm["nr_active_anon"] * pageSize,
		"inactive_file":           vm["nr_inactive_file"] * pageSize,
		"active_file":             vm["nr_active_file"] * pageSize,
		"unevictable":             vm["nr_unevictable"] * pageSize,
	}
}

// subtreeFaults sums the fault counts of st, its descendants, and the
// removed ones.
func subtreeFaults(st *cstate) (faults, maj uint64) {
	faults, maj = st.faults+st.deadFaults, st.majFaults+st.deadMajFaults
	for ch := range st.children {
		f, m := subtreeFaults(ch)
		faults += f
		maj += m
	}
	return faults, maj
}

// formatStat is memory.stat of st. Call with the engine's mu held.
func (e *engine) formatStat(st *cstate) string {
	var local, total statValues
	if st.root {
		// The root's own lines are the machine's minus what its
		// children hold, as the kernel's root memcg holds what no
		// child was charged.
		total = machineStat(e.sys)
		local = statValues{}
		for k, v := range total {
			local[k] = v
		}
		for ch := range st.children {
			f, m := subtreeFaults(ch)
			for k, v := range containerStat(ch.total, f, m) {
				local[k] = max(0, local[k]-v)
			}
		}
	} else {
		local = containerStat(st.local, st.faults, st.majFaults)
		f, m := subtreeFaults(st)
		total = containerStat(st.total, f, m)
	}
	var b strings.Builder
	line := func(prefix string, vals statValues) {
		for _, k := range statKeys {
			if (k.thp && !e.thp) || (k.swap && !e.swapCfg) {
				continue
			}
			b.WriteString(prefix + k.name + " " + strconv.FormatInt(vals[k.name], 10) + "\n")
		}
	}
	line("", local)
	b.WriteString("hierarchical_memory_limit " + strconv.FormatInt(st.effLimit(), 10) + "\n")
	// No memsw limits here: mem+swap is unlimited.
	b.WriteString("hierarchical_memsw_limit " + strconv.FormatInt(unlimited, 10) + "\n")
	line("total_", total)
	return b.String()
}
