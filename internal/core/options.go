package core

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// maxRootNameLen is the kernel's MAX_CGROUP_ROOT_NAMELEN.
const maxRootNameLen = 64

// pathMax is the kernel's PATH_MAX.
const pathMax = 4096

var rootNameRE = regexp.MustCompile(`^[\w.-]+$`)

// Options are a hierarchy's mount options, cgroup v1's cgroup_fs_context.
type Options struct {
	All           bool
	None          bool
	Name          string
	NoPrefix      bool
	CloneChildren bool
	ReleaseAgent  string
	haveAgent     bool
	XAttr         bool
	CPUsetV2Mode  bool
	Subsys        []string // as named, in registry order after Resolve
}

// ParseOptions parses a mount option string ("cpuset,noprefix,name=x") the
// way cgroup1_parse_param does. known lists the subsystems that exist.
// Unknown options and every conflict the kernel rejects give EINVAL.
func ParseOptions(s string, known []string) (Options, error) {
	var o Options
	for _, opt := range strings.Split(s, ",") {
		if opt == "" {
			continue
		}
		key, val, hasVal := strings.Cut(opt, "=")
		switch {
		case key == "all" && !hasVal:
			// cgroup v1: 'all' and a subsystem name are mutually exclusive.
			if len(o.Subsys) > 0 {
				return o, optErr("'all' and subsystem name specified")
			}
			o.All = true
		case key == "none" && !hasVal:
			o.None = true
		case key == "noprefix" && !hasVal:
			o.NoPrefix = true
		case key == "clone_children" && !hasVal:
			o.CloneChildren = true
		case key == "xattr" && !hasVal:
			o.XAttr = true
		case key == "cpuset_v2_mode" && !hasVal:
			o.CPUsetV2Mode = true
		case key == "name" && hasVal:
			switch {
			case val == "":
				return o, optErr("empty name")
			case len(val) > maxRootNameLen-1:
				return o, optErr("name too long")
			case !rootNameRE.MatchString(val):
				return o, optErr("invalid name %q", val)
			case o.Name != "":
				return o, optErr("name respecified")
			}
			o.Name = val
		case key == "release_agent" && hasVal:
			if o.haveAgent {
				return o, optErr("release_agent respecified")
			}
			o.ReleaseAgent, o.haveAgent = val, true
		case !hasVal && slices.Contains(known, key):
			if o.All {
				return o, optErr("'all' and subsystem name specified")
			}
			if !slices.Contains(o.Subsys, key) {
				o.Subsys = append(o.Subsys, key)
			}
		default:
			return o, optErr("unknown subsys name %q", opt)
		}
	}
	// cgroup v1: 'all', or nothing at all, selects every subsystem.
	if o.All || (len(o.Subsys) == 0 && !o.None && o.Name == "") {
		o.Subsys = slices.Clone(known)
	}
	if len(o.Subsys) == 0 && o.Name == "" {
		return o, optErr("need name or subsystem set")
	}
	if o.NoPrefix && slices.ContainsFunc(o.Subsys, func(n string) bool { return n != "cpuset" }) {
		return o, optErr("noprefix used incorrectly")
	}
	if len(o.Subsys) > 0 && o.None {
		return o, optErr("none used incorrectly")
	}
	// Keep subsystems in registry order, so equal sets compare equal.
	slices.SortFunc(o.Subsys, func(a, b string) int {
		return slices.Index(known, a) - slices.Index(known, b)
	})
	return o, nil
}

// String renders the options as /proc/mounts shows a cgroup v1 mount.
func (o Options) String() string {
	opts := slices.Clone(o.Subsys)
	if o.NoPrefix {
		opts = append(opts, "noprefix")
	}
	if o.XAttr {
		opts = append(opts, "xattr")
	}
	if o.ReleaseAgent != "" {
		opts = append(opts, "release_agent="+o.ReleaseAgent)
	}
	if o.CloneChildren {
		opts = append(opts, "clone_children")
	}
	if o.CPUsetV2Mode {
		opts = append(opts, "cpuset_v2_mode")
	}
	if o.Name != "" {
		opts = append(opts, "name="+o.Name)
	}
	return strings.Join(opts, ",")
}

// specifiesSet tells whether the options name a subsystem set (possibly the
// empty one, with none) rather than only a name to look up.
func (o Options) specifiesSet() bool { return len(o.Subsys) > 0 || o.None }

func optErr(format string, a ...any) error {
	return fmt.Errorf("mount options: %s: %w", fmt.Sprintf(format, a...), syscall.EINVAL)
}
