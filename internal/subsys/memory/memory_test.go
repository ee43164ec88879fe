package memory

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
)

func TestFilesRoot(t *testing.T) {
	f := newFixture(t)
	root := f.h.Root()
	var names []string
	for _, bf := range f.h.Files(root) {
		if strings.HasPrefix(bf.Name, "memory.") {
			names = append(names, bf.Name)
		}
	}
	want := []string{"memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.limit_in_bytes",
		"memory.soft_limit_in_bytes", "memory.failcnt", "memory.stat", "memory.force_empty",
		"memory.use_hierarchy", "memory.swappiness", "memory.move_charge_at_immigrate", "memory.oom_control"}
	if !slices.Equal(names, want) {
		t.Errorf("root files: got %v, want %v", names, want)
	}
	if got := f.File(root, "memory.force_empty").Perm(); got != 0o200 {
		t.Errorf("force_empty mode: got %o, want 200 (write-only)", got)
	}
	f.Want(root, "memory.limit_in_bytes", "9223372036854771712\n")
	f.Want(root, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	f.Want(root, "memory.swappiness", "30\n")
	f.Want(root, "memory.use_hierarchy", "1\n")

	tests := []struct {
		file, data string
		err        error
		read       string // what the file reads afterwards, if not ""
	}{
		{file: "memory.limit_in_bytes", data: "100M", err: syscall.EINVAL, read: "9223372036854771712\n"},
		{file: "memory.limit_in_bytes", data: "-1", err: syscall.EINVAL},
		{file: "memory.limit_in_bytes", data: "junk", err: syscall.EINVAL},
		{file: "memory.soft_limit_in_bytes", data: "1G", read: "1073741824\n"},
		{file: "memory.soft_limit_in_bytes", data: "-1", read: "9223372036854771712\n"},
		{file: "memory.oom_control", data: "1", err: syscall.EINVAL, read: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
		{file: "memory.oom_control", data: "0", err: syscall.EINVAL},
		{file: "memory.force_empty", data: "0", err: syscall.EINVAL},
		{file: "memory.swappiness", data: "10", err: syscall.EPERM, read: "30\n"},
		{file: "memory.swappiness", data: "201", err: syscall.EINVAL},
		{file: "memory.use_hierarchy", data: "1"},
		{file: "memory.use_hierarchy", data: "0", err: syscall.EINVAL},
		{file: "memory.move_charge_at_immigrate", data: "3", read: "3\n"},
		{file: "memory.failcnt", data: "0", read: "0\n"},
		{file: "memory.max_usage_in_bytes", data: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.file+"="+tc.data, func(t *testing.T) {
			err := f.Write(root, tc.file, tc.data)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("write %q to root's %s: got %v, want %v", tc.data, tc.file, err, tc.err)
			}
			if tc.read != "" {
				f.Want(root, tc.file, tc.read)
			}
		})
	}
}

func TestFilesChild(t *testing.T) {
	f := newFixture(t)
	a := f.Mkdir(f.h.Root(), "a")
	f.Want(a, "memory.limit_in_bytes", "9223372036854771712\n")
	f.Want(a, "memory.soft_limit_in_bytes", "9223372036854771712\n")
	f.Want(a, "memory.usage_in_bytes", "0\n")
	f.Want(a, "memory.max_usage_in_bytes", "0\n")
	f.Want(a, "memory.failcnt", "0\n")
	f.Want(a, "memory.swappiness", "30\n") // the root's, vm.swappiness
	f.Want(a, "memory.move_charge_at_immigrate", "0\n")
	f.Want(a, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")

	tests := []struct {
		file, data string
		err        error
		read       string
	}{
		{file: "memory.limit_in_bytes", data: "100M", read: "104857600\n"},
		{file: "memory.limit_in_bytes", data: "4097", read: "4096\n"},
		{file: "memory.limit_in_bytes", data: "1g\n", read: "1073741824\n"},
		{file: "memory.limit_in_bytes", data: " \t2g \n", read: "2147483648\n"}, // a string handler: strstrip
		{file: "memory.limit_in_bytes", data: "-1", read: "9223372036854771712\n"},
		{file: "memory.limit_in_bytes", data: "100MB", err: syscall.EINVAL, read: "9223372036854771712\n"},
		{file: "memory.limit_in_bytes", data: "-5", err: syscall.EINVAL},
		{file: "memory.limit_in_bytes", data: "0", read: "0\n"}, // empty: usage 0
		{file: "memory.limit_in_bytes", data: "-1", read: "9223372036854771712\n"},
		{file: "memory.soft_limit_in_bytes", data: "64k", read: "65536\n"},
		{file: "memory.swappiness", data: "0", read: "0\n"},
		{file: "memory.swappiness", data: "200\n", read: "200\n"},
		{file: "memory.swappiness", data: "201", err: syscall.EINVAL, read: "200\n"},
		{file: "memory.swappiness", data: "-1", err: syscall.EINVAL},
		{file: "memory.swappiness", data: " 5", err: syscall.EINVAL}, // write_u64: no stripping
		{file: "memory.swappiness", data: "0x10", read: "16\n"},
		// write_u64 files are parsed by kstrtoull: ERANGE beyond 64 bits,
		// and no whitespace but one trailing newline.
		{file: "memory.swappiness", data: "18446744073709551616", err: syscall.ERANGE, read: "16\n"},
		{file: "memory.move_charge_at_immigrate", data: "1\n\n", err: syscall.EINVAL},
		{file: "memory.use_hierarchy", data: "1 ", err: syscall.EINVAL},
		{file: "memory.oom_control", data: "1", read: "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n"},
		{file: "memory.oom_control", data: "0\n", read: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
		{file: "memory.oom_control", data: "2", err: syscall.EINVAL},
		{file: "memory.oom_control", data: "yes", err: syscall.EINVAL},
		{file: "memory.oom_control", data: " 1", err: syscall.EINVAL, read: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
		{file: "memory.oom_control", data: "99999999999999999999", err: syscall.ERANGE},
		{file: "memory.move_charge_at_immigrate", data: "1", read: "1\n"},
		{file: "memory.move_charge_at_immigrate", data: "4", err: syscall.EINVAL, read: "1\n"},
		{file: "memory.move_charge_at_immigrate", data: "0", read: "0\n"},
		{file: "memory.use_hierarchy", data: "1", read: "1\n"},
		{file: "memory.use_hierarchy", data: "0", err: syscall.EINVAL, read: "1\n"},
		{file: "memory.force_empty", data: "0"},
		{file: "memory.force_empty", data: "anything"},
		{file: "memory.failcnt", data: "junk", read: "0\n"}, // any write resets
	}
	for _, tc := range tests {
		t.Run(tc.file+"="+tc.data, func(t *testing.T) {
			err := f.Write(a, tc.file, tc.data)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("write %q to %s: got %v, want %v", tc.data, tc.file, err, tc.err)
			}
			if tc.read != "" {
				f.Want(a, tc.file, tc.read)
			}
		})
	}

	// A child inherits swappiness and oom_kill_disable (mem_cgroup_css_alloc).
	f.MustWrite(a, "memory.swappiness", "7")
	f.MustWrite(a, "memory.oom_control", "1")
	b := f.Mkdir(a, "b")
	f.Want(b, "memory.swappiness", "7\n")
	f.Want(b, "memory.oom_control", "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n")
}

func TestUsageAndStat(t *testing.T) {
	f := newFixture(t)
	root := f.h.Root()
	p := f.Mkdir(root, "p")
	a := f.Mkdir(p, "a")
	b := f.Mkdir(p, "b")
	// 100 maps 4 MiB of file pages shared with others: its Pss counts
	// only its share of them (2 MiB), as Pss splits a page among its users.
	f.process(100, 50, mem{rss: 30, shared: 4, pss: 20, anon: 18})
	f.process(200, 51, mem{rss: 50, pss: 50, anon: 50})
	f.process(300, 52, mem{rss: 10, pss: 10, anon: 10})
	f.attach(a, 100, true)
	f.attach(b, 200, true)
	f.attach(p, 300, true)
	f.tick(true)

	f.Want(a, "memory.usage_in_bytes", strconv.Itoa(20*mib)+"\n")
	f.Want(b, "memory.usage_in_bytes", strconv.Itoa(50*mib)+"\n")
	f.Want(p, "memory.usage_in_bytes", strconv.Itoa(80*mib)+"\n") // hierarchical
	for _, tc := range []struct {
		c    string
		key  string
		want int64
	}{
		{"a", "rss", 18 * mib}, {"a", "cache", 2 * mib}, {"a", "mapped_file", 2 * mib},
		{"a", "total_rss", 18 * mib},
		{"p", "rss", 10 * mib}, {"p", "cache", 0},
		{"p", "total_rss", 78 * mib}, {"p", "total_cache", 2 * mib},
		{"p", "hierarchical_memory_limit", unlimited},
		{"p", "pgfault", 0}, // attached, not born here: earlier faults are not ours
	} {
		c := map[string]*core.Container{"a": a, "p": p}[tc.c]
		if got := f.stat(c, tc.key); got != tc.want {
			t.Errorf("%s memory.stat %s: got %d, want %d", tc.c, tc.key, got, tc.want)
		}
	}

	// The root's figures are the machine's (fake /proc/vmstat).
	f.Want(root, "memory.usage_in_bytes", strconv.Itoa(1500*4096)+"\n")
	if got, want := f.stat(root, "total_cache"), int64(1000*4096); got != want {
		t.Errorf("root total_cache: got %d, want %d", got, want)
	}
	if got, want := f.stat(root, "cache"), int64(1000*4096-2*mib); got != want {
		t.Errorf("root cache (the machine's less the children's): got %d, want %d", got, want)
	}
	if got, want := f.stat(root, "total_pgfault"), int64(123456); got != want {
		t.Errorf("root total_pgfault: got %d, want %d", got, want)
	}
	if got, want := f.stat(root, "total_swap"), int64(40<<10); got != want {
		t.Errorf("root total_swap: got %d, want %d", got, want)
	}

	// Faults after the move count, in the container and above.
	f.writeProc("300/stat", "300 (proc300) S 1 1 1 0 -1 0 3005 0 302 0 0 0 0 0 20 0 1 0 52 0 0\n")
	f.tick(true)
	if got, want := f.stat(p, "pgfault"), int64(7); got != want {
		t.Errorf("p pgfault after 7 more faults: got %d, want %d", got, want)
	}
	if got, want := f.stat(p, "pgmajfault"), int64(2); got != want {
		t.Errorf("p pgmajfault after 2 more: got %d, want %d", got, want)
	}

	// max_usage_in_bytes keeps the peak; a write resets it to the usage.
	f.setMem(200, mem{rss: 10, pss: 10, anon: 10})
	f.tick(true)
	f.Want(b, "memory.usage_in_bytes", strconv.Itoa(10*mib)+"\n")
	f.Want(b, "memory.max_usage_in_bytes", strconv.Itoa(50*mib)+"\n")
	f.MustWrite(b, "memory.max_usage_in_bytes", "0")
	f.Want(b, "memory.max_usage_in_bytes", strconv.Itoa(10*mib)+"\n")

	// A removed child's faults stay in its parent's total_.
	f.exit(100)
	f.tick(true)
	f.exit(200)
	if err := f.Reg.Rmdir(p, "b", core.Caller{}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.stat(p, "total_pgfault"), int64(7); got != want {
		t.Errorf("p total_pgfault after rmdir b: got %d, want %d", got, want)
	}
}
