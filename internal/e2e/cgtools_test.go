package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerfs/containerfs/internal/testutil"
)

// TestCgTools: libcgroup's cgcreate, cgset, cgget, lscgroup and cgdelete,
// as containerfs subcommands, with libcgroup's output formats, checked
// against what the mounts show.
func TestCgTools(t *testing.T) {
	testutil.Short(t)
	d := testutil.StartDaemon(t)
	cpu := d.Mount("cpu,cpuacct")
	mem := d.Mount("memory")
	cli := func(args ...string) string {
		t.Helper()
		out, err := d.CLI(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := d.CLI(args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("containerfs %s: got %q, %v; want an error saying %q", strings.Join(args, " "), out, err, want)
		}
	}

	cli("cgcreate", "-g", "cpu,memory:/a/b")
	for _, dir := range []string{filepath.Join(cpu, "a/b"), filepath.Join(mem, "a/b")} {
		if !exists(t, dir) {
			t.Errorf("cgcreate: %s does not exist", dir)
		}
	}
	t.Cleanup(func() {
		for _, dir := range []string{filepath.Join(cpu, "a/b"), filepath.Join(cpu, "a"), filepath.Join(mem, "a/b"), filepath.Join(mem, "a")} {
			if exists(t, dir) {
				rmdir(t, dir)
			}
		}
	})

	cli("cgset", "-r", "cpu.shares=512", "-r", "memory.limit_in_bytes=64M", "/a/b")
	if got := strings.TrimSpace(testutil.ReadFile(t, filepath.Join(cpu, "a/b/cpu.shares"))); got != "512" {
		t.Errorf("cpu.shares after cgset: got %s, want 512", got)
	}
	if got := strings.TrimSpace(testutil.ReadFile(t, filepath.Join(mem, "a/b/memory.limit_in_bytes"))); got != strconv.Itoa(64<<20) {
		t.Errorf("memory.limit_in_bytes after cgset: got %s, want %d", got, 64<<20)
	}

	if got, want := cli("cgget", "-r", "cpu.shares", "-r", "memory.limit_in_bytes", "/a/b"),
		fmt.Sprintf("/a/b:\ncpu.shares: 512\nmemory.limit_in_bytes: %d\n\n", 64<<20); got != want {
		t.Errorf("cgget -r -r: got %q, want %q", got, want)
	}
	if got, want := cli("cgget", "-nv", "-r", "cpu.shares", "/a/b", "/a"), "512\n1024\n"; got != want {
		t.Errorf("cgget -nv: got %q, want %q", got, want)
	}
	// A whole controller: every cpu.* file, multi-line values indented.
	out := cli("cgget", "-g", "cpu:/a/b")
	if !strings.HasPrefix(out, "/a/b:\n") || !strings.Contains(out, "\ncpu.shares: 512\n") ||
		!strings.Contains(out, "\ncpu.stat: nr_periods 0\n\tnr_throttled 0\n") || strings.Contains(out, "cpuacct.") {
		t.Errorf("cgget -g cpu:/a/b: got %q, want cpu.* files only, cpu.stat's lines after the first indented", out)
	}

	lines := strings.Split(strings.TrimSpace(cli("lscgroup")), "\n")
	for _, want := range []string{"cpu,cpuacct:/", "cpu,cpuacct:/a", "cpu,cpuacct:/a/b", "memory:/", "memory:/a/b"} {
		if !slices.Contains(lines, want) {
			t.Errorf("lscgroup: no line %q in %q", want, lines)
		}
	}
	if got, want := cli("lscgroup", "memory:/a"), "memory:/a\nmemory:/a/b\n"; got != want {
		t.Errorf("lscgroup memory:/a: got %q, want %q", got, want)
	}

	fails("not mounted", "cgcreate", "-g", "pids:/x")
	fails("no file", "cgset", "-r", "cpu.bogus=1", "/a/b")
	fails("names no controller", "cgset", "-r", "notify_on_release=1", "/a/b")
	fails("invalid argument", "cgset", "-r", "cpu.shares=lots", "/a/b")

	// cgdelete: a group with subgroups needs -r; tasks move to the parent.
	pid := sleeper(t)
	if err := testutil.WriteFile(t, filepath.Join(mem, "a/b/cgroup.procs"), strconv.Itoa(pid)); err != nil {
		t.Fatal(err)
	}
	fails("device or resource busy", "cgdelete", "memory:/a")
	cli("cgdelete", "-r", "-g", "memory:/a")
	if exists(t, filepath.Join(mem, "a")) {
		t.Errorf("cgdelete -r memory:/a: %s/a still exists", mem)
	}
	tasks := strings.Fields(testutil.ReadFile(t, filepath.Join(mem, "tasks")))
	if !slices.Contains(tasks, strconv.Itoa(pid)) {
		t.Errorf("after cgdelete -r, task %d is not in the memory root", pid)
	}
	if !exists(t, filepath.Join(cpu, "a/b")) {
		t.Errorf("cgdelete memory:/a removed cpu's /a/b")
	}
	fails("cannot be removed", "cgdelete", "cpu:/")
}
