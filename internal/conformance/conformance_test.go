package conformance_test

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerfs/containerfs/internal/conformance"
	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	code := m.Run()
	conformance.RemoveHelper()
	os.Exit(code)
}

// TestConformance runs the suite against containerfs, each mount in a daemon
// of its own: the debug subsystem alone, every subsystem (the default mount),
// and a named hierarchy with none.
func TestConformance(t *testing.T) {
	testutil.Short(t)
	for _, tc := range []struct {
		name, opts string
	}{
		{"debug", "debug"},
		{"all", ""},
		{"named", "none,name=conformance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testutil.StartDaemon(t)
			var subsys []string
			switch tc.opts {
			case "debug":
				subsys = []string{"debug"}
			case "":
				subsys = knownSubsys(t, d)
			}
			root := d.Mount(tc.opts)
			conformance.Run(t, root, conformance.Options{Subsys: subsys})
		})
	}
}

// knownSubsys lists the daemon's subsystems, from its /proc/cgroups table.
func knownSubsys(t *testing.T, d *testutil.Daemon) []string {
	t.Helper()
	out, err := d.CLI("lssubsys")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names = append(names, strings.Fields(line)[0])
	}
	if len(names) == 0 {
		t.Fatalf("lssubsys lists no subsystem:\n%s", out)
	}
	return names
}

const kernelHowTo = `set CONFORMANCE_KERNEL_ROOT to a kernel cgroup v1 hierarchy mounted by hand to run the suite against the kernel, e.g.:
	mkdir /tmp/cgv1 && mount -t cgroup -o none,name=conformance cgroup /tmp/cgv1
	CONFORMANCE_KERNEL_ROOT=/tmp/cgv1 go test -run Kernel ./internal/conformance/
	umount /tmp/cgv1 && rmdir /tmp/cgv1
(a hierarchy with cpuset works too: the suite fills in each new cpuset's cpus and mems)`

// TestKernel runs the suite against the kernel's own cgroup v1, where a
// developer has mounted a hierarchy for it. It never creates one itself.
func TestKernel(t *testing.T) {
	testutil.Short(t)
	root := os.Getenv("CONFORMANCE_KERNEL_ROOT")
	if root == "" {
		t.Skip(kernelHowTo)
	}
	testutil.RequireRoot(t)
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatalf("CONFORMANCE_KERNEL_ROOT: %v", err)
	}
	if st.Type != unix.CGROUP_SUPER_MAGIC {
		t.Fatalf("CONFORMANCE_KERNEL_ROOT=%s is not a cgroup v1 filesystem (statfs type %#x)\n%s", root, st.Type, kernelHowTo)
	}
	opts := kernelOptions(t, root)
	t.Logf("kernel hierarchy at %s: %+v", root, opts)
	conformance.Run(t, root, opts)
}

// v1Subsys are the kernel's cgroup v1 controllers, as mount options name
// them.
var v1Subsys = []string{"cpuset", "cpu", "cpuacct", "io", "blkio", "memory", "devices", "freezer",
	"net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug"}

// kernelOptions reads the hierarchy's subsystems, and whether root is its
// root, from /proc/self/mountinfo.
func kernelOptions(t *testing.T, root string) conformance.Options {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The mount that holds root is the longest mount point that is a
	// prefix of it.
	var best []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+3 >= len(fields) || fields[sep+1] != "cgroup" {
			continue
		}
		mp := fields[4]
		if (root == mp || strings.HasPrefix(root, mp+"/")) && (best == nil || len(mp) > len(best[4])) {
			best = fields
		}
	}
	if best == nil {
		t.Fatalf("no cgroup mount holds %s in /proc/self/mountinfo", root)
	}
	sep := slices.Index(best, "-")
	var o conformance.Options
	for _, opt := range strings.Split(best[sep+3], ",") {
		if slices.Contains(v1Subsys, opt) {
			o.Subsys = append(o.Subsys, opt)
		}
	}
	o.NotRoot = root != best[4] || best[3] != "/"
	return o
}
