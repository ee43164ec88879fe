// The inputs: adversarial writes common to every file, and each file's
// valid and boundary values.
package kdiff

import (
	"strconv"
	"strings"
)

// common are written to every file but tasks and cgroup.procs: empty,
// whitespace, signs, bases, overflow, NUL, many lines, Unicode, huge.
var common = []string{
	"", "\n", "\n\n", " ", "\t", "0", "1", "0\n", "1\n", "1\n\n", " 1", "1 ", "1\t", "\t1\n", "1\r\n",
	"+1", "++1", "-0", "-1", "-1\n", "+-1", "-+1", "1+", "01", "08", "010", "0x", "0x1", "0X1f", "0xg",
	"0b1", "1e3", "1.0", "1k", "one", "1 2", "1\n2", "1,2", "2",
	"18446744073709551615", "18446744073709551616", "99999999999999999999999",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
	"2147483647", "2147483648", "4294967295", "4294967296", "-2147483648", "-2147483649",
	"1\x00", "1\x00junk", "\x001", "x\x00", "1\xa0", "\xa01", "1\xc2\xa0", "\xc2\xa01", "\uff11", "1\u2003",
	"1000000", "1000", "100000", "max", "max\n", " max", "MAX", "max1", "-1 ",
	strings.Repeat("0", 4095) + "1", strings.Repeat("0", 4096) + "1", strings.Repeat("1\n", 3000),
}

// specific are each file's own valid and boundary values.
var specific = map[string][]string{
	"cpu.shares":        {"2", "3", "262144", "262145", "1024\n", "4294967297", "18446744073709551614"},
	"cpu.cfs_period_us": {"999", "1000", "1000000", "1000001", "100000\n"},
	"cpu.cfs_quota_us":  {"999", "1000", "-2", "17592186044415", "17592186044416", "50000"},
	"cpu.cfs_burst_us":  {"100000", "100001", "17592186044415"},
	"cpu.rt_period_us":  {"999", "1000", "1000000", "2000000", "4294967296000"},
	"cpu.rt_runtime_us": {"950000", "950001", "1000000", "4294967296000"},
	"cpu.idle":          {"-1", "2"},
	"cpuset.cpus": {"0-1", "0,0", "1-0", "0-0", "1", "0-", "-1", "0-1\n", "0,1", "0-1,", ",0", "0--1",
		"0-99", "64", "4096", "0:1", " 0", "0 ", "0\t", "0,\n", "0-1:1/2", "0-1:1", "0-1/2"},
	"cpuset.mems":                     {"0", "0-0", "0,0", "1", "0-1", "1-0", "0-", " 0", "0\n", "1024"},
	"cpuset.sched_relax_domain_level": {"-1", "-2", "0", "3", "4", "5", "6", "256", "-1\n", " 1", "1 "},
	"freezer.state": {"FROZEN", "THAWED", "FREEZING", "frozen", "FROZEN\n", " FROZEN", "FROZEN ",
		"FROZEN\n\n", "THAWED\n", "FROZ", "FROZENX", "\xa0FROZEN"},
	"cpuacct.usage": {"0\n", "00", "0x0", "-0", "5"},
	"pids.max": {"4194303", "-", "", "max", "0", "1", "2147483647", "2147483648", "4194304", "4194305", "-0", "max\n",
		"max ", " max", "maxx", "10\n", "+10", "0x10", "010"},
	"release_agent": {"/bin/true", "x"},
}

// safeForProcs are the inputs for tasks and cgroup.procs without our
// sleep's PID: none has a digit sequence that can parse as a PID (0 is the
// writer itself, and no PID exceeds PID_MAX_LIMIT, 4194304).
var safeForProcs = []string{
	"", "\n", " ", "\t", "abc", "-1", "-1\n", "+-1", "-", "+", "0x", "x\x00",
	"99999999999999999999", "-99999999999999999999", "2147483647", "2147483648", "4194305", "-2147483649",
	"\uff11", strings.Repeat(" ", 5000), strings.Repeat("\n", 3000),
}

// inputsFor is the list of inputs for file. In those for tasks and
// cgroup.procs, {pid} and {hex} stand for the PID (decimal, hex) of the
// side's own sleep.
func inputsFor(file string) []string {
	if procFiles[file] {
		return append(append([]string{}, safeForProcs...),
			"{pid}", "{pid}\n", " {pid}", "{pid} ", "+{pid}", "{pid}\n\n", "{pid}\x00junk", "0x{hex}",
			"{pid} x", "{pid}x", "{pid},", "\t{pid}\t")
	}
	return append(append([]string{}, common...), specific[file]...)
}

// subst puts pid in data's placeholders.
func subst(data string, pid int) string {
	return strings.NewReplacer("{pid}", strconv.Itoa(pid), "{hex}", strconv.FormatInt(int64(pid), 16)).Replace(data)
}

// unsubst puts the placeholder back in a value read.
func unsubst(v string, pid int) string {
	return strings.ReplaceAll(v, strconv.Itoa(pid), "{pid}")
}
