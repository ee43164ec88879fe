// Mounts: serving a hierarchy at a directory, unmounting it, and removing
// the stale mounts of a daemon that died.

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/cgfs"
	"github.com/containerfs/containerfs/internal/core"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/proc"
)

// mountDirs lists where h is mounted, for snapshots.
func (d *Daemon) mountDirs(h *core.Hierarchy) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var dirs []string
	for dir, ms := range d.mounts {
		for _, m := range ms {
			if m.H == h && !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
		}
	}
	slices.Sort(dirs)
	return dirs
}

// Mount mounts the hierarchy that opts stand for at dir.
func (d *Daemon) Mount(source, dir, opts string) error {
	return d.MountFlags(source, dir, opts, false)
}

// MountFlags is Mount with mount(8)'s generic flags: readOnly is -o ro,
// which holds for this mount only, as in the kernel.
func (d *Daemon) MountFlags(source, dir, opts string, readOnly bool) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("mount point %s: %w", dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("mount point %s: %w", dir, syscall.ENOTDIR)
	}
	if source == "" {
		source = "container"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// As with any filesystem, a second mount on the same directory stacks
	// on the first and hides it until it is unmounted.
	h, err := d.Reg.Mount(opts)
	if err != nil {
		return err
	}
	m, err := cgfs.Serve(d.Reg, h, dir, source, cgfs.Options{
		Debug:    d.cfg.Debug,
		ReadOnly: readOnly,
		OnUnmount: func(m *cgfs.Mount) {
			d.mu.Lock()
			defer d.mu.Unlock()
			ms := slices.DeleteFunc(d.mounts[m.Dir], func(x *cgfs.Mount) bool { return x == m })
			if len(ms) == 0 {
				delete(d.mounts, m.Dir)
			} else {
				d.mounts[m.Dir] = ms
			}
		},
	})
	if err != nil {
		d.Reg.Unmount(h)
		return err
	}
	d.mounts[dir] = append(d.mounts[dir], m)
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	d.cfg.Logf.Printf("mounted hierarchy %d (%s) at %s, %s", h.ID(), h.Options(), dir, mode)
	return nil
}

// Unmount unmounts the containerfs mount at dir (the top one, if several
// are stacked there).
func (d *Daemon) Unmount(dir string) error {
	d.mu.Lock()
	var m *cgfs.Mount
	if ms := d.mounts[filepath.Clean(dir)]; len(ms) > 0 {
		m = ms[len(ms)-1]
	}
	d.mu.Unlock()
	if m == nil {
		return fmt.Errorf("%s is not a containerfs mount: %w", dir, syscall.EINVAL)
	}
	return m.Unmount(10 * time.Second)
}

// removeStaleMounts unmounts mounts of our type whose server is gone.
func removeStaleMounts(logf core.Logf) {
	for _, dir := range ownMounts() {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				logf.Printf("stale mount %s: %v", dir, err)
			} else {
				logf.Printf("removed stale mount %s", dir)
			}
		}
	}
}

// ownMounts lists the mount points of type fuse.container in
// /proc/self/mountinfo.
func ownMounts() []string {
	ms, err := proc.ReadMountInfo("")
	if err != nil {
		return nil
	}
	var dirs []string
	for _, m := range ms {
		if m.FSType == "fuse."+cgfs.FSType {
			dirs = append(dirs, m.Point)
		}
	}
	return dirs
}
