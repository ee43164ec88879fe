package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// fakeUsers is a user database for tests.
type fakeUsers struct {
	users   map[string]uint32
	groups  map[string]uint32
	members map[uint32][]uint32 // gid → uids listed as members
}

var _ Users = fakeUsers{}

func testUsers() fakeUsers {
	return fakeUsers{
		users: map[string]uint32{"root": 0, "alice": 1000, "bob": 1001, "student": 1002, "peter": 1003, "qemu": 107},
		groups: map[string]uint32{"root": 0, "alice": 1000, "kvm": 36, "admin": 50, "staff": 60,
			"webmaster": 70, "ftpmaster": 71, "operator": 72, "daemonmaster": 73},
		members: map[uint32][]uint32{36: {107}, 50: {1000}},
	}
}

func (f fakeUsers) LookupUser(n string) (uint32, bool)  { id, ok := f.users[n]; return id, ok }
func (f fakeUsers) LookupGroup(n string) (uint32, bool) { id, ok := f.groups[n]; return id, ok }
func (f fakeUsers) UserName(id uint32) (string, bool)   { return nameOf(f.users, id) }
func (f fakeUsers) GroupName(id uint32) (string, bool)  { return nameOf(f.groups, id) }
func (f fakeUsers) InGroup(uid, gid uint32) bool        { return slices.Contains(f.members[gid], uid) }

func nameOf(m map[string]uint32, id uint32) (string, bool) {
	for n, v := range m {
		if v == id {
			return n, true
		}
	}
	return "", false
}

var testControllers = []string{"cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "pids", "debug"}

func parseFile(t *testing.T, name string) (*RuleSet, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata/rules", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ParseRules(name, f, ParseOptions{Users: testUsers(), Controllers: testControllers})
}

// ruleLine is a rule as a test states it.
type ruleLine struct {
	line        int
	kind        UserKind
	user, proc  string
	ctrls       string
	dest        string
	id          uint32
	ignore, irt bool
	cont        int // continuation lines
}

func TestParseRulesFiles(t *testing.T) {
	tests := []struct {
		file string
		want []ruleLine
	}{
		{"manpage.conf", []ruleLine{
			{line: 2, kind: UserName, user: "student", ctrls: "devices", dest: "/usergroup/students", id: 1002},
			{line: 3, kind: UserName, user: "student", proc: "cp", ctrls: "devices", dest: "/usergroup/students/cp", id: 1002},
			{line: 4, kind: GroupName, user: "@admin", ctrls: "*", dest: "admingroup/", id: 50},
			{line: 5, kind: UserName, user: "peter", ctrls: "cpu", dest: "test1/", id: 1003, cont: 1},
			{line: 7, kind: AnyUser, user: "*", ctrls: "*", dest: "default/"},
		}},
		{"spec.conf", []ruleLine{
			{line: 2, kind: GroupName, user: "@kvm", ctrls: "cpu,cpuacct", dest: "guests/%u", id: 36},
			{line: 3, kind: AnyUser, user: "*", proc: "qemu-system-x86_64", ctrls: "cpu", dest: "guests/", cont: 1},
			{line: 5, kind: UserName, user: "root", proc: "sshd", ctrls: "*", dest: "system/"},
			{line: 6, kind: AnyUser, user: "*", ctrls: "cpu", dest: "system/"},
		}},
		{"extended.conf", []ruleLine{
			{line: 2, kind: UserName, user: "alice", proc: "my app", ctrls: "cpu", dest: "apps/my app", id: 1000},
			{line: 3, kind: AnyUser, user: "*", proc: "/usr/bin/rsync", ctrls: "cpu", dest: "batch/%u/%p"},
			{line: 4, kind: AnyUser, user: "*", proc: "two words", ctrls: "cpu", dest: "q/%U-%g-%G-%P"},
			{line: 5, kind: GroupName, user: "@staff", ctrls: "cpu", dest: `staff/\%literal`, id: 60},
			{line: 6, kind: UserName, user: "bob", ctrls: "*", dest: "nothing/", id: 1001, ignore: true},
			{line: 7, kind: AnyUser, user: "*", proc: "chrony", ctrls: "cpu", dest: "rt/", ignore: true, irt: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			rs, err := parseFile(t, tc.file)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if len(rs.Rules) != len(tc.want) {
				t.Fatalf("got %d rules, want %d", len(rs.Rules), len(tc.want))
			}
			for i, w := range tc.want {
				r := rs.Rules[i]
				got := ruleLine{line: r.Line, kind: r.Kind, user: r.User, proc: r.Process, ctrls: strings.Join(r.Controllers, ","),
					dest: r.Destination, id: r.ID, ignore: r.Ignore, irt: r.IgnoreRT, cont: len(r.Cont)}
				if got != w {
					t.Errorf("rule %d: got %+v, want %+v", i, got, w)
				}
				if r.File != tc.file {
					t.Errorf("rule %d: got file %q, want %q", i, r.File, tc.file)
				}
				if (r.Kind == UserName || r.Kind == GroupName) && !r.Resolved {
					t.Errorf("rule %d: %s did not resolve", i, r.User)
				}
			}
		})
	}
}

func TestParseRulesContinuation(t *testing.T) {
	rs, err := parseFile(t, "manpage.conf")
	if err != nil {
		t.Fatal(err)
	}
	peter := rs.Rules[3]
	if len(peter.Cont) != 1 {
		t.Fatalf("got %d continuation lines, want 1", len(peter.Cont))
	}
	c := peter.Cont[0]
	if c.Kind != Ditto || c.Line != 6 || c.Destination != "test2/" || !slices.Equal(c.Controllers, []string{"memory"}) {
		t.Errorf("got continuation %+v, want line 6 memory test2/", c)
	}
	if got, want := c.Text, "%               memory          test2/"; got != want {
		t.Errorf("got text %q, want %q", got, want)
	}
	if got, want := rs.Len(), 6; got != want {
		t.Errorf("got %d lines, want %d", got, want)
	}
}

func TestParseRulesBroken(t *testing.T) {
	_, err := parseFile(t, "broken.conf")
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v, want a *ParseError", err)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("got %v, want it to wrap EINVAL", err)
	}
	want := map[int]string{
		2:  "no rule above",
		3:  "got 2 field(s)",
		4:  `unexpected "extra"`,
		5:  `unknown option "ignor"`,
		6:  "empty user",
		7:  "empty process name",
		8:  "empty name",
		9:  "stands alone",
		10: `unknown controller "cpux"`,
		11: "leave the hierarchy",
		12: "unterminated quote",
		13: "takes no process name",
	}
	got := map[int]string{}
	for _, le := range pe.Errs {
		if le.File != "broken.conf" {
			t.Errorf("got file %q, want broken.conf", le.File)
		}
		if _, dup := got[le.Line]; dup {
			t.Errorf("line %d reported twice: %v", le.Line, pe)
		}
		got[le.Line] = le.Msg
	}
	for line, frag := range want {
		if !strings.Contains(got[line], frag) {
			t.Errorf("line %d: got %q, want it to mention %q", line, got[line], frag)
		}
	}
	for line := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("line %d: got unexpected error %q", line, got[line])
		}
	}
	if !strings.Contains(err.Error(), "broken.conf:10: ") {
		t.Errorf("got message %q, want file:line prefixes", err)
	}
}

func TestParseRulesWarnings(t *testing.T) {
	src := "nobody cpu a/\n% memory b/\n@nogroup cpu c/\n* cpu d/%x\n"
	rs, err := ParseRules("w.conf", strings.NewReader(src), ParseOptions{Users: testUsers()})
	if err != nil {
		t.Fatalf("got error %v, want warnings only", err)
	}
	if len(rs.Rules) != 3 || rs.Rules[0].Resolved || rs.Rules[1].Resolved {
		t.Fatalf("got %d rules (resolved %v %v), want 3 with the first two unresolved", len(rs.Rules), rs.Rules[0].Resolved, rs.Rules[1].Resolved)
	}
	if len(rs.Rules[0].Cont) != 1 {
		t.Errorf("got %d continuation lines on an unresolved rule, want 1", len(rs.Rules[0].Cont))
	}
	for i, frag := range []string{`w.conf:1: no user "nobody"`, `w.conf:3: no group "nogroup"`, "w.conf:4: "} {
		if i >= len(rs.Warnings) || !strings.Contains(rs.Warnings[i], frag) {
			t.Errorf("warning %d: got %q, want %q", i, rs.Warnings, frag)
		}
	}
}

func TestSplitRule(t *testing.T) {
	tests := []struct {
		line   string
		text   string
		fields []string
	}{
		{"  a  b\tc  ", "a  b\tc", []string{"a", "b", "c"}},
		{"a b c # note", "a b c", []string{"a", "b", "c"}},
		{`*:"my app" cpu "x y/#z"`, `*:"my app" cpu "x y/#z"`, []string{"*:my app", "cpu", "x y/#z"}},
		{`"*:a b" cpu d`, `"*:a b" cpu d`, []string{"*:a b", "cpu", "d"}},
		{"# only a comment", "", nil},
		{"", "", nil},
	}
	for _, tc := range tests {
		text, fields, err := splitRule(tc.line)
		if err != nil {
			t.Errorf("%q: got error %v", tc.line, err)
			continue
		}
		if text != tc.text || !slices.Equal(fields, tc.fields) {
			t.Errorf("%q: got %q %q, want %q %q", tc.line, text, fields, tc.text, tc.fields)
		}
	}
}

func TestLoadRulesDropIns(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "rules.conf")
	d := filepath.Join(dir, "rules.d")
	os.Mkdir(d, 0o755)
	os.WriteFile(main, []byte("alice cpu main/\n"), 0o644)
	os.WriteFile(filepath.Join(d, "20-b.conf"), []byte("* cpu b/\n"), 0o644)
	os.WriteFile(filepath.Join(d, "10-a.conf"), []byte("bob cpu a/\n"), 0o644)
	os.WriteFile(filepath.Join(d, "README"), []byte("not rules at all\n"), 0o644)
	rs, err := LoadRules(main, d, ParseOptions{Users: testUsers()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs.Rules {
		got = append(got, r.Destination)
	}
	if want := []string{"main/", "a/", "b/"}; !slices.Equal(got, want) {
		t.Errorf("got destinations %q, want %q (main file, then drop-ins by name)", got, want)
	}

	// A bad drop-in rejects the whole set, naming the file and line.
	os.WriteFile(filepath.Join(d, "30-bad.conf"), []byte("* cpu ok/\n* cpu\n"), 0o644)
	if _, err := LoadRules(main, d, ParseOptions{Users: testUsers()}); err == nil || !strings.Contains(err.Error(), "30-bad.conf:2: ") {
		t.Errorf("got %v, want an error at 30-bad.conf:2", err)
	}

	// A missing main file and directory are no rules, not an error.
	rs, err = LoadRules(filepath.Join(dir, "none.conf"), filepath.Join(dir, "none.d"), ParseOptions{Users: testUsers()})
	if err != nil || len(rs.Rules) != 0 {
		t.Errorf("got %v, %v, want no rules and no error", rs, err)
	}
}

func TestExpandDest(t *testing.T) {
	vals := map[byte]string{'u': "alice", 'U': "1000", 'g': "kvm", 'G': "36", 'p': "qemu", 'P': "42"}
	val := func(c byte) (string, bool) { v, ok := vals[c]; return v, ok }
	tests := []struct{ dest, want string }{
		{"guests/%u", "guests/alice"},
		{"%U/%g/%G/%p/%P", "1000/kvm/36/qemu/42"},
		{`a\%u`, "a%u"},
		{`a\\b`, `a\b`},
		{"a/%x", "a/%x"},
		{"a%", "a%"},
	}
	for _, tc := range tests {
		if got := expandDest(tc.dest, val); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.dest, got, tc.want)
		}
	}
	for dest, want := range map[string]bool{"a/%u": true, `a/\%u`: false, "a/%x": false, "plain/": false} {
		if got := hasTemplate(dest); got != want {
			t.Errorf("hasTemplate(%q): got %v, want %v", dest, got, want)
		}
	}
}
