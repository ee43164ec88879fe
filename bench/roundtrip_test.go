package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/testutil"
)

// rxLine matches go-fuse's debug log line for a request received: its
// opcode, and the caller's TID at the end (0 for the kernel's own).
var rxLine = regexp.MustCompile(`(?m)rx \d+: ([A-Z_]+) .*\bp(\d+)\s*$`)

// fromUs tells whether a request from TID tid is this process's (or the
// kernel's, tid 0): other processes on the machine may stat every mount.
func fromUs(tid int, seen map[int]bool) bool {
	if tid == 0 {
		return true
	}
	ours, ok := seen[tid]
	if !ok {
		st, err := proc.ReadStatus("", tid)
		ours = err == nil && st.TGID == os.Getpid()
		seen[tid] = ours
	}
	return ours
}

// requests runs op and returns the FUSE requests it caused, in order, read
// from the serving process's debug log.
func requests(t *testing.T, log string, op func() error) []string {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	if err := op(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the log catch up
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	seen := map[int]bool{}
	for _, m := range rxLine.FindAllStringSubmatch(string(b), -1) {
		if tid, err := strconv.Atoi(m[2]); err == nil && fromUs(tid, seen) {
			ops = append(ops, m[1])
		}
	}
	return ops
}

// async are the requests the caller does not wait for: whether they reach
// the log within requests' window is a matter of timing.
var async = map[string]bool{"RELEASE": true, "RELEASEDIR": true, "FORGET": true, "BATCH_FORGET": true}

// waited is ops without the asynchronous requests.
func waited(ops []string) []string {
	var out []string
	for _, op := range ops {
		if !async[op] {
			out = append(out, op)
		}
	}
	return out
}

// TestRoundTrips counts the FUSE requests each benchmarked operation costs
// on containerfs and on the floor, with the kernel's caches warm (right
// after the same operation) and cold (1.1 s later, when the 1 s entry and
// attribute timeouts have run out). Its target (bench/README.md, "FUSE
// requests per operation"): containerfs makes the same round trips as the
// floor for every operation.
func TestRoundTrips(t *testing.T) {
	gate(t)
	testutil.Short(t)
	seen := map[string]map[string][]string{} // "op cache" -> system -> sync requests
	sleeper := startHelper(t, 0)
	many := startHelper(t, 1000)
	pid := []byte(strconv.Itoa(sleeper.PID) + "\n")
	buf := make([]byte, readBuf)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-18s %-5s %-12s %s\n", "operation", "cache", "system", "requests")
	for _, s := range systems(t, setup{debug: true, noKernel: true}) {
		for _, name := range []string{"a", "b"} {
			if err := os.Mkdir(filepath.Join(s.dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fillTasks(t, s, 1000, many.TIDs[:1000])
		k := 0
		ops := []struct {
			name string
			do   func() error
		}{
			{"attach", func() error {
				k++
				return writeFile(filepath.Join(s.dir, []string{"a", "b"}[k&1], "tasks"), pid)
			}},
			{"mkdir+rmdir", func() error {
				p := filepath.Join(s.dir, "mr")
				if err := syscall.Mkdir(p, 0o755); err != nil {
					return err
				}
				return syscall.Rmdir(p)
			}},
			{"read tasks n=1", func() error {
				_, err := readFile(filepath.Join(s.dir, []string{"a", "b"}[k&1], "tasks"), buf)
				return err
			}},
			{"read tasks n=1000", func() error {
				_, err := readFile(filepath.Join(s.dir, "m1000", "tasks"), buf)
				return err
			}},
		}
		for _, op := range ops {
			for range 2 {
				if err := op.do(); err != nil {
					t.Fatal(err)
				}
			}
			warm := requests(t, s.log, op.do)
			time.Sleep(1100 * time.Millisecond)
			cold := requests(t, s.log, op.do)
			fmt.Fprintf(&sb, "%-18s %-5s %-12s %d: %s\n", op.name, "warm", s.name, len(warm), strings.Join(warm, " "))
			fmt.Fprintf(&sb, "%-18s %-5s %-12s %d: %s\n", op.name, "cold", s.name, len(cold), strings.Join(cold, " "))
			for cache, reqs := range map[string][]string{"warm": warm, "cold": cold} {
				key := op.name + " " + cache
				if seen[key] == nil {
					seen[key] = map[string][]string{}
				}
				seen[key][s.name] = waited(reqs)
			}
		}
	}
	fmt.Print(sb.String())
	for key, by := range seen {
		floor, cfs := by[floorName], by[cfsName]
		if !slices.Equal(cfs, floor) {
			t.Errorf("%s: containerfs made round trips %v, the floor %v: want the same", key, cfs, floor)
		}
	}
}
