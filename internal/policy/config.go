// The cgconfig.conf format (libcgroup): its types, loading a main file and
// drop-ins, parsing, and writing a Config back (Format).

package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Default places of the declarative setup, as /etc/cgconfig.conf and
// /etc/cgconfig.d are libcgroup's.
const (
	DefaultConfigFile = "/etc/containerfs/config.conf"
	DefaultConfigDir  = "/etc/containerfs/config.d"
)

// Pos is a place in a configuration file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Config is a cgconfig.conf file: mounts, groups, templates and the
// default permissions, in the order written.
type Config struct {
	Mounts    []Mount
	Groups    []*Group
	Templates []*Group
	Default   *Perm    // the default section's permissions, if any
	Warnings  []string // "file:line: ..." for sections read and ignored
}

// Mount is one line of the mount section: controller = path.
type Mount struct {
	// Controller is as written, quotes removed: "cpu", "name=x", or a
	// controller with mount options, "cpuset,noprefix".
	Controller string
	Path       string
	Pos        Pos
}

// Group is a group or template section.
type Group struct {
	Name        string // "daemons/www"; "." is the root container
	Perm        *Perm
	Controllers []*Controller // in file order
	Pos         Pos
}

// Controller is a controller's section of a group: the hierarchy the group
// is made in, and the files written there.
type Controller struct {
	Name     string // "cpu", or "name=x"
	Settings []Setting
	Pos      Pos
}

// Setting is one "file = value;" line.
type Setting struct {
	Name, Value string
	Pos         Pos
}

// Perm is a perm section.
type Perm struct {
	Task  *Owner // owner and mode of the tasks file
	Admin *Owner // owner and modes of the directory and every other file
}

// Owner is a task or admin section. Unset fields leave things as they are,
// except that an unset uid or gid means root, as in libcgroup.
type Owner struct {
	UID, GID     string // names or numbers, "" for unset
	FPerm, DPerm int    // -1 for unset
	// DUID and DGID (admin only) own the directory when it is not the
	// files' owner: a containerfs extension, for the delegation the
	// kernel documents (chown of the directory alone, so the delegate can
	// make children but not raise its own limits). libcgroup's grammar
	// gives the directory and the files one owner; "" follows UID/GID.
	DUID, DGID string
	Pos        Pos
}

// LoadConfig reads the main file, then every *.conf file of dir in name
// order, into one Config. A main file that does not exist counts as empty.
func LoadConfig(main, dir string) (*Config, error) {
	cfg := &Config{}
	var pe ParseError
	files := confFiles(main, dir)
	for i, name := range files {
		b, err := os.ReadFile(name)
		if i == 0 && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			pe.Errs = append(pe.Errs, LineError{File: name, Msg: err.Error()})
			continue
		}
		part, err := ParseConfig(name, strings.NewReader(string(b)))
		var fe *ParseError
		if errors.As(err, &fe) {
			pe.Errs = append(pe.Errs, fe.Errs...)
			continue
		} else if err != nil {
			pe.Errs = append(pe.Errs, LineError{File: name, Msg: err.Error()})
			continue
		}
		cfg.Mounts = append(cfg.Mounts, part.Mounts...)
		cfg.Groups = append(cfg.Groups, part.Groups...)
		cfg.Templates = append(cfg.Templates, part.Templates...)
		cfg.Warnings = append(cfg.Warnings, part.Warnings...)
		if part.Default != nil {
			cfg.Default = part.Default
		}
	}
	if len(pe.Errs) > 0 {
		return nil, &pe
	}
	return cfg, nil
}

// Template finds the template section named name (slashes at either end
// do not count).
func (c *Config) Template(name string) *Group {
	if c == nil {
		return nil
	}
	name = strings.Trim(name, "/")
	for _, t := range c.Templates {
		if strings.Trim(t.Name, "/") == name {
			return t
		}
	}
	return nil
}

// token kinds of the cgconfig lexer.
const (
	tEOF = iota
	tWord
	tString // quoted
	tLBrace
	tRBrace
	tEq
	tSemi
)

type token struct {
	kind int
	text string
	line int
}

func (t token) String() string {
	if t.kind == tEOF {
		return "end of file"
	}
	return strconv.Quote(t.text)
}

// lex splits a cgconfig file into tokens. Words are runs of anything but
// blanks and the punctuation { } = ; " #; quoted strings may hold anything
// but a double quote, newlines included (libcgroup's lexer has no
// escapes). '#' starts a comment to the end of the line.
func lex(name, src string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == '=' || c == ';':
			k := map[byte]int{'{': tLBrace, '}': tRBrace, '=': tEq, ';': tSemi}[c]
			toks = append(toks, token{kind: k, text: string(c), line: line})
			i++
		case c == '"':
			j := strings.IndexByte(src[i+1:], '"')
			if j < 0 {
				return nil, &ParseError{Errs: []LineError{{File: name, Line: line, Msg: "unterminated quote"}}}
			}
			s := src[i+1 : i+1+j]
			toks = append(toks, token{kind: tString, text: s, line: line})
			line += strings.Count(s, "\n")
			i += j + 2
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{}=;\"#", rune(src[j])) {
				j++
			}
			toks = append(toks, token{kind: tWord, text: src[i:j], line: line})
			i = j
		}
	}
	toks = append(toks, token{kind: tEOF, line: line})
	return toks, nil
}

// parser is a recursive-descent parser over the tokens of one file. It
// stops at the first error: after a missing brace nothing that follows
// can be trusted.
type parser struct {
	name string
	toks []token
	i    int
	cfg  *Config
}

type syntaxError struct{ LineError }

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) failf(line int, format string, a ...any) {
	panic(syntaxError{LineError{File: p.name, Line: line, Msg: fmt.Sprintf(format, a...)}})
}

func (p *parser) expect(kind int, what string) token {
	t := p.next()
	if t.kind != kind {
		p.failf(t.line, "want %s, got %v", what, t)
	}
	return t
}

// value is a word or a quoted string.
func (p *parser) value(what string) token {
	t := p.next()
	if t.kind != tWord && t.kind != tString {
		p.failf(t.line, "want %s, got %v", what, t)
	}
	return t
}

// ParseConfig parses one cgconfig.conf file; name is used in messages.
func ParseConfig(name string, r io.Reader) (cfg *Config, err error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	toks, err := lex(name, string(b))
	if err != nil {
		return nil, err
	}
	p := &parser{name: name, toks: toks, cfg: &Config{}}
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(syntaxError)
			if !ok {
				panic(r)
			}
			cfg, err = nil, &ParseError{Errs: []LineError{se.LineError}}
		}
	}()
	for p.peek().kind != tEOF {
		p.section()
	}
	return p.cfg, nil
}

func (p *parser) pos(t token) Pos { return Pos{File: p.name, Line: t.line} }

func (p *parser) section() {
	t := p.next()
	if t.kind != tWord {
		p.failf(t.line, "want a section (mount, group, template, default), got %v", t)
	}
	switch t.text {
	case "mount":
		p.expect(tLBrace, `"{" after mount`)
		for p.peek().kind != tRBrace {
			ctrl := p.value("a controller")
			p.expect(tEq, `"=" after the controller`)
			dir := p.value("a mount point")
			p.expect(tSemi, `";" after the mount point`)
			if ctrl.text == "" || dir.text == "" {
				p.failf(ctrl.line, "empty controller or mount point")
			}
			p.cfg.Mounts = append(p.cfg.Mounts, Mount{Controller: ctrl.text, Path: dir.text, Pos: p.pos(ctrl)})
		}
		p.next()
	case "group", "template":
		g := p.group(t)
		if t.text == "group" {
			p.cfg.Groups = append(p.cfg.Groups, g)
		} else {
			p.cfg.Templates = append(p.cfg.Templates, g)
		}
	case "default":
		p.expect(tLBrace, `"{" after default`)
		for p.peek().kind != tRBrace {
			k := p.next()
			if k.kind != tWord || k.text != "perm" {
				p.failf(k.line, "the default section holds only a perm section, got %v", k)
			}
			p.cfg.Default = p.perm(k)
		}
		p.next()
	case "systemd":
		// cgroup v2 only: read and set aside.
		p.expect(tLBrace, `"{" after systemd`)
		for p.peek().kind != tRBrace {
			p.value("a setting")
			p.expect(tEq, `"="`)
			p.value("a value")
			p.expect(tSemi, `";"`)
		}
		p.next()
		p.cfg.Warnings = append(p.cfg.Warnings, fmt.Sprintf("%s:%d: the systemd section is for cgroup v2 and is ignored", p.name, t.line))
	case "namespace":
		p.failf(t.line, "the namespace section is not supported")
	default:
		p.failf(t.line, "unknown section %q (want mount, group, template or default)", t.text)
	}
}

func (p *parser) group(kw token) *Group {
	name := p.value("a group name")
	if name.text == "" {
		p.failf(name.line, "empty %s name", kw.text)
	}
	for _, part := range strings.Split(name.text, "/") {
		if part == ".." || strings.Contains(part, "\n") {
			p.failf(name.line, "%s name %q: not a container path", kw.text, name.text)
		}
	}
	g := &Group{Name: name.text, Pos: p.pos(kw)}
	p.expect(tLBrace, fmt.Sprintf(`"{" after %s %s`, kw.text, name.text))
	for p.peek().kind != tRBrace {
		t := p.value("perm or a controller")
		if t.kind == tWord && t.text == "perm" {
			if g.Perm != nil {
				p.failf(t.line, "a second perm section in %s %s", kw.text, g.Name)
			}
			g.Perm = p.perm(t)
			continue
		}
		c := &Controller{Name: t.text, Pos: p.pos(t)}
		p.expect(tLBrace, fmt.Sprintf(`"{" after controller %s`, t.text))
		for p.peek().kind != tRBrace {
			k := p.value("a parameter name")
			p.expect(tEq, fmt.Sprintf(`"=" after %s`, k.text))
			v := p.value("a value")
			p.expect(tSemi, fmt.Sprintf(`";" after %s = %s`, k.text, v.text))
			c.Settings = append(c.Settings, Setting{Name: k.text, Value: v.text, Pos: p.pos(k)})
		}
		p.next()
		g.Controllers = append(g.Controllers, c)
	}
	p.next()
	if len(g.Controllers) == 0 {
		// libcgroup: a group must name a controller, or it would not
		// know which hierarchies to make it in.
		p.failf(kw.line, "%s %s names no controller", kw.text, g.Name)
	}
	return g
}

func (p *parser) perm(kw token) *Perm {
	perm := &Perm{}
	p.expect(tLBrace, `"{" after perm`)
	for p.peek().kind != tRBrace {
		t := p.next()
		if t.kind != tWord || (t.text != "task" && t.text != "admin") {
			p.failf(t.line, "want task or admin in perm, got %v", t)
		}
		o := &Owner{FPerm: -1, DPerm: -1, Pos: p.pos(t)}
		p.expect(tLBrace, fmt.Sprintf(`"{" after %s`, t.text))
		for p.peek().kind != tRBrace {
			k := p.value("uid, gid, fperm or dperm")
			p.expect(tEq, fmt.Sprintf(`"=" after %s`, k.text))
			v := p.value("a value")
			p.expect(tSemi, fmt.Sprintf(`";" after %s = %s`, k.text, v.text))
			switch k.text {
			case "uid":
				o.UID = v.text
			case "gid":
				o.GID = v.text
			case "duid", "dgid":
				if t.text == "task" {
					p.failf(k.line, "%s belongs in admin: the task section owns only the tasks file", k.text)
				}
				if k.text == "duid" {
					o.DUID = v.text
				} else {
					o.DGID = v.text
				}
			case "fperm", "dperm":
				if k.text == "dperm" && t.text == "task" {
					p.failf(k.line, "dperm belongs in admin: the task section owns only the tasks file")
				}
				m, err := strconv.ParseUint(v.text, 8, 32)
				if err != nil || m > 0o7777 {
					p.failf(v.line, "%s %q: want octal permission bits", k.text, v.text)
				}
				if k.text == "fperm" {
					o.FPerm = int(m)
				} else {
					o.DPerm = int(m)
				}
			default:
				p.failf(k.line, "unknown %s setting %q (want uid, gid, fperm, dperm, duid or dgid)", t.text, k.text)
			}
		}
		p.next()
		if t.text == "task" {
			perm.Task = o
		} else {
			perm.Admin = o
		}
	}
	p.next()
	return perm
}

// Format writes cfg in the cgconfig.conf grammar. A name or value holding
// a double quote cannot be written (the grammar has no escapes).
func Format(cfg *Config) ([]byte, error) {
	var b strings.Builder
	var err error
	q := func(s string) string {
		out, e := quote(s)
		if e != nil && err == nil {
			err = e
		}
		return out
	}
	if len(cfg.Mounts) > 0 {
		b.WriteString("mount {\n")
		for _, m := range cfg.Mounts {
			fmt.Fprintf(&b, "\t%s = %s;\n", q(m.Controller), q(m.Path))
		}
		b.WriteString("}\n")
	}
	writeOwner := func(ind, kind string, o *Owner) {
		if o == nil {
			return
		}
		fmt.Fprintf(&b, "%s%s {\n", ind, kind)
		if o.UID != "" {
			fmt.Fprintf(&b, "%s\tuid = %s;\n", ind, q(o.UID))
		}
		if o.GID != "" {
			fmt.Fprintf(&b, "%s\tgid = %s;\n", ind, q(o.GID))
		}
		if o.DUID != "" {
			fmt.Fprintf(&b, "%s\tduid = %s;\n", ind, q(o.DUID))
		}
		if o.DGID != "" {
			fmt.Fprintf(&b, "%s\tdgid = %s;\n", ind, q(o.DGID))
		}
		if o.DPerm >= 0 {
			fmt.Fprintf(&b, "%s\tdperm = %03o;\n", ind, o.DPerm)
		}
		if o.FPerm >= 0 {
			fmt.Fprintf(&b, "%s\tfperm = %03o;\n", ind, o.FPerm)
		}
		fmt.Fprintf(&b, "%s}\n", ind)
	}
	writePerm := func(ind string, p *Perm) {
		if p == nil {
			return
		}
		fmt.Fprintf(&b, "%sperm {\n", ind)
		writeOwner(ind+"\t", "task", p.Task)
		writeOwner(ind+"\t", "admin", p.Admin)
		fmt.Fprintf(&b, "%s}\n", ind)
	}
	writeGroup := func(kw string, g *Group) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s %s {\n", kw, q(g.Name))
		writePerm("\t", g.Perm)
		for _, c := range g.Controllers {
			fmt.Fprintf(&b, "\t%s {\n", q(c.Name))
			for _, s := range c.Settings {
				fmt.Fprintf(&b, "\t\t%s = %s;\n", q(s.Name), q(s.Value))
			}
			b.WriteString("\t}\n")
		}
		b.WriteString("}\n")
	}
	for _, g := range cfg.Groups {
		writeGroup("group", g)
	}
	for _, g := range cfg.Templates {
		writeGroup("template", g)
	}
	if cfg.Default != nil {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("default {\n")
		writePerm("\t", cfg.Default)
		b.WriteString("}\n")
	}
	return []byte(b.String()), err
}

// quote quotes s unless it is a word libcgroup's lexer reads as one:
// letters, digits and _ - / . , % @ \.
func quote(s string) (string, error) {
	if strings.Contains(s, `"`) {
		return `""`, fmt.Errorf("%q: a double quote cannot be written in the cgconfig grammar", s)
	}
	if s == "" {
		return `""`, nil
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(`_-/.,%@\`, c)
		if !ok {
			return `"` + s + `"`, nil
		}
	}
	// A bare keyword would be read as one where a name is expected by
	// nothing but our own parser; quoting keeps libcgroup happy too.
	switch s {
	case "mount", "group", "template", "default", "perm", "task", "admin", "namespace", "systemd":
		return `"` + s + `"`, nil
	}
	return s, nil
}
