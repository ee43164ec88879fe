package memory

// Reading /proc for the sampler: statm, smaps_rollup and stat of a
// process through files kept open, and the machine's vmstat, meminfo and
// vm.swappiness.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
)

// statm is what /proc/PID/statm says of a process's memory, in bytes.
type statm struct {
	resident int64 // every resident page mapped: anon, file and shmem
	shared   int64 // the file and shmem part of resident
}

// rollup is the part of /proc/PID/smaps_rollup we use, in bytes. The Pss
// figures split each page among the processes that map it.
type rollup struct {
	rss, pss                   int64
	pssAnon, pssFile, pssShmem int64
	anonHuge, swapPss, locked  int64
	anonymous                  int64
	haveSplit                  bool // Pss_Anon and friends were there (Linux 5.8+)
}

// parseStatm reads "size resident shared text lib data dt", in pages.
func parseStatm(b []byte) (statm, error) {
	f := bytes.Fields(b)
	if len(f) < 3 {
		return statm{}, fmt.Errorf("malformed statm %q", b)
	}
	res, err1 := strconv.ParseInt(string(f[1]), 10, 64)
	shr, err2 := strconv.ParseInt(string(f[2]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return statm{}, fmt.Errorf("malformed statm %q: %w", b, err)
	}
	return statm{resident: res * pageSize, shared: shr * pageSize}, nil
}

// parseRollup reads the "Key:   N kB" lines of smaps_rollup.
func parseRollup(b []byte) (rollup, error) {
	var r rollup
	seen := false
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			continue // the header line, with the address range
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return rollup{}, fmt.Errorf("smaps_rollup %s: %w", key, err)
		}
		v *= 1024
		switch string(key) {
		case "Rss":
			r.rss, seen = v, true
		case "Pss":
			r.pss = v
		case "Pss_Anon":
			r.pssAnon, r.haveSplit = v, true
		case "Pss_File":
			r.pssFile = v
		case "Pss_Shmem":
			r.pssShmem = v
		case "AnonHugePages":
			r.anonHuge = v
		case "SwapPss":
			r.swapPss = v
		case "Locked":
			r.locked = v
		case "Anonymous":
			r.anonymous = v
		}
	}
	if !seen {
		return rollup{}, fmt.Errorf("smaps_rollup has no Rss line")
	}
	if !r.haveSplit {
		// Before Linux 5.8 there is no Pss_Anon: assume the anon part of
		// Pss is in the same proportion as in Rss.
		if r.rss > 0 {
			r.pssAnon = r.pss * r.anonymous / r.rss
		}
		r.pssFile = r.pss - r.pssAnon
	}
	return r, nil
}

// procFiles are the open /proc files of one process. Each read is a pread
// at offset 0, which makes procfs generate the file afresh: about 5 µs
// here against 20-40 µs for open+read+close. An open file keeps naming the
// process it was opened for: once that one is gone, reads fail (or, for a
// zombie, show zeros), even if its PID is reused.
type procFiles struct {
	statm, stat, rollup *os.File
	buf                 []byte
}

// openProc opens tgid's files and checks that they belong to the process
// that started at start (clock ticks since boot; 0: whichever it is).
func openProc(root string, tgid int, start uint64) (*procFiles, error) {
	pf := &procFiles{buf: make([]byte, 4096)}
	var err error
	if pf.stat, err = os.Open(proc.Path(root, tgid, "stat")); err != nil {
		return nil, err
	}
	if pf.statm, err = os.Open(proc.Path(root, tgid, "statm")); err != nil {
		pf.close()
		return nil, err
	}
	if pf.rollup, err = os.Open(proc.Path(root, tgid, "smaps_rollup")); err != nil {
		pf.close()
		return nil, err
	}
	// Opened first, checked second: if the start time matches now, the
	// files name that process, whatever becomes of the PID later. start
	// is the model's (a fork event's, maybe): Holds.
	got, err := pf.readStat()
	if err != nil {
		pf.close()
		return nil, err
	}
	if start != 0 && !(proc.ID{TID: tgid, Start: start}).Holds(got.ID()) {
		pf.close()
		return nil, fmt.Errorf("process %d: started at %d, not %d: %w", tgid, got.Start, start, syscall.ESRCH)
	}
	return pf, nil
}

func (pf *procFiles) close() {
	for _, f := range []*os.File{pf.stat, pf.statm, pf.rollup} {
		if f != nil {
			f.Close()
		}
	}
}

// read preads all of f into pf.buf, growing it as needed.
func (pf *procFiles) read(f *os.File) ([]byte, error) {
	for {
		n, err := f.ReadAt(pf.buf, 0)
		if n < len(pf.buf) {
			if n == 0 && err != nil {
				return nil, err
			}
			return pf.buf[:n], nil
		}
		pf.buf = make([]byte, 2*len(pf.buf))
	}
}

func (pf *procFiles) readStatm() (statm, error) {
	b, err := pf.read(pf.statm)
	if err != nil {
		return statm{}, err
	}
	return parseStatm(b)
}

// readStat reads and parses the process's stat afresh.
func (pf *procFiles) readStat() (proc.Stat, error) {
	b, err := pf.read(pf.stat)
	if err != nil {
		return proc.Stat{}, err
	}
	return proc.ParseStat(b)
}

// readRollup reads smaps_rollup, and statm just after it so the two can be
// compared later, and says how long the walk took: the kernel walks every
// page table of the process (about 1.4 ms for 100 MB, 6 ms for 1 GB here).
func (pf *procFiles) readRollup() (rollup, statm, time.Duration, error) {
	t0 := time.Now()
	b, err := pf.read(pf.rollup)
	if err != nil {
		return rollup{}, statm{}, 0, err
	}
	cost := time.Since(t0)
	if len(b) == 0 {
		// A process with no mm (a zombie, or gone): nothing mapped.
		return rollup{}, statm{}, cost, nil
	}
	r, err := parseRollup(b)
	if err != nil {
		return rollup{}, statm{}, cost, err
	}
	sm, err := pf.readStatm()
	return r, sm, cost, err
}

// readTaskStart reads one thread's start time, from /proc/TGID/task/TID.
func readTaskStart(root string, tgid, tid int) (uint64, error) {
	var buf [proc.StatBufSize]byte
	b, err := proc.ReadSmall(fmt.Sprintf("%s/%d/task/%d/stat", root, tgid, tid), buf[:])
	if err != nil {
		return 0, err
	}
	st, err := proc.ParseStat(b)
	return st.Start, err
}

// readOOMScoreAdj reads /proc/PID/oom_score_adj (-1000..1000).
func readOOMScoreAdj(root string, pid int) (int64, error) {
	b, err := os.ReadFile(proc.Path(root, pid, "oom_score_adj"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// sysStats are the machine's figures, for the root container: the kernel's
// root memcg counts every page on the machine.
type sysStats struct {
	vm         map[string]int64 // /proc/vmstat
	swapUsed   int64            // bytes: SwapTotal - SwapFree
	anonHuge   int64            // bytes: AnonHugePages
	swappiness uint64           // vm.swappiness
}

func readSys(root string) (sysStats, error) {
	st := sysStats{vm: map[string]int64{}}
	b, err := os.ReadFile(root + "/vmstat")
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			st.vm[k] = n
		}
	}
	b, err = os.ReadFile(root + "/meminfo")
	if err != nil {
		return st, err
	}
	mi := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			mi[k] = n * 1024
		}
	}
	st.swapUsed = max(0, mi["SwapTotal"]-mi["SwapFree"])
	st.anonHuge = mi["AnonHugePages"]
	st.swappiness = readSwappiness(root)
	return st, nil
}

// readSwappiness is vm.swappiness, 60 if it cannot be read.
func readSwappiness(root string) uint64 {
	b, err := os.ReadFile(root + "/sys/vm/swappiness")
	if err != nil {
		return 60
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 60
	}
	return v
}
