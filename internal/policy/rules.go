// The cgrules.conf format (libcgroup): rules, loading a main file and
// drop-ins, parsing each line, and destinations with templates.

package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Default places of the rules, as /etc/cgrules.conf and /etc/cgrules.d are
// libcgroup's.
const (
	DefaultRulesFile = "/etc/containerfs/rules.conf"
	DefaultRulesDir  = "/etc/containerfs/rules.d"
)

// UserKind says what a rule's user field names.
type UserKind int

// The kinds of user field.
const (
	AnyUser   UserKind = iota // *
	UserName                  // a user
	GroupName                 // @group
	Ditto                     // %: a continuation of the rule above
)

// Rule is one line of a rules file:
//
//	<user>[:<process name>]  <controllers>  <destination>  [<options>]
type Rule struct {
	File string // where it was read
	Line int
	Text string // the line as written, less its comment

	User    string   // as written: "alice", "@kvm", "*" or "%"
	Kind    UserKind //
	Process string   // "" for any process
	// Controllers are subsystem names, "name=X" for a named hierarchy, or
	// the single "*" for every mounted hierarchy.
	Controllers []string
	// Destination is the path as written, "\" escapes and "%" templates
	// unexpanded.
	Destination string
	Ignore      bool // options: ignore
	IgnoreRT    bool // options: ignore_rt

	// ID is the user's uid or the group's gid, for UserName and GroupName
	// rules whose name resolved when the rules were loaded.
	ID       uint32
	Resolved bool

	// Cont are the continuation (%) lines that follow a rule: the rule
	// places a process in each of their destinations too. Set on the rules
	// of RuleSet.Rules only.
	Cont []*Rule
}

// Where is the rule's place, "file:line".
func (r *Rule) Where() string { return fmt.Sprintf("%s:%d", r.File, r.Line) }

// RuleSet is the rules in force: the main file, then each drop-in file.
type RuleSet struct {
	Rules    []*Rule  // in order, first match wins; continuation lines in Cont
	Files    []string // the files read, in order
	Warnings []string // "file:line: ..." for what libcgroup would skip
}

// Len is the number of rule lines, continuations included.
func (rs *RuleSet) Len() int {
	if rs == nil {
		return 0
	}
	n := 0
	for _, r := range rs.Rules {
		n += 1 + len(r.Cont)
	}
	return n
}

// LineError is one problem in a file, at a line (0 for the whole file).
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseError lists every problem found in a set of files. It wraps EINVAL,
// so the control socket answers a bad file as it would a bad write.
type ParseError struct{ Errs []LineError }

func (e *ParseError) Error() string {
	var b strings.Builder
	for i, le := range e.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(le.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is(err, syscall.EINVAL) hold.
func (e *ParseError) Unwrap() error { return syscall.EINVAL }

// ParseOptions tune parsing.
type ParseOptions struct {
	// Users resolves user and group names (NewSystemUsers if nil).
	Users Users
	// Controllers, if set, are the subsystem names that exist; a rule
	// naming another is an error. "name=X" is always accepted.
	Controllers []string
}

func (o ParseOptions) users() Users {
	if o.Users == nil {
		return NewSystemUsers()
	}
	return o.Users
}

// LoadRules reads the main rules file, then every *.conf file of dir in
// name order. A main file that does not exist counts as empty, and so does
// a missing dir. Every problem in every file is reported, with its line.
func LoadRules(main, dir string, o ParseOptions) (*RuleSet, error) {
	rs := &RuleSet{}
	var pe ParseError
	files := confFiles(main, dir)
	for i, name := range files {
		f, err := os.Open(name)
		if i == 0 && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			pe.Errs = append(pe.Errs, LineError{File: name, Msg: err.Error()})
			continue
		}
		part, err := ParseRules(name, f, o)
		f.Close()
		var fe *ParseError
		if errors.As(err, &fe) {
			pe.Errs = append(pe.Errs, fe.Errs...)
			continue
		} else if err != nil {
			pe.Errs = append(pe.Errs, LineError{File: name, Msg: err.Error()})
			continue
		}
		rs.Rules = append(rs.Rules, part.Rules...)
		rs.Files = append(rs.Files, name)
		rs.Warnings = append(rs.Warnings, part.Warnings...)
	}
	if len(pe.Errs) > 0 {
		return nil, &pe
	}
	return rs, nil
}

// ParseRules parses one rules file; name is used in messages. Every bad
// line is reported, each with its number.
func ParseRules(name string, r io.Reader, o ParseOptions) (*RuleSet, error) {
	users := o.users()
	rs := &RuleSet{Files: []string{name}}
	var errs []LineError
	fail := func(line int, format string, a ...any) {
		errs = append(errs, LineError{File: name, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	warn := func(line int, format string, a ...any) {
		rs.Warnings = append(rs.Warnings, LineError{File: name, Line: line, Msg: fmt.Sprintf(format, a...)}.Error())
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var head *Rule      // the rule a % line continues
	headFailed := false // the rule above was bad: its % lines go with it
	line := 0
	for sc.Scan() {
		line++
		text, fields, err := splitRule(sc.Text())
		if err != nil {
			fail(line, "%v", err)
			head, headFailed = nil, true
			continue
		}
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 {
			fail(line, "want <user>[:<process>] <controllers> <destination> [<options>], got %d field(s)", len(fields))
			if !strings.HasPrefix(fields[0], "%") {
				head, headFailed = nil, true
			}
			continue
		}
		if len(fields) > 4 {
			fail(line, "unexpected %q after the options", fields[4])
			if !strings.HasPrefix(fields[0], "%") {
				head, headFailed = nil, true
			}
			continue
		}
		rule := &Rule{File: name, Line: line, Text: text}
		ok := true
		bad := func(format string, a ...any) { fail(line, format, a...); ok = false }

		// <user>[:<process>]: the name ends at the first colon.
		rule.User, rule.Process, _ = strings.Cut(fields[0], ":")
		hasProc := strings.Contains(fields[0], ":")
		switch {
		case rule.User == "":
			bad("empty user in %q", fields[0])
		case hasProc && rule.Process == "":
			bad("empty process name after %q", rule.User+":")
		case rule.User == "*":
			rule.Kind = AnyUser
		case rule.User == "%":
			rule.Kind = Ditto
			if hasProc {
				bad("a continuation line (%%) takes no process name: the rule it continues chose the process")
			}
		case strings.HasPrefix(rule.User, "@"):
			rule.Kind = GroupName
			if len(rule.User) == 1 {
				bad("empty group name in %q", rule.User)
			} else if gid, found := resolveGroup(users, rule.User[1:]); found {
				rule.ID, rule.Resolved = gid, true
			} else {
				warn(line, "no group %q: the rule is skipped until the rules are reloaded", rule.User[1:])
			}
		default:
			rule.Kind = UserName
			if uid, found := resolveUser(users, rule.User); found {
				rule.ID, rule.Resolved = uid, true
			} else {
				warn(line, "no user %q: the rule is skipped until the rules are reloaded", rule.User)
			}
		}

		if cs, err := parseControllers(fields[1], o.Controllers); err != nil {
			bad("%v", err)
		} else {
			rule.Controllers = cs
		}

		rule.Destination = fields[2]
		if warns, err := checkDestination(rule.Destination); err != nil {
			bad("destination %q: %v", rule.Destination, err)
		} else {
			for _, w := range warns {
				warn(line, "destination %q: %s", rule.Destination, w)
			}
		}

		if len(fields) == 4 {
			for _, opt := range strings.Split(fields[3], ",") {
				switch opt {
				case "ignore":
					rule.Ignore = true
				case "ignore_rt":
					rule.IgnoreRT = true
				default:
					bad("unknown option %q (want ignore or ignore_rt)", opt)
				}
			}
			if rule.Kind == Ditto && (rule.Ignore || rule.IgnoreRT) {
				warn(line, "options of a continuation line have no effect: the rule it continues decides")
			}
		}

		if rule.Kind == Ditto {
			if head == nil {
				if ok && !headFailed {
					bad("a continuation line (%%) with no rule above it to continue")
				}
				continue
			}
			if ok {
				head.Cont = append(head.Cont, rule)
			}
			continue
		}
		head, headFailed = nil, !ok
		if ok {
			rs.Rules = append(rs.Rules, rule)
			head = rule
		}
	}
	if err := sc.Err(); err != nil {
		fail(line+1, "%v", err)
	}
	if len(errs) > 0 {
		return nil, &ParseError{Errs: errs}
	}
	return rs, nil
}

// splitRule strips a comment and splits a line into fields at blanks.
// Double quotes group blanks into a field ("my app", or *:"my app") and are
// removed. A '#' outside quotes starts a comment. It returns the line as
// written, less comment and surrounding blanks.
func splitRule(line string) (text string, fields []string, err error) {
	var cur strings.Builder
	inField, inQuote := false, false
	end := len(line)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '"':
			inQuote = false
		case inQuote:
			cur.WriteByte(c)
		case c == '"':
			inQuote, inField = true, true
		case c == '#':
			end = i
			i = len(line)
		case c == ' ' || c == '\t' || c == '\r':
			if inField {
				fields = append(fields, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteByte(c)
			inField = true
		}
	}
	if inQuote {
		return "", nil, errors.New("unterminated quote")
	}
	if inField {
		fields = append(fields, cur.String())
	}
	return strings.TrimSpace(line[:end]), fields, nil
}

// parseControllers parses "cpu,cpuacct", "name=x" or "*".
func parseControllers(s string, known []string) ([]string, error) {
	if s == "*" {
		return []string{"*"}, nil
	}
	var cs []string
	for _, c := range strings.Split(s, ",") {
		switch {
		case c == "":
			return nil, fmt.Errorf("controllers %q: empty name", s)
		case c == "*":
			return nil, fmt.Errorf("controllers %q: * stands alone, for every mounted controller", s)
		case strings.HasPrefix(c, "name="):
			if len(c) == len("name=") {
				return nil, fmt.Errorf("controllers %q: empty hierarchy name", s)
			}
		case known != nil && !slices.Contains(known, c):
			return nil, fmt.Errorf("unknown controller %q (known: %s)", c, strings.Join(known, ", "))
		}
		if !slices.Contains(cs, c) {
			cs = append(cs, c)
		}
	}
	return cs, nil
}

// checkDestination rejects what could never name a container, and warns
// of a '%' that is no template (libcgroup keeps it as it is).
func checkDestination(dest string) (warnings []string, err error) {
	lit := expandDest(dest, func(byte) (string, bool) { return "x", true })
	for _, part := range strings.Split(lit, "/") {
		if part == ".." {
			return nil, errors.New(`".." would leave the hierarchy`)
		}
		if strings.Contains(part, "\n") {
			return nil, errors.New("a newline cannot be in a container name")
		}
	}
	for i := 0; i < len(dest); i++ {
		switch dest[i] {
		case '\\':
			i++
		case '%':
			if i+1 >= len(dest) || !strings.ContainsRune("uUgGpP", rune(dest[i+1])) {
				warnings = append(warnings, "a '%' that starts no template (%u %U %g %G %p %P) is kept as written; write \\% for a literal one")
			}
			i++
		}
	}
	return warnings, nil
}

// expandDest expands the templates of a destination: val returns the value
// of %c, or false for a letter that is no template, which is kept as
// written. A backslash takes the next character literally.
func expandDest(dest string, val func(c byte) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(dest); i++ {
		switch c := dest[i]; {
		case c == '\\' && i+1 < len(dest):
			i++
			b.WriteByte(dest[i])
		case c == '%' && i+1 < len(dest):
			i++
			if v, ok := val(dest[i]); ok {
				b.WriteString(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(dest[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hasTemplate tells whether a destination uses a template, and so may be
// created on the fly.
func hasTemplate(dest string) bool {
	t := false
	expandDest(dest, func(c byte) (string, bool) {
		if strings.IndexByte("uUgGpP", c) >= 0 {
			t = true
			return "", true
		}
		return "", false
	})
	return t
}

// cleanPath makes a container path absolute and clean: "guests/" and
// "/guests" are both "/guests".
func cleanPath(p string) string { return path.Clean("/" + p) }

// confFiles lists a main file, then every *.conf file of dir (if any) in
// name order: the files LoadRules and LoadConfig read.
func confFiles(main, dir string) []string {
	files := []string{main}
	if dir != "" {
		ms, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
		slices.Sort(ms)
		files = append(files, ms...)
	}
	return files
}
