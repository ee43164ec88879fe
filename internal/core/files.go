package core

import (
	"fmt"
	"slices"
	"strconv"
	"syscall"
)

// coreFiles is the table of files every container of every hierarchy has
// (the kernel's cgroup1_base_files).
func coreFiles(r *Registry) []File {
	return []File{
		{Name: "tasks", Read: readPIDs(false), WriteUnlocked: writePID(r, false)},
		{Name: "cgroup.procs", Read: readPIDs(true), WriteUnlocked: writePID(r, true)},
		{Name: "notify_on_release",
			ReadU64:  func(c *Container) uint64 { return b2u(c.notifyOnRelease) },
			WriteU64: func(c *Container, _ Caller, v uint64) error { c.notifyOnRelease = v != 0; return nil },
		},
		{Name: "cgroup.clone_children",
			ReadU64:  func(c *Container) uint64 { return b2u(c.cloneChildren) },
			WriteU64: func(c *Container, _ Caller, v uint64) error { c.cloneChildren = v != 0; return nil },
		},
		{Name: "release_agent", Flags: OnlyOnRoot,
			Read: func(c *Container) (string, error) { return c.h.opts.ReleaseAgent + "\n", nil },
			Write: func(c *Container, who Caller, data string) error {
				// The agent runs as root: only root may set it.
				if who.UID != 0 {
					return fmt.Errorf("release_agent: %w", syscall.EPERM)
				}
				v := Strstrip(data)
				if len(v) > pathMax-1 {
					v = v[:pathMax-1]
				}
				c.h.opts.ReleaseAgent = v
				return nil
			},
		},
		{Name: "cgroup.sane_behavior", Flags: OnlyOnRoot,
			ReadU64: func(*Container) uint64 { return 0 },
		},
	}
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
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
// /proc before it takes the registry lock, so the handler is unlocked.
func writePID(r *Registry, group bool) UnlockedWrite {
	return func(c *Container, who Caller, data string) error {
		pid, err := ParsePID(data)
		if err != nil {
			return err
		}
		return r.Attach(c, who, pid, group)
	}
}

// ParsePID parses a write to tasks or cgroup.procs as
// cgroup_procs_write_start does: kstrtoint(strstrip(buf), 0), and EINVAL
// for anything that is not a non-negative int (ERANGE included).
func ParsePID(data string) (int, error) {
	s := Strstrip(data)
	v, err := Kstrtoint(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a PID: %w", s, syscall.EINVAL)
	}
	return int(v), nil
}

func (f *File) maxWrite() int {
	if f.MaxWrite > 0 {
		return f.MaxWrite
	}
	return MaxWrite
}

// ReadFile formats control file f of container c.
func (r *Registry) ReadFile(c *Container, f *BoundFile) (string, error) {
	if !f.Readable() {
		return "", fmt.Errorf("%s is write-only: %w", f.Name, syscall.EINVAL)
	}
	r.lock()
	defer r.unlock()
	if c.removed {
		return "", fmt.Errorf("%s: container removed: %w", f.Name, syscall.ENODEV)
	}
	switch {
	case f.ReadU64 != nil:
		return strconv.FormatUint(f.ReadU64(c), 10) + "\n", nil
	case f.ReadS64 != nil:
		return strconv.FormatInt(f.ReadS64(c), 10) + "\n", nil
	}
	return f.Read(c)
}

// WriteFile hands one write(2) to control file f of container c, as the
// kernel's kernfs and cgroup_file_write do: E2BIG beyond the file's
// MaxWrite, nothing
// done for an empty write, the data cut at a NUL, numbers parsed for the
// typed handlers. Nothing is changed when it fails.
func (r *Registry) WriteFile(c *Container, f *BoundFile, who Caller, data string) error {
	if !f.Writable() {
		return fmt.Errorf("%s is read-only: %w", f.Name, syscall.EINVAL)
	}
	if max := f.maxWrite(); len(data) > max {
		return fmt.Errorf("%s: a write of %d bytes, at most %d: %w", f.Name, len(data), max, syscall.E2BIG)
	}
	if len(data) == 0 {
		return nil // write(2) of nothing never reaches a kernel handler
	}
	data = CString(data)
	if f.WriteUnlocked != nil {
		return f.WriteUnlocked(c, who, data)
	}
	var u uint64
	var s int64
	var err error
	switch {
	case f.WriteU64 != nil:
		u, err = Kstrtoull(data)
	case f.WriteS64 != nil:
		s, err = Kstrtoll(data)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	r.lock()
	defer r.unlock()
	if c.removed {
		return fmt.Errorf("%s: container removed: %w", f.Name, syscall.ENODEV)
	}
	switch {
	case f.WriteU64 != nil:
		return f.WriteU64(c, who, u)
	case f.WriteS64 != nil:
		return f.WriteS64(c, who, s)
	}
	return f.Write(c, who, data)
}
