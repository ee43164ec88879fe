package core

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// coreFiles is the table of files every container of every hierarchy has
// (SPEC section 3).
func coreFiles(r *Registry) []File {
	return []File{
		{Name: "tasks", Flags: WriteUnlocked, Read: readPIDs(false), Write: writePID(r, false)},
		{Name: "cgroup.procs", Flags: WriteUnlocked, Read: readPIDs(true), Write: writePID(r, true)},
		{Name: "notify_on_release",
			Read:  func(c *Container) (string, error) { return boolFile(c.notifyOnRelease), nil },
			Write: writeBool(func(c *Container, v bool) { c.notifyOnRelease = v }),
		},
		{Name: "cgroup.clone_children",
			Read:  func(c *Container) (string, error) { return boolFile(c.cloneChildren), nil },
			Write: writeBool(func(c *Container, v bool) { c.cloneChildren = v }),
		},
		{Name: "release_agent", Flags: OnlyOnRoot,
			Read: func(c *Container) (string, error) { return c.h.opts.ReleaseAgent + "\n", nil },
			Write: func(c *Container, who Caller, data string) error {
				// The agent runs as root: only root may set it.
				if who.UID != 0 {
					return fmt.Errorf("release_agent: %w", syscall.EPERM)
				}
				v := strings.TrimSpace(data)
				if len(v) > pathMax-1 {
					v = v[:pathMax-1]
				}
				c.h.opts.ReleaseAgent = v
				return nil
			},
		},
		{Name: "cgroup.sane_behavior", Flags: OnlyOnRoot,
			Read: func(*Container) (string, error) { return "0\n", nil },
		},
	}
}

func boolFile(v bool) string {
	if v {
		return "1\n"
	}
	return "0\n"
}

// writeBool parses a u64 as cgroup v1's write_u64 handlers do: any non-zero
// value is true, anything not a number is EINVAL.
func writeBool(set func(*Container, bool)) func(*Container, Caller, string) error {
	return func(c *Container, _ Caller, data string) error {
		v, err := KstrtoU64(data)
		if err != nil {
			return err
		}
		set(c, v != 0)
		return nil
	}
}

// ParseU64 parses one unsigned integer as the kernel's kstrtoull(buf, 0)
// does after stripping whitespace: an optional '+', then 0x hex, 0 octal or
// decimal; nothing else (no '_', no 0b or 0o). EINVAL otherwise.
func ParseU64(data string) (uint64, error) {
	s := strings.TrimSpace(data)
	v, err := parseKernelUint(strings.TrimPrefix(s, "+"), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number: %w", s, syscall.EINVAL)
	}
	return v, nil
}

// KstrtoU64 parses exactly as the kernel's kstrtoull(buf, 0) does on a
// buffer nobody stripped, as cgroup's write_u64 files get it: an optional
// '+', the number, and at most one trailing newline; no other whitespace.
func KstrtoU64(data string) (uint64, error) {
	s := strings.TrimSuffix(data, "\n")
	v, err := parseKernelUint(strings.TrimPrefix(s, "+"), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number: %w", data, syscall.EINVAL)
	}
	return v, nil
}

// KstrtoS64 is kstrtoll(buf, 0) on an unstripped buffer, for write_s64
// files.
func KstrtoS64(data string) (int64, error) {
	s := strings.TrimSuffix(data, "\n")
	if strings.TrimSpace(s) != s {
		return 0, fmt.Errorf("%q is not a number: %w", data, syscall.EINVAL)
	}
	return ParseInt(s)
}

// ParseInt parses one signed integer as kstrtoll(buf, 0) does.
func ParseInt(data string) (int64, error) {
	s := strings.TrimSpace(data)
	neg := strings.HasPrefix(s, "-")
	u, err := parseKernelUint(strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+"), 64)
	switch {
	case err != nil || (neg && strings.HasPrefix(s, "-+")):
		return 0, fmt.Errorf("%q is not a number: %w", s, syscall.EINVAL)
	case neg && u <= 1<<63:
		return -int64(u), nil
	case !neg && u < 1<<63:
		return int64(u), nil
	}
	return 0, fmt.Errorf("%q is out of range: %w", s, syscall.EINVAL)
}

// parseKernelUint is _parse_integer with base 0: 0x or 0X is hex, a
// leading 0 octal, else decimal.
func parseKernelUint(s string, bits int) (uint64, error) {
	base := 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, base, bits)
}

// readPIDs lists the container's TIDs, or its TGIDs, sorted and unique as
// current kernels print them.
func readPIDs(tgids bool) func(*Container) (string, error) {
	which := 0
	if tgids {
		which = 1
	}
	return func(c *Container) (string, error) {
		if c.pidsOK[which] {
			return c.pids[which], nil
		}
		ids := make([]int, 0, len(c.tasks))
		for t := range c.tasks {
			if tgids {
				ids = append(ids, t.TGID)
			} else {
				ids = append(ids, t.TID)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		b := make([]byte, 0, len(ids)*8)
		for _, id := range ids {
			b = strconv.AppendInt(b, int64(id), 10)
			b = append(b, '\n')
		}
		c.pids[which], c.pidsOK[which] = string(b), true
		return c.pids[which], nil
	}
}

// writePID is the write handler of tasks and cgroup.procs. Attach reads
// /proc before it takes the registry lock, so the file is WriteUnlocked.
func writePID(r *Registry, group bool) func(*Container, Caller, string) error {
	return func(c *Container, who Caller, data string) error {
		pid, err := ParsePID(data)
		if err != nil {
			return err
		}
		return r.Attach(c, who, pid, group)
	}
}

// ParsePID parses a write to tasks or cgroup.procs: exactly one non-negative
// integer (cgroup v1 uses kstrtoint on the stripped buffer).
func ParsePID(data string) (int, error) {
	v, err := ParseInt(data)
	if err != nil || v < 0 || v > 1<<31-1 {
		return 0, fmt.Errorf("%q is not a PID: %w", strings.TrimSpace(data), syscall.EINVAL)
	}
	return int(v), nil
}

// ReadFile formats control file f of container c.
func (r *Registry) ReadFile(c *Container, f *BoundFile) (string, error) {
	if f.Read == nil {
		return "", fmt.Errorf("%s is write-only: %w", f.Name, syscall.EINVAL)
	}
	r.lock()
	defer r.unlock()
	if c.removed {
		return "", fmt.Errorf("%s: container removed: %w", f.Name, syscall.ENODEV)
	}
	return f.Read(c)
}

// WriteFile hands one write(2) to control file f of container c.
func (r *Registry) WriteFile(c *Container, f *BoundFile, who Caller, data string) error {
	if f.Write == nil {
		return fmt.Errorf("%s is read-only: %w", f.Name, syscall.EINVAL)
	}
	if f.Flags&WriteUnlocked != 0 {
		return f.Write(c, who, data)
	}
	r.lock()
	defer r.unlock()
	if c.removed {
		return fmt.Errorf("%s: container removed: %w", f.Name, syscall.ENODEV)
	}
	return f.Write(c, who, data)
}
