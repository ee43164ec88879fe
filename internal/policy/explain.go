// Explain: which rule places a process and why, or why none does.

package policy

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/proc"
)

// Explain tells which rule places process pid and why, or why none does:
// the process as the rules see it (name, executable, user, group), each
// rule that did not match and why, the rule that did (file:line and
// text), and the expanded destination in each hierarchy with where the
// process is now. It moves nothing. A process that is not there is an
// error wrapping ESRCH.
func (e *Engine) Explain(pid int) (string, error) {
	var b strings.Builder
	p, err := e.o.Procs.Process(pid)
	if err != nil {
		return "", withErrno(err, syscall.ESRCH)
	}
	user := func(uid uint32) string {
		if n, ok := e.o.Users.UserName(uid); ok {
			return fmt.Sprintf("%d (%s)", uid, n)
		}
		return fmt.Sprint(uid)
	}
	group := func(gid uint32) string {
		if n, ok := e.o.Users.GroupName(gid); ok {
			return fmt.Sprintf("%d (%s)", gid, n)
		}
		return fmt.Sprint(gid)
	}
	exe := p.Exe
	if exe == "" {
		exe = "(unknown)"
	}
	fmt.Fprintf(&b, "process %d: name %q (comm %q, exe %s)\n", p.PID, p.Name, p.Comm, exe)
	fmt.Fprintf(&b, "  euid %s, egid %s", user(p.EUID), group(p.EGID))
	if p.RT {
		b.WriteString(", real-time")
	}
	b.WriteString("\n")
	rs := e.rules.Load()
	fmt.Fprintf(&b, "rules: %d lines from %s\n", rs.Len(), orNone(strings.Join(rs.Files, ", ")))
	switch s, ok := e.stickyEntry(pid); {
	case p.Kernel:
		b.WriteString("not classified: a kernel thread\n")
	case p.PID == e.o.Self:
		b.WriteString("not classified: the containerfs daemon stays in its root containers\n")
	case ok && (s.start == 0 || proc.SameStart(s.start, p.Start)):
		mode := StickSelf
		if s.tree {
			mode = StickTree
		}
		fmt.Fprintf(&b, "not classified: %s (%s); the rules leave it alone\n", mode, s.reason())
	}
	d := e.decide(p, rs)
	for _, s := range d.skipped {
		fmt.Fprintf(&b, "  no match: %s\n", s)
	}
	if d.rule == nil {
		b.WriteString("no rule matched: the rules leave it where it is\n")
	} else {
		fmt.Fprintf(&b, "matched %s: %s\n", d.rule.Where(), d.rule.Text)
		for _, c := range d.rule.Cont {
			fmt.Fprintf(&b, "  and %s: %s\n", c.Where(), c.Text)
		}
		if d.ignore != "" {
			fmt.Fprintf(&b, "not moved: %s\n", d.ignore)
		}
	}
	if d.ignore == "" {
		ws, _ := e.o.Model.Where(pid)
		for _, t := range d.targets {
			note := ""
			if _, err := e.o.Model.ContainerAt(t.h, t.path, false); err != nil {
				if t.create {
					note = " (made on the fly"
					if g := e.cfg.Load().Template(t.tmpl); g != nil {
						note += fmt.Sprintf(", following template %s at %v", g.Name, g.Pos)
					}
					note += ")"
				} else {
					note = " (missing: the move fails)"
				}
			}
			now, ok := whereIn(ws, t.h)
			if !ok {
				now = "unknown"
			}
			fmt.Fprintf(&b, "  %s: destination %s%s, now in %s\n", label(t.h), t.path, note, now)
		}
	}
	for _, pr := range d.problems {
		fmt.Fprintf(&b, "  problem: %s\n", pr)
	}
	return b.String(), nil
}

func orNone(s string) string {
	if s == "" {
		return "no file"
	}
	return s
}
