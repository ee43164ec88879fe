package cgfs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FSType is the filesystem name; /proc/mounts shows "fuse.container".
const FSType = "container"

// Mount is one mounted view of a hierarchy.
type Mount struct {
	Dir    string
	Source string
	H      *core.Hierarchy
	// ReadOnly is mount -o ro: the kernel's VFS answers EROFS to every
	// write through this mount (a second, rw, mount of the hierarchy stays
	// writable, as ro is per mount in the kernel too).
	ReadOnly bool

	reg    *core.Registry
	server *fuse.Server
	born   time.Time
	done   chan struct{}

	mu    sync.Mutex
	dirs  map[uint64]*dirNode // container id → live directory node; guarded by mu
	queue chan core.Change
}

// Options for Serve.
type Options struct {
	// Debug logs every FUSE request.
	Debug bool
	// OnUnmount runs once the mount is gone, whoever unmounted it.
	OnUnmount func(*Mount)
	// ReadOnly mounts with MS_RDONLY (mount -o ro).
	ReadOnly bool
}

var entryTimeout = time.Second

// Serve mounts hierarchy h at dir and serves it until it is unmounted. The
// caller has counted the mount with Registry.Mount; Serve's mount releases
// it with Registry.Unmount when it goes away.
func Serve(reg *core.Registry, h *core.Hierarchy, dir, source string, opts Options) (*Mount, error) {
	m := &Mount{
		Dir: dir, Source: source, H: h, ReadOnly: opts.ReadOnly, reg: reg, born: time.Now(),
		done:  make(chan struct{}),
		dirs:  map[uint64]*dirNode{},
		queue: make(chan core.Change, 1024),
	}
	root := &dirNode{m: m, c: h.Root()}
	neg := time.Duration(0)
	fopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			FsName:            source,
			Name:              FSType,
			DirectMountStrict: true,
			Options:           []string{"default_permissions"},
			DisableXAttrs:     true,
			Debug:             opts.Debug,
		},
		EntryTimeout:    &entryTimeout,
		AttrTimeout:     &entryTimeout,
		NegativeTimeout: &neg,
	}
	if opts.ReadOnly {
		// MS_RDONLY on the mount itself, so that the kernel answers EROFS
		// before any request reaches us and /proc/mounts shows "ro". These
		// flags replace go-fuse's defaults, which are the first two.
		fopts.MountOptions.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY
	}
	cancel := h.Watch(m.changed)
	server, err := fs.Mount(dir, root, fopts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	m.server = server
	m.mu.Lock()
	m.dirs[h.Root().ID()] = root
	m.mu.Unlock()
	go m.invalidate()
	go func() {
		server.Wait()
		cancel()
		close(m.queue)
		reg.Unmount(h)
		if opts.OnUnmount != nil {
			opts.OnUnmount(m)
		}
		close(m.done)
	}()
	return m, nil
}

// Unmount unmounts the view and waits until it is gone.
//
// A busy mount (an open file, a working directory in it) is detached
// instead, as umount -l does; its server then lives until the last user
// lets go, or until the daemon exits, which ends the connection. Unmount
// waits at most wait for the server to finish.
func (m *Mount) Unmount(wait time.Duration) error {
	err := syscall.Unmount(m.Dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(m.Dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.Dir, err)
	}
	select {
	case <-m.done:
	case <-time.After(wait):
	}
	return nil
}

// Done is closed once the mount is gone.
func (m *Mount) Done() <-chan struct{} { return m.done }

// changed is the hierarchy's watcher: it queues the invalidation of cached
// entries that another view made stale.
func (m *Mount) changed(ch core.Change) {
	if ch.View == m {
		return
	}
	defer func() { recover() }() // the queue closes when the mount goes
	select {
	case m.queue <- ch:
	default:
		log.Printf("%s: invalidation queue full, entry %q may be stale for %v", m.Dir, ch.Name, entryTimeout)
	}
}

func (m *Mount) invalidate() {
	for ch := range m.queue {
		m.mu.Lock()
		d := m.dirs[ch.Parent.ID()]
		m.mu.Unlock()
		if d != nil {
			d.NotifyEntry(ch.Name)
		}
	}
}

func caller(ctx context.Context, m *Mount) core.Caller {
	who := core.Caller{View: m}
	if c, ok := fuse.FromContext(ctx); ok {
		who.PID, who.UID, who.GID = int(c.Pid), c.Uid, c.Gid
	}
	return who
}

// writable answers EROFS on a read-only mount. The kernel refuses such
// requests before they reach us; this holds if one ever does.
func (m *Mount) writable() syscall.Errno {
	if m.ReadOnly {
		return syscall.EROFS
	}
	return 0
}

// errno maps a model error to the reply.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	log.Printf("containerfs: %v", err)
	return syscall.EIO
}

func dirIno(c *core.Container) uint64         { return core.DirIno(c) }
func fileIno(c *core.Container, i int) uint64 { return core.FileIno(c, i) }
func (m *Mount) times(a *fuse.Attr)           { a.SetTimes(nil, &m.born, &m.born) }
func fillAttr(a *fuse.Attr, mode uint32, at core.Attr) {
	a.Mode = mode | at.Mode
	a.Uid, a.Gid = at.UID, at.GID
}
