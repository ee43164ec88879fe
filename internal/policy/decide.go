// The rule decision: which rule matches a process, and the destinations
// it names, expanded for that process.

package policy

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/containerfs/containerfs/internal/core"
)

// target is one container a decision puts a process in.
type target struct {
	h    *core.Hierarchy
	path string // expanded and clean
	rule *Rule  // the line that named it; nil for a spec
	// create marks a destination with templates: missing containers
	// along it are made on the fly, following template sections.
	create bool
	tmpl   string // the destination as written, clean, to find templates
}

// decision is what the rules say of a process, with the reasons.
type decision struct {
	rule     *Rule    // the rule that matched, nil if none
	skipped  []string // why each rule before it did not match
	ignore   string   // the rule matched but leaves the process alone
	targets  []target
	problems []string // lines of the rule that could not apply
}

// decide matches p against rs: the first rule that matches wins, with its
// continuation lines.
func (e *Engine) decide(p Process, rs *RuleSet) decision {
	var d decision
	hs := e.o.Model.Hierarchies()
	for _, r := range rs.Rules {
		if ok, why := e.matches(r, p); !ok {
			d.skipped = append(d.skipped, fmt.Sprintf("%s %q: %s", r.Where(), r.Text, why))
			continue
		}
		d.rule = r
		switch {
		case r.Ignore:
			d.ignore = "the rule says ignore"
			return d
		case r.IgnoreRT && p.RT:
			d.ignore = "the rule says ignore_rt and the process is real-time"
			return d
		}
		for _, line := range append([]*Rule{r}, r.Cont...) {
			found, missing := hierarchiesFor(hs, line.Controllers)
			for _, m := range missing {
				d.problems = append(d.problems, fmt.Sprintf("%s: controller %s is not mounted", line.Where(), m))
			}
			dest := e.expand(line.Destination, p)
			for _, h := range found {
				if slices.ContainsFunc(d.targets, func(t target) bool { return t.h == h }) {
					continue // an earlier line of the rule placed it there
				}
				d.targets = append(d.targets, target{
					h: h, path: dest, rule: line,
					create: hasTemplate(line.Destination),
					tmpl:   cleanPath(line.Destination),
				})
			}
		}
		return d
	}
	return d
}

// matches tells whether rule r applies to p, and if not, why.
func (e *Engine) matches(r *Rule, p Process) (bool, string) {
	switch r.Kind {
	case UserName:
		if !r.Resolved {
			return false, fmt.Sprintf("no user %q when the rules were loaded", r.User)
		}
		if p.EUID != r.ID {
			return false, fmt.Sprintf("euid %d is not %s (%d)", p.EUID, r.User, r.ID)
		}
	case GroupName:
		if !r.Resolved {
			return false, fmt.Sprintf("no group %q when the rules were loaded", r.User[1:])
		}
		if p.EGID != r.ID && !e.o.Users.InGroup(p.EUID, r.ID) {
			return false, fmt.Sprintf("egid %d is not %s (%d), and uid %d is not a member", p.EGID, r.User[1:], r.ID, p.EUID)
		}
	}
	if r.Process != "" && p.Name != r.Process && shortName(p.Name) != r.Process {
		return false, fmt.Sprintf("process %q is not %q", p.Name, r.Process)
	}
	return true, ""
}

// expand expands a destination's templates for p. A value that could not
// be one path component (a comm holding '/', or "..") is replaced by the
// number it stands for, so a process cannot steer itself out of the
// destination by naming itself.
func (e *Engine) expand(dest string, p Process) string {
	safe := func(v, fallback string) string {
		if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\n") {
			return fallback
		}
		return v
	}
	pid, uid, gid := strconv.Itoa(p.PID), strconv.FormatUint(uint64(p.EUID), 10), strconv.FormatUint(uint64(p.EGID), 10)
	out := expandDest(dest, func(c byte) (string, bool) {
		switch c {
		case 'u':
			n, _ := e.o.Users.UserName(p.EUID)
			return safe(n, uid), true
		case 'U':
			return uid, true
		case 'g':
			n, _ := e.o.Users.GroupName(p.EGID)
			return safe(n, gid), true
		case 'G':
			return gid, true
		case 'p':
			return safe(shortName(p.Name), pid), true
		case 'P':
			return pid, true
		}
		return "", false
	})
	return cleanPath(out)
}

// shortName is a process name without its directory. Only a full path
// has one: a name taken from comm may hold '/' of its own.
func shortName(name string) string {
	if strings.HasPrefix(name, "/") {
		return path.Base(name)
	}
	return name
}
