package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
)

// registryMounter mounts hierarchies in a registry only, and remembers
// where, as the daemon's Mount would with FUSE.
type registryMounter struct {
	reg    *core.Registry
	dirs   map[*core.Hierarchy][]string
	mounts []string // "source dir opts"
}

func newMounter(reg *core.Registry) *registryMounter {
	return &registryMounter{reg: reg, dirs: map[*core.Hierarchy][]string{}}
}

func (m *registryMounter) options() ApplyOptions {
	return ApplyOptions{
		Users: testUsers(),
		Mount: func(source, dir, opts string) error {
			h, err := m.reg.Mount(opts)
			if err != nil {
				return err
			}
			m.dirs[h] = append(m.dirs[h], dir)
			m.mounts = append(m.mounts, fmt.Sprintf("%s %s %s", source, dir, opts))
			return nil
		},
		IsMounted: func(dir string) bool {
			for _, ds := range m.dirs {
				if slices.Contains(ds, dir) {
					return true
				}
			}
			return false
		},
	}
}

// loadExample reads a testdata config with /mnt/cgroups moved under dir.
func loadExample(t *testing.T, name, dir string) *Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/config", name))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(b), "/mnt/cgroups", dir)
	cfg, err := ParseConfig(name, strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func attrOf(t *testing.T, reg *core.Registry, ctrl, path, file string) core.Attr {
	t.Helper()
	c, err := reg.ContainerAt(hierarchyFor(reg.Hierarchies(), ctrl), path, false)
	if err != nil {
		t.Fatalf("%s %s: %v", ctrl, path, err)
	}
	if file == "" {
		return c.DirAttr()
	}
	e, ok := c.Lookup(file)
	if !ok {
		t.Fatalf("%s %s: no %s", ctrl, path, file)
	}
	return e.Attr
}

func TestApplyExamples(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		file   string
		mounts []string
		check  func(t *testing.T, reg *core.Registry)
	}{
		{"example1.conf", []string{"cpu DIR/cpu cpu,cpuacct"}, nil},
		{"example2.conf", []string{"cpu DIR/cpu cpu,name=scheduler", "none DIR/noctrl none,name=noctrl"},
			func(t *testing.T, reg *core.Registry) {
				h := hierarchyFor(reg.Hierarchies(), "name=scheduler")
				if h == nil || !slices.Equal(h.Subsystems(), []string{"cpu"}) {
					t.Errorf("got hierarchy %v, want cpu named scheduler", h)
				}
				if got := readValue(t, reg, "cpu", "/daemons", "cpu.shares"); got != "1000" {
					t.Errorf("daemons cpu.shares: got %s, want 1000", got)
				}
				if _, err := reg.ContainerAt(hierarchyFor(reg.Hierarchies(), "name=noctrl"), "/test", false); err != nil {
					t.Errorf("group test in noctrl: %v", err)
				}
			}},
		{"example3.conf", []string{"cpu DIR/cpu cpu,cpuacct"},
			func(t *testing.T, reg *core.Registry) {
				// The manual's listing: admin fperm 744 and 700, task fperm
				// 770 and 774, each masked by the file owner's bits.
				for _, tc := range []struct {
					path, file string
					want       core.Attr
				}{
					{"/daemons/www", "", core.Attr{Mode: 0o775}},
					{"/daemons/www", "cpu.shares", core.Attr{Mode: 0o644}},
					{"/daemons/www", "cpuacct.stat", core.Attr{Mode: 0o444}},
					{"/daemons/www", "cpu.reset", core.Attr{Mode: 0o200}},
					{"/daemons/www", "tasks", core.Attr{Mode: 0o660, GID: 70}},
					{"/daemons/ftp", "", core.Attr{Mode: 0o755}},
					{"/daemons/ftp", "cpu.shares", core.Attr{Mode: 0o600}},
					{"/daemons/ftp", "tasks", core.Attr{Mode: 0o664, GID: 71}},
					{"/daemons", "", core.Attr{Mode: 0o755}},
				} {
					if got := attrOf(t, reg, "cpu", tc.path, tc.file); got != tc.want {
						t.Errorf("%s %s: got %+v, want %+v", tc.path, tc.file, got, tc.want)
					}
				}
				if got := readValue(t, reg, "cpu", "/daemons/ftp", "cpu.shares"); got != "500" {
					t.Errorf("ftp cpu.shares: got %s, want 500", got)
				}
			}},
		{"example5.conf", []string{"cpu DIR/cpu cpu", "cpuacct DIR/cpuacct cpuacct"},
			func(t *testing.T, reg *core.Registry) {
				if _, err := reg.ContainerAt(hierarchyFor(reg.Hierarchies(), "cpuacct"), "/daemons/www", false); err == nil {
					t.Error("www was made in cpuacct, want only in cpu")
				}
				if got := readValue(t, reg, "cpu", "/daemons/www", "cpu.shares"); got != "1000" {
					t.Errorf("www cpu.shares: got %s, want 1000", got)
				}
			}},
		{"example6.conf", []string{"cpu DIR/cpu cpu,cpuacct"},
			func(t *testing.T, reg *core.Registry) {
				if got, want := attrOf(t, reg, "cpu", "/", "cpu.shares"), (core.Attr{Mode: 0o644, GID: 72}); got != want {
					t.Errorf("root cpu.shares: got %+v, want %+v", got, want)
				}
				if got, want := attrOf(t, reg, "cpu", "/daemons", "tasks"), (core.Attr{Mode: 0o644, GID: 73}); got != want {
					t.Errorf("daemons tasks: got %+v, want %+v", got, want)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			d := filepath.Join(dir, strings.TrimSuffix(tc.file, ".conf"))
			reg := core.NewRegistry(testutil.Procs{}, knobs()...)
			m := newMounter(reg)
			if err := Apply(CoreModel{reg}, loadExample(t, tc.file, d), m.options()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			var want []string
			for _, s := range tc.mounts {
				want = append(want, strings.ReplaceAll(s, "DIR", d))
			}
			if !slices.Equal(m.mounts, want) {
				t.Errorf("got mounts %q, want %q", m.mounts, want)
			}
			if tc.check != nil {
				tc.check(t, reg)
			}
			// Applying again mounts nothing more and changes nothing.
			n := len(m.mounts)
			if err := Apply(CoreModel{reg}, loadExample(t, tc.file, d), m.options()); err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			if len(m.mounts) != n {
				t.Errorf("second Apply mounted %q again", m.mounts[n:])
			}
		})
	}
}

func readValue(t *testing.T, reg *core.Registry, ctrl, path, file string) string {
	t.Helper()
	c, err := reg.ContainerAt(hierarchyFor(reg.Hierarchies(), ctrl), path, false)
	if err != nil {
		t.Fatalf("%s %s: %v", ctrl, path, err)
	}
	return strings.TrimSuffix(testutil.Read(t, reg, c, file), "\n")
}

func TestApplyErrors(t *testing.T) {
	reg := core.NewRegistry(testutil.Procs{}, knobs()...)
	reg.Mount("cpu")
	src := `group a { cpu { cpu.shares = 1; } }
group b { freezer { } }
group c { cpu { cpu.nosuch = 1; } }
group d { perm { admin { uid = nobody; } } cpu { } }
group e { cpu { cpu.shares = 300; } }
`
	cfg, err := ParseConfig("bad.conf", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	err = Apply(CoreModel{reg}, cfg, ApplyOptions{Users: testUsers()})
	for _, want := range []string{
		`bad.conf:1: group a: cpu.shares = "1": shares "1": invalid argument`,
		"bad.conf:2: group b: controller freezer is not mounted",
		"bad.conf:3: group c: cpu.nosuch",
		`bad.conf:4: group d: perm: no user "nobody"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
	if !errors.Is(err, syscall.EINVAL) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("got %v, want EINVAL and ENOENT wrapped", err)
	}
	// It carried on past the errors.
	if got := readValue(t, reg, "cpu", "/e", "cpu.shares"); got != "300" {
		t.Errorf("group e: got cpu.shares %s, want 300", got)
	}
}

// dump describes a registry's tree for comparison: per hierarchy and
// container, the owners and modes of every entry and the value of every
// file that can be read and written.
func dump(t *testing.T, reg *core.Registry) []string {
	t.Helper()
	var out []string
	for _, h := range reg.Hierarchies() {
		hl := label(h)
		if h.Options().NoPrefix {
			hl += ",noprefix"
		}
		var walk func(c *core.Container)
		walk = func(c *core.Container) {
			p := c.Path()
			out = append(out, fmt.Sprintf("%s %s/ %+v", hl, p, c.DirAttr()))
			for _, e := range c.List() {
				if e.Child != nil {
					walk(e.Child)
					continue
				}
				line := fmt.Sprintf("%s %s/%s %+v", hl, p, e.File.Name, e.Attr)
				if e.File.Readable() && e.File.Writable() && !slices.Contains(membership, e.File.Name) {
					v, err := reg.ReadFile(c, e.File)
					if err != nil {
						t.Fatal(err)
					}
					line += fmt.Sprintf(" = %q", v)
				}
				out = append(out, line)
			}
		}
		walk(h.Root())
	}
	slices.Sort(out)
	return out
}

// buildLive makes a registry with a bit of everything a snapshot must
// carry: co-mounted, noprefix-free and named hierarchies, nested and
// merged groups, changed and default values, a multi-line value, root
// files, perm sections, and a chown made by hand.
func buildLive(t *testing.T) (*core.Registry, map[*core.Hierarchy][]string) {
	t.Helper()
	reg := core.NewRegistry(testutil.Procs{}, knobs()...)
	m := newMounter(reg)
	dir := t.TempDir()
	src := fmt.Sprintf(`
mount {
	cpu = %[1]s/cpu;
	cpuacct = %[1]s/cpu;
	memory = %[1]s/memory;
	"name=track" = %[1]s/track;
}
group . {
	cpu { release_agent = /sbin/agent; cgroup.clone_children = 1; cpu.shares = 2000; }
}
group guests {
	perm {
		task { uid = qemu; gid = kvm; fperm = 660; }
		admin { uid = root; gid = kvm; dperm = 775; fperm = 664; }
	}
	cpu { cpu.shares = 9216; notify_on_release = 1; }
	cpuacct { cpuacct.entries = "a 1
b 2"; }
	memory { memory.shares = 512; }
}
group guests/alice { cpu { } }
group system { cpu { cpu.shares = 1024; } memory { } }
group deep/er/still { "name=track" { } }
`, dir)
	cfg, err := ParseConfig("live.conf", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(CoreModel{reg}, cfg, m.options()); err != nil {
		t.Fatal(err)
	}
	// A delegation made by hand: chown of a directory alone.
	c, err := reg.ContainerAt(hierarchyFor(reg.Hierarchies(), "memory"), "/system", false)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(1000), uint32(1000)
	if _, err := c.SetAttr(nil, nil, &uid, &gid); err != nil {
		t.Fatal(err)
	}
	return reg, m.dirs
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fresh func() []core.Subsys
	}{
		{"settings that differ from a fresh container", knobs},
		{"every writable setting", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, dirs := buildLive(t)
			cfg, err := Snapshot(live, SnapshotOptions{
				MountDirs: func(h *core.Hierarchy) []string { return dirs[h] },
				Fresh:     tc.fresh,
			})
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			text, err := Format(cfg)
			if err != nil {
				t.Fatalf("Format: %v", err)
			}
			parsed, err := ParseConfig("snapshot", strings.NewReader(string(text)))
			if err != nil {
				t.Fatalf("parse of the snapshot: %v\n%s", err, text)
			}
			fresh := core.NewRegistry(testutil.Procs{}, knobs()...)
			if err := Apply(CoreModel{fresh}, parsed, newMounter(fresh).options()); err != nil {
				t.Fatalf("Apply of the snapshot: %v\n%s", err, text)
			}
			want, got := dump(t, live), dump(t, fresh)
			if !slices.Equal(got, want) {
				for _, l := range want {
					if !slices.Contains(got, l) {
						t.Errorf("missing after the round trip: %s", l)
					}
				}
				for _, l := range got {
					if !slices.Contains(want, l) {
						t.Errorf("unexpected after the round trip: %s", l)
					}
				}
				t.Logf("snapshot:\n%s", text)
			}
			if tc.fresh != nil {
				// Only what differs is written: an untouched default is not.
				if strings.Contains(string(text), "cpu.shares = 1024") && !strings.Contains(string(text), "group system") {
					t.Errorf("snapshot writes a default value:\n%s", text)
				}
				if strings.Contains(string(text), "notify_on_release = 0") {
					t.Errorf("snapshot writes a default notify_on_release:\n%s", text)
				}
			}
		})
	}
}

func TestSnapshotText(t *testing.T) {
	live, dirs := buildLive(t)
	cfg, err := Snapshot(live, SnapshotOptions{MountDirs: func(h *core.Hierarchy) []string { return dirs[h] }, Fresh: knobs})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range cfg.Groups {
		names = append(names, g.Name)
	}
	// Parents first; /system is two groups, as its memory container has
	// another owner than its cpu one.
	want := []string{".", "deep", "deep/er", "deep/er/still", "guests", "guests/alice", "system", "system"}
	if !slices.Equal(names, want) {
		t.Errorf("got groups %q, want %q", names, want)
	}
	// guests inherited clone_children from the root when it was made, so
	// it differs from a fresh container's and is written.
	g := cfg.Groups[4]
	if got := summarize(&Config{Groups: []*Group{g}})[0]; got != "group guests perm(task 107:36/d-/f660 admin 0:36/d775/f664) cpu{notify_on_release=1;cgroup.clone_children=1;cpu.shares=9216} cpuacct{cpuacct.entries=a 1\nb 2} memory{memory.shares=512}" {
		t.Errorf("got %q", got)
	}
}
