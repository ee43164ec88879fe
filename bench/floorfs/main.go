// Command floorfs is the floor the benchmarks compare containerfs with: the
// smallest go-fuse v2 file system that can do what a cgroup hierarchy is
// asked to do here, mounted exactly as containerfs mounts a hierarchy
// (DirectMountStrict, allow_other, default_permissions, no xattrs, 1 s entry
// and attribute timeouts, no negative caching, FOPEN_DIRECT_IO on files, and
// with -noflush FOPEN_NOFLUSH as well, as containerfs now opens them).
//
// Its root is a directory in which mkdir and rmdir work; every directory has
// one file, "tasks", that keeps what was last written to it (a write at
// offset 0 replaces the content) and returns it on read, so a benchmark can
// give it the size a real tasks file would have. Nothing else happens: what
// a request costs here is what any go-fuse file system pays for it.
//
// Usage: floorfs [-debug] [-nice N] [-noflush] MOUNTPOINT. It prints "ready"
// once mounted, and unmounts and exits on SIGINT, SIGTERM, or when its
// standard input reaches end of file (so a benchmark that dies takes the
// mount with it).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

type dir struct {
	fs.Inode
}

var (
	_ fs.NodeMkdirer   = (*dir)(nil)
	_ fs.NodeRmdirer   = (*dir)(nil)
	_ fs.NodeGetattrer = (*dir)(nil)
	_ fs.NodeOnAdder   = (*dir)(nil)
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeOpener    = (*file)(nil)
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
)

// OnAdd gives every directory, the root and those Mkdir makes, its tasks
// file.
func (d *dir) OnAdd(ctx context.Context) {
	d.AddChild("tasks", d.NewPersistentInode(ctx, &file{}, fs.StableAttr{Mode: fuse.S_IFREG}), false)
}

func (d *dir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFDIR | 0o755
	out.Nlink = 2
	return 0
}

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	child := &dir{}
	in := d.NewPersistentInode(ctx, child, fs.StableAttr{Mode: fuse.S_IFDIR}) // OnAdd adds its tasks
	out.Mode = fuse.S_IFDIR | 0o755
	out.Nlink = 2
	return in, 0
}

func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	ch := d.GetChild(name)
	if ch == nil {
		return syscall.ENOENT
	}
	if !ch.IsDir() {
		return syscall.ENOTDIR
	}
	for _, c := range ch.Children() {
		if c.IsDir() {
			return syscall.ENOTEMPTY
		}
	}
	// Drop the persistent nodes, so the directory is freed once the
	// kernel forgets it; the bridge unlinks it from d.
	ch.RmAllChildren()
	return 0
}

// file is a directory's tasks file.
type file struct {
	fs.Inode
	mu   sync.Mutex
	data []byte // guarded by mu
}

func (f *file) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFREG | 0o644
	out.Nlink = 1
	return 0
}

// openFlags are the flags Open returns: FOPEN_DIRECT_IO, and FOPEN_NOFLUSH
// with -noflush, which the benchmarks pass because containerfs's control
// files are opened with both.
var openFlags uint32 = fuse.FOPEN_DIRECT_IO

func (f *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &handle{f: f}, openFlags, 0
}

type handle struct{ f *file }

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if off >= int64(len(h.f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.f.data)))
	return fuse.ReadResultData(h.f.data[off:end]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if off > int64(len(h.f.data)) {
		off = int64(len(h.f.data))
	}
	// A fresh slice: a reply being sent may still hold the old one.
	nd := make([]byte, 0, off+int64(len(data)))
	nd = append(append(nd, h.f.data[:off]...), data...)
	h.f.data = nd
	return uint32(len(data)), 0
}

// setNice does what the containerfs daemon does to its own priority, so
// that the floor is served under the same scheduling: every thread now (the
// threads made later inherit it) and, when this process leads its session,
// the session's autogroup, since with autogroup on nice counts only within
// a session.
func setNice(nice int) {
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			log.Printf("floorfs: nice %d on thread %d: %v", nice, tid, err)
			return
		}
	}
	if sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0); int(sid) == os.Getpid() {
		if err := os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(nice)), 0); err != nil {
			log.Printf("floorfs: autogroup nice %d: %v", nice, err)
		}
	}
}

func main() {
	debug := flag.Bool("debug", false, "log every FUSE request")
	nice := flag.Int("nice", 0, "run at this nice value, and so its session's autogroup if it leads one, as the containerfs daemon does (-10)")
	noflush := flag.Bool("noflush", false, "open files with FOPEN_NOFLUSH too, so close sends no FLUSH (as containerfs does)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: floorfs [-debug] [-nice N] [-noflush] MOUNTPOINT")
		os.Exit(2)
	}
	if *noflush {
		openFlags |= fuse.FOPEN_NOFLUSH
	}
	mnt := flag.Arg(0)
	if *nice != 0 {
		setNice(*nice)
	}
	timeout := time.Second
	neg := time.Duration(0)
	server, err := fs.Mount(mnt, &dir{}, &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			FsName:            "floor",
			Name:              "floorfs",
			DirectMountStrict: true,
			Options:           []string{"default_permissions"},
			DisableXAttrs:     true,
			Debug:             *debug,
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &neg,
	})
	if err != nil {
		log.Fatalf("floorfs: mount %s: %v", mnt, err)
	}
	fmt.Println("ready")

	stop := make(chan string, 2)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { stop <- (<-sigs).String() }()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop <- "end of standard input"
	}()
	go func() {
		server.Wait()
		stop <- "unmounted"
	}()
	why := <-stop
	if why != "unmounted" {
		if err := server.Unmount(); err != nil {
			log.Printf("floorfs: unmount %s: %v; detaching", mnt, err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	}
	log.Printf("floorfs: %s: exiting", why)
}
