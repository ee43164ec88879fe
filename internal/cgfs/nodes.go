// The nodes of a mount: a container's directory and its control files,
// and an open control file's handle.

package cgfs

import (
	"context"
	"sync"
	"syscall"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirNode is a container's directory.
type dirNode struct {
	fs.Inode
	m *Mount
	c *core.Container
}

var (
	_ fs.NodeLookuper    = (*dirNode)(nil)
	_ fs.NodeReaddirer   = (*dirNode)(nil)
	_ fs.NodeMkdirer     = (*dirNode)(nil)
	_ fs.NodeRmdirer     = (*dirNode)(nil)
	_ fs.NodeRenamer     = (*dirNode)(nil)
	_ fs.NodeUnlinker    = (*dirNode)(nil)
	_ fs.NodeCreater     = (*dirNode)(nil)
	_ fs.NodeMknoder     = (*dirNode)(nil)
	_ fs.NodeSymlinker   = (*dirNode)(nil)
	_ fs.NodeLinker      = (*dirNode)(nil)
	_ fs.NodeGetattrer   = (*dirNode)(nil)
	_ fs.NodeSetattrer   = (*dirNode)(nil)
	_ fs.NodeOnForgetter = (*dirNode)(nil)
	_ fs.NodeGetattrer   = (*fileNode)(nil)
	_ fs.NodeSetattrer   = (*fileNode)(nil)
	_ fs.NodeOpener      = (*fileNode)(nil)
	_ fs.FileReader      = (*handle)(nil)
	_ fs.FileWriter      = (*handle)(nil)
)

func (d *dirNode) child(ctx context.Context, e core.Entry, out *fuse.EntryOut) *fs.Inode {
	if e.Child != nil {
		n := &dirNode{m: d.m, c: e.Child}
		in := d.NewInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFDIR, Ino: dirIno(e.Child)})
		if live, ok := in.Operations().(*dirNode); ok {
			d.m.mu.Lock()
			d.m.dirs[e.Child.ID()] = live
			d.m.mu.Unlock()
		}
		fillAttr(&out.Attr, fuse.S_IFDIR, e.Attr)
		out.Attr.Nlink = 2
		out.Attr.Ino = dirIno(e.Child)
		d.m.times(&out.Attr)
		return in
	}
	n := &fileNode{m: d.m, c: d.c, f: e.File}
	in := d.NewInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFREG, Ino: fileIno(d.c, e.Index)})
	fillAttr(&out.Attr, fuse.S_IFREG, e.Attr)
	out.Attr.Nlink = 1
	out.Attr.Ino = fileIno(d.c, e.Index)
	d.m.times(&out.Attr)
	return in
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	e, ok := d.c.Lookup(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.child(ctx, e, out), 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	es := d.c.List()
	list := make([]fuse.DirEntry, 0, len(es)+2)
	parent := d.c
	if p := d.c.Parent(); p != nil {
		parent = p
	}
	list = append(list,
		fuse.DirEntry{Name: ".", Mode: fuse.S_IFDIR, Ino: dirIno(d.c)},
		fuse.DirEntry{Name: "..", Mode: fuse.S_IFDIR, Ino: dirIno(parent)})
	for _, e := range es {
		if e.Child != nil {
			list = append(list, fuse.DirEntry{Name: e.Child.NameLocked(), Mode: fuse.S_IFDIR, Ino: dirIno(e.Child)})
		} else {
			list = append(list, fuse.DirEntry{Name: e.File.Name, Mode: fuse.S_IFREG, Ino: fileIno(d.c, e.Index)})
		}
	}
	return fs.NewListDirStream(list), 0
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := d.m.writable(); e != 0 {
		return nil, e
	}
	c, err := d.m.reg.Mkdir(d.c, name, mode, caller(ctx, d.m))
	if err != nil {
		return nil, errno(err)
	}
	return d.child(ctx, core.Entry{Child: c, Attr: c.DirAttr()}, out), 0
}

func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := d.m.writable(); e != 0 {
		return e
	}
	return errno(d.m.reg.Rmdir(d.c, name, caller(ctx, d.m)))
}

func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := d.m.writable(); e != 0 {
		return e
	}
	if flags != 0 {
		return syscall.EINVAL
	}
	// cgroup v1: a container can only be renamed within its parent.
	np, ok := newParent.(*dirNode)
	if !ok || np.c != d.c {
		return syscall.EIO
	}
	return errno(d.m.reg.Rename(d.c, name, newName, caller(ctx, d.m)))
}

// Control files cannot be removed or made by hand; the errnos are the ones
// the VFS gives for kernfs, which lacks these operations.
func (d *dirNode) Unlink(context.Context, string) syscall.Errno { return syscall.EPERM }

func (d *dirNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EACCES
}

func (d *dirNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *dirNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *dirNode) Link(context.Context, fs.InodeEmbedder, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, fuse.S_IFDIR, d.c.DirAttr())
	out.Attr.Nlink = 2
	d.m.times(&out.Attr)
	return 0
}

func (d *dirNode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := d.m.writable(); e != 0 {
		return e
	}
	a, err := d.c.SetAttr(nil, setMode(in), setUID(in), setGID(in))
	if err != nil {
		return errno(err)
	}
	fillAttr(&out.Attr, fuse.S_IFDIR, a)
	out.Attr.Nlink = 2
	d.m.times(&out.Attr)
	return 0
}

func (d *dirNode) OnForget() {
	d.m.mu.Lock()
	if d.m.dirs[d.c.ID()] == d {
		delete(d.m.dirs, d.c.ID())
	}
	d.m.mu.Unlock()
}

func setMode(in *fuse.SetAttrIn) *uint32 {
	if m, ok := in.GetMode(); ok {
		return &m
	}
	return nil
}

func setUID(in *fuse.SetAttrIn) *uint32 {
	if u, ok := in.GetUID(); ok {
		return &u
	}
	return nil
}

func setGID(in *fuse.SetAttrIn) *uint32 {
	if g, ok := in.GetGID(); ok {
		return &g
	}
	return nil
}

// fileNode is a control file of a container.
type fileNode struct {
	fs.Inode
	m *Mount
	c *core.Container
	f *core.BoundFile
}

func (n *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, fuse.S_IFREG, n.c.FileAttr(n.f))
	out.Attr.Nlink = 1
	n.m.times(&out.Attr)
	return 0
}

// Setattr changes mode and owner; a truncation (O_TRUNC, as a shell's ">"
// asks for) is accepted and ignored, as cgroupfs does.
func (n *fileNode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.m.writable(); e != 0 {
		return e
	}
	a, err := n.c.SetAttr(n.f, setMode(in), setUID(in), setGID(in))
	if err != nil {
		return errno(err)
	}
	fillAttr(&out.Attr, fuse.S_IFREG, a)
	out.Attr.Nlink = 1
	n.m.times(&out.Attr)
	return 0
}

// Open serves every read fresh (direct I/O), and asks for no FLUSH at
// close: a write is complete when write(2) returns, so close(2) need not
// wait for a round trip.
//
// The opener's credentials are kept: every write through the descriptor is
// judged by them, as the kernel judges cgroup writes by the file's f_cred
// (since the CVE-2021-4197 fix), so that a descriptor handed to a more
// privileged process writes with no more right than its opener had.
func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if e := n.m.writable(); e != 0 {
			return nil, 0, e
		}
	}
	return &handle{n: n, opener: caller(ctx, n.m)}, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH, 0
}

// handle is an open control file: the snapshot being read, and who opened
// it.
type handle struct {
	n      *fileNode
	opener core.Caller
	mu     sync.Mutex
	data   []byte // guarded by mu
}

// Read formats the file at the first read, or any read from offset 0, and
// serves the rest of that snapshot.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == 0 || h.data == nil {
		s, err := h.n.m.reg.ReadFile(h.n.c, h.n.f)
		if err != nil {
			return nil, errno(err)
		}
		h.data = []byte(s)
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	// No copy: a later read replaces h.data, never the bytes under it.
	return fuse.ReadResultData(h.data[off:end]), 0
}

// Write hands one write(2) to the file's handler, with the opener's
// credentials and the writer's PID (the task "0" names in tasks).
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	who := h.opener
	who.PID = caller(ctx, h.n.m).PID
	if err := h.n.m.reg.WriteFile(h.n.c, h.n.f, who, string(data)); err != nil {
		return 0, errno(err)
	}
	return uint32(len(data)), 0
}
