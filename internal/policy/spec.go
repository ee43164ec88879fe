// The -g controllers:path arguments of cgexec, cgclassify and the group
// tools (Spec).

package policy

import (
	"fmt"
	"strings"
	"syscall"
)

// Placement is one -g argument of cgexec and cgclassify:
// "<controllers>:<path>", as "cpu,cpuset:/guests" or "*:/x".
type Placement struct {
	Controllers []string // names, "name=X", or the single "*"
	Path        string   // clean, absolute
}

func (p Placement) String() string { return strings.Join(p.Controllers, ",") + ":" + p.Path }

// Spec is every -g of one command. A nil Spec means "by the rules".
type Spec []Placement

// ParsePlacement parses one -g argument. The path may itself hold colons:
// the controllers end at the first one.
func ParsePlacement(s string) (Placement, error) {
	ctrls, p, ok := strings.Cut(s, ":")
	if !ok {
		return Placement{}, fmt.Errorf("-g %q: want <controllers>:<path>: %w", s, syscall.EINVAL)
	}
	if p == "" {
		return Placement{}, fmt.Errorf("-g %q: empty path: %w", s, syscall.EINVAL)
	}
	cs, err := parseControllers(ctrls, nil)
	if err != nil {
		return Placement{}, fmt.Errorf("-g %q: %v: %w", s, err, syscall.EINVAL)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return Placement{}, fmt.Errorf("-g %q: %q would leave the hierarchy: %w", s, "..", syscall.EINVAL)
		}
	}
	return Placement{Controllers: cs, Path: cleanPath(p)}, nil
}

// ParseSpec parses the -g arguments of one command.
func ParseSpec(args []string) (Spec, error) {
	var sp Spec
	for _, a := range args {
		p, err := ParsePlacement(a)
		if err != nil {
			return nil, err
		}
		sp = append(sp, p)
	}
	return sp, nil
}

// Strings is the spec as -g arguments, to send over the control socket.
func (sp Spec) Strings() []string {
	out := make([]string, len(sp))
	for i, p := range sp {
		out[i] = p.String()
	}
	return out
}
