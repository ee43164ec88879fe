package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func parseConfigFile(t *testing.T, name string) (*Config, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata/config", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ParseConfig(name, f)
}

// summarize renders a Config one line per item, positions left out.
func summarize(c *Config) []string {
	var out []string
	for _, m := range c.Mounts {
		out = append(out, fmt.Sprintf("mount %s=%s", m.Controller, m.Path))
	}
	owner := func(o *Owner) string {
		if o == nil {
			return "-"
		}
		f := func(v int) string {
			if v < 0 {
				return "-"
			}
			return fmt.Sprintf("%o", v)
		}
		s := fmt.Sprintf("%s:%s/d%s/f%s", o.UID, o.GID, f(o.DPerm), f(o.FPerm))
		if o.DUID != "" || o.DGID != "" {
			s += fmt.Sprintf("/dir %s:%s", o.DUID, o.DGID)
		}
		return s
	}
	perm := func(p *Perm) string {
		if p == nil {
			return ""
		}
		return fmt.Sprintf(" perm(task %s admin %s)", owner(p.Task), owner(p.Admin))
	}
	group := func(kw string, g *Group) string {
		s := kw + " " + g.Name + perm(g.Perm)
		for _, c := range g.Controllers {
			var kv []string
			for _, st := range c.Settings {
				kv = append(kv, st.Name+"="+st.Value)
			}
			s += fmt.Sprintf(" %s{%s}", c.Name, strings.Join(kv, ";"))
		}
		return s
	}
	for _, g := range c.Groups {
		out = append(out, group("group", g))
	}
	for _, g := range c.Templates {
		out = append(out, group("template", g))
	}
	if c.Default != nil {
		out = append(out, "default"+perm(c.Default))
	}
	return out
}

func TestParseConfigExamples(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"example1.conf", []string{"mount cpu=/mnt/cgroups/cpu", "mount cpuacct=/mnt/cgroups/cpu"}},
		{"example2.conf", []string{
			"mount cpu=/mnt/cgroups/cpu", "mount name=scheduler=/mnt/cgroups/cpu", "mount name=noctrl=/mnt/cgroups/noctrl",
			"group daemons cpu{cpu.shares=1000}", "group test name=noctrl{}",
		}},
		{"example3.conf", []string{
			"mount cpu=/mnt/cgroups/cpu", "mount cpuacct=/mnt/cgroups/cpu",
			"group daemons/www perm(task root:webmaster/d-/f770 admin root:root/d775/f744) cpu{cpu.shares=1000}",
			"group daemons/ftp perm(task root:ftpmaster/d-/f774 admin root:root/d755/f700) cpu{cpu.shares=500}",
		}},
		{"example4.conf", []string{"mount cpu=/mnt/cgroups/cpu", "mount cpuacct=/mnt/cgroups/cpuacct", "group daemons cpuacct{} cpu{}"}},
		{"example5.conf", []string{
			"mount cpu=/mnt/cgroups/cpu", "mount cpuacct=/mnt/cgroups/cpuacct",
			"group daemons cpuacct{}", "group daemons/www cpu{cpu.shares=1000}", "group daemons/ftp cpu{cpu.shares=500}",
		}},
		{"example6.conf", []string{
			"mount cpu=/mnt/cgroups/cpu", "mount cpuacct=/mnt/cgroups/cpu",
			"group . perm(task root:operator/d-/f- admin root:operator/d-/f-) cpu{}",
			"group daemons perm(task root:daemonmaster/d-/f- admin root:operator/d-/f-) cpu{}",
		}},
		{"example7.conf", []string{
			"mount cpu=/mnt/cgroups/cpu", "mount cpuacct=/mnt/cgroups/cpuacct",
			"group students cpuacct{} cpu{}", "template students/%u cpuacct{} cpu{}",
		}},
		{"spec.conf", []string{
			"mount cpu=/sys/fs/cgroup/cpu", "mount cpuacct=/sys/fs/cgroup/cpu", "mount name=tracking=/sys/fs/cgroup/tracking",
			"mount cpuset,nodev,nosuid,noexec=/sys/fs/cgroup/cpuset",
			"group guests perm(task root:kvm/d-/f660 admin root:root/d775/f664) cpu{cpu.shares=9216} cpuset{cpuset.cpus=1-7;cpuset.mems=0}",
			"group system cpu{cpu.shares=1024}",
			"template guests/%u cpu{cpu.shares=1024}",
			"default perm(task root:root/d-/f- admin root:root/d-/f-)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := parseConfigFile(t, tc.file)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if got := summarize(cfg); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			// What Format writes parses back to the same thing.
			b, err := Format(cfg)
			if err != nil {
				t.Fatalf("Format: %v", err)
			}
			again, err := ParseConfig("formatted", strings.NewReader(string(b)))
			if err != nil {
				t.Fatalf("parse of Format's output: %v\n%s", err, b)
			}
			if got := summarize(again); !slices.Equal(got, tc.want) {
				t.Errorf("after Format and parse: got\n%s\nwant\n%s\nformatted:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), b)
			}
		})
	}
}

func TestParseConfigPositions(t *testing.T) {
	cfg, err := parseConfigFile(t, "example3.conf")
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Groups[1]
	if got, want := g.Pos.String(), "example3.conf:26"; got != want {
		t.Errorf("group position: got %s, want %s", got, want)
	}
	if got, want := g.Controllers[0].Settings[0].Pos.Line, 41; got != want {
		t.Errorf("setting line: got %d, want %d", got, want)
	}
	spec, err := parseConfigFile(t, "spec.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Warnings) != 1 || !strings.Contains(spec.Warnings[0], "spec.conf:18: the systemd section") {
		t.Errorf("got warnings %q, want one for the systemd section at line 18", spec.Warnings)
	}
	if tp := spec.Template("/guests/%u/"); tp == nil || tp.Name != "guests/%u" {
		t.Errorf("Template(/guests/%%u/): got %v, want the guests/%%u template", tp)
	}
}

func TestParseConfigBroken(t *testing.T) {
	tests := []struct {
		file string
		line int
		frag string
	}{
		{"broken-brace.conf", 8, `want ";" after cpu.shares = 100`},
		{"broken-nocontroller.conf", 1, "names no controller"},
		{"broken-perm.conf", 3, "dperm belongs in admin"},
		{"broken-octal.conf", 3, "want octal"},
		{"broken-section.conf", 3, "namespace section is not supported"},
		{"broken-quote.conf", 3, "unterminated quote"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := parseConfigFile(t, tc.file)
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Errs) != 1 {
				t.Fatalf("got %v, want one line error", err)
			}
			le := pe.Errs[0]
			if le.File != tc.file || le.Line != tc.line || !strings.Contains(le.Msg, tc.frag) {
				t.Errorf("got %v, want %s:%d: ...%s...", le, tc.file, tc.line, tc.frag)
			}
		})
	}
}

func TestParseConfigDirOwner(t *testing.T) {
	src := "group d { perm { admin { uid = root; gid = root; duid = alice; dgid = alice; } } cpu { } }\n"
	cfg, err := ParseConfig("d.conf", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"group d perm(task - admin root:root/d-/f-/dir alice:alice) cpu{}"}
	if got := summarize(cfg); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	b, _ := Format(cfg)
	again, err := ParseConfig("f", strings.NewReader(string(b)))
	if err != nil || !slices.Equal(summarize(again), want) {
		t.Errorf("after Format: got %q, %v, want %q", summarize(again), err, want)
	}
	_, err = ParseConfig("t.conf", strings.NewReader("group d { perm { task { duid = alice; } } cpu { } }\n"))
	if err == nil || !strings.Contains(err.Error(), "t.conf:1: duid belongs in admin") {
		t.Errorf("duid in task: got %v", err)
	}
}

func TestFormatQuoting(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cpu.shares", "cpu.shares"},
		{"1-7", "1-7"},
		{"name=x", `"name=x"`},
		{"a b", `"a b"`},
		{"", `""`},
		{"group", `"group"`},
		{"line1\nline2", "\"line1\nline2\""},
	}
	for _, tc := range tests {
		got, err := quote(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("quote(%q): got %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := quote(`say "hi"`); err == nil {
		t.Error(`quote of a value with '"': got no error, want one`)
	}
}

func TestLoadConfigDropIns(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.conf")
	d := filepath.Join(dir, "config.d")
	os.Mkdir(d, 0o755)
	os.WriteFile(main, []byte("group a { cpu { } }\n"), 0o644)
	os.WriteFile(filepath.Join(d, "b.conf"), []byte("template t/%u { cpu { } }\n"), 0o644)
	cfg, err := LoadConfig(main, d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summarize(cfg), []string{"group a cpu{}", "template t/%u cpu{}"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	os.WriteFile(filepath.Join(d, "c.conf"), []byte("group {\n"), 0o644)
	if _, err := LoadConfig(main, d); err == nil || !strings.Contains(err.Error(), "c.conf:1:") {
		t.Errorf("got %v, want an error at c.conf:1", err)
	}
}
