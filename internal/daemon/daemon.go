package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/cgfs"
	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/policy"
	"github.com/containerfs/containerfs/internal/prio"
	"github.com/containerfs/containerfs/internal/worker"
	"golang.org/x/sys/unix"
)

// Config is what the daemon is started with.
type Config struct {
	Socket string
	Proc   string // procfs root, "/proc"
	Subsys []core.Subsys
	Debug  bool
	Logf   core.Logf // log.Printf if nil

	// The policy: rules in the cgrules.conf grammar, and a setup in the
	// cgconfig.conf grammar applied at start (its templates serve the
	// rules). An empty path reads nothing.
	RulesFile, RulesDir   string
	ConfigFile, ConfigDir string
	// Fresh makes new instances of Subsys (subsys.All), so that a
	// snapshot writes only the settings that differ from a new container's.
	Fresh func() []core.Subsys
	// StrictV1 keeps cgroup v1's default of clone_children off in new
	// hierarchies; containerfs turns it on so that new cpusets are usable.
	StrictV1 bool
}

// Daemon owns the registry and every mount.
type Daemon struct {
	cfg Config
	Reg *core.Registry

	ln    net.Listener
	track *tracker

	// Policy places processes by the rules (internal/policy).
	Policy *policy.Engine
	watch  *worker.Worker // reloads the policy when its files change

	mu      sync.Mutex
	mounts  map[string][]*cgfs.Mount // by directory, oldest first (mounts stack); guarded by mu
	metrics *http.Server             // guarded by mu

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{} // closed when Close has unmounted everything
}

// New makes the registry, learns every task on the machine, and listens on
// the control socket.
func New(cfg Config) (*Daemon, error) {
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	d := &Daemon{cfg: cfg, mounts: map[string][]*cgfs.Mount{}, closed: make(chan struct{})}
	procs := core.ProcFS{Root: cfg.Proc}
	d.Reg = core.NewRegistry(procs, cfg.Subsys...)
	d.Reg.SetSelf(os.Getpid())
	d.Reg.CloneChildrenByDefault(!cfg.StrictV1)
	d.Reg.OnRelease(d.release)
	prio.Raise(cfg.Logf.Printf)
	removeStaleMounts(cfg.Logf)
	if err := d.listen(); err != nil {
		return nil, err
	}
	// Listen for events before the first scan, so that nothing born
	// between the two is missed.
	d.Policy = policy.New(policy.Options{
		Model: policy.CoreModel{Reg: d.Reg}, Procs: policy.ProcFS{Root: cfg.Proc},
		Known: d.Reg.Subsystems(), RulesFile: cfg.RulesFile, RulesDir: cfg.RulesDir,
		Logf: cfg.Logf,
	})
	// A move made by hand (a write to tasks or cgroup.procs) sticks: the
	// rules leave that process alone from then on.
	d.Reg.OnAttach(func(dst *core.Container, who core.Caller, tgid int, start uint64) {
		if !policy.Own(who) {
			d.Policy.NoteManual(tgid, start)
		}
	})
	d.track = newTracker(d.Reg, cfg.Proc, cfg.Logf)
	d.track.onEvent = d.Policy.HandleEvent
	d.track.onLost = func() { d.Policy.Lost(nil) }
	d.track.resync()
	go d.track.run()
	return d, nil
}

// StartPolicy applies the setup file (mounting what it names through
// Mount), loads the rules, classifies every process once, as cgrulesengd
// does at start-up, and reloads the rules whenever their files (or the
// user and group databases) change. Bad files are logged with their line
// numbers; the daemon runs on without them.
func (d *Daemon) StartPolicy() {
	cfg, err := policy.LoadConfig(d.cfg.ConfigFile, d.cfg.ConfigDir)
	if err != nil {
		d.cfg.Logf.Printf("setup not applied:\n%v", err)
	} else {
		for _, w := range cfg.Warnings {
			d.cfg.Logf.Printf("setup: %s", w)
		}
		if err := policy.Apply(policy.CoreModel{Reg: d.Reg}, cfg, policy.ApplyOptions{Mount: d.Mount}); err != nil {
			d.cfg.Logf.Printf("setup: %v", err)
		}
		d.Policy.SetConfig(cfg)
	}
	d.Policy.Reload()
	go func() {
		t0 := time.Now()
		moved, err := d.Policy.ClassifyAll()
		d.cfg.Logf.Printf("rules: %d processes placed at start-up in %v", moved, time.Since(t0).Round(time.Millisecond))
		if err != nil {
			d.cfg.Logf.Printf("rules: %v", err)
		}
	}()
	var watched []string
	for _, p := range []string{d.cfg.RulesFile, d.cfg.RulesDir, d.cfg.ConfigFile, d.cfg.ConfigDir, "/etc/passwd", "/etc/group"} {
		if p != "" {
			watched = append(watched, p)
		}
	}
	d.watch = policy.Watch(time.Second, func() { d.ReloadPolicy() }, watched...)
}

// ReloadPolicy re-reads the rules and the setup's templates (SIGHUP). The
// setup is not applied again: that would undo changes made since. On an
// error the rules in force stay.
func (d *Daemon) ReloadPolicy() error {
	cfg, err := policy.LoadConfig(d.cfg.ConfigFile, d.cfg.ConfigDir)
	if err != nil {
		d.cfg.Logf.Printf("templates not reloaded:\n%v", err)
	} else {
		d.Policy.SetConfig(cfg)
	}
	return errors.Join(err, d.Policy.Reload())
}

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

func (d *Daemon) listen() error {
	sock := d.cfg.Socket
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		return err
	}
	if _, err := Call(sock, Request{Op: "ping"}, 200e6); err == nil {
		return fmt.Errorf("a containerfs daemon already answers on %s", sock)
	}
	os.Remove(sock)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	d.ln = ln
	return nil
}

// Serve answers the control socket until Close.
func (d *Daemon) Serve() error {
	for {
		conn, err := d.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Close closed the listener: let it finish unmounting
				// before the caller returns (and the process exits).
				<-d.closed
				return nil
			}
			return err
		}
		go d.handle(conn.(*net.UnixConn))
	}
}

func (d *Daemon) handle(conn *net.UnixConn) {
	defer conn.Close()
	enc := json.NewEncoder(conn)
	cred, err := peerCred(conn)
	if err != nil || cred.Uid != 0 {
		enc.Encode(Reply{Error: "permission denied: the control socket is root's", Errno: int(syscall.EPERM)})
		return
	}
	var req Request
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		enc.Encode(Reply{Error: "bad request: " + err.Error(), Errno: int(syscall.EINVAL)})
		return
	}
	req.peer = int(cred.Pid)
	switch req.Op {
	case "snapshot", "lscgroup", "cgget":
		// Walks of the whole model, as long as it is big: not real-time.
		// The thread ends with this goroutine.
		prio.Background()
	}
	enc.Encode(d.Do(req))
}

func peerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return cred, cerr
}

// Do carries out one request.
func (d *Daemon) Do(req Request) Reply {
	switch req.Op {
	case "ping":
		return Reply{PID: os.Getpid()}
	case "mount":
		if err := d.Mount(req.Source, req.Dir, req.Options); err != nil {
			return replyErr(err)
		}
		return Reply{}
	case "umount":
		if err := d.Unmount(req.Dir); err != nil {
			return replyErr(err)
		}
		return Reply{}
	case "cgroup":
		lines, err := d.CgroupLines(req.PID)
		if err != nil {
			return replyErr(err)
		}
		return Reply{Lines: lines}
	case "lssubsys":
		return Reply{Lines: d.ProcCgroups()}
	case "explain":
		return Reply{Lines: lines(d.Policy.Explain(req.PID))}
	case "classify", "exec", "sticky":
		if err := d.place(req); err != nil {
			return replyErr(err)
		}
		return Reply{}
	case "snapshot":
		cfg, err := policy.Snapshot(d.Reg, policy.SnapshotOptions{MountDirs: d.mountDirs, Fresh: d.cfg.Fresh})
		if err != nil {
			return replyErr(err)
		}
		b, err := policy.Format(cfg)
		if err != nil {
			return replyErr(err)
		}
		return Reply{Lines: lines(string(b))}
	case "reload":
		if err := d.ReloadPolicy(); err != nil {
			return replyErr(err)
		}
		return Reply{}
	case "stats":
		return Reply{Lines: d.track.stats()}
	case "cgcreate", "cgdelete", "cgset", "cgget", "lscgroup":
		out, err := d.cgtool(req)
		if err != nil {
			return replyErr(err)
		}
		return Reply{Lines: out}
	}
	return replyErr(fmt.Errorf("unknown request %q: %w", req.Op, syscall.EINVAL))
}

// cgtool serves libcgroup's group tools (internal/policy/tools.go).
func (d *Daemon) cgtool(req Request) ([]string, error) {
	spec, err := policy.ParseSpec(req.Groups)
	if err != nil {
		return nil, err
	}
	switch req.Op {
	case "cgcreate":
		return nil, policy.Create(d.Reg, spec)
	case "cgdelete":
		return nil, policy.Delete(d.Reg, spec, req.Recursive)
	case "cgset":
		return nil, policy.Set(d.Reg, req.Settings, req.Paths)
	case "cgget":
		return policy.Get(d.Reg, policy.GetOptions{Names: req.Names, Controllers: req.Controllers, Groups: spec,
			Paths: req.Paths, NoHeaders: req.NoHeaders, ValuesOnly: req.ValuesOnly})
	}
	return policy.List(d.Reg, spec)
}

// place serves classify (cgclassify), exec (cgexec: pid 0 is the caller,
// who execs once this returns) and sticky.
func (d *Daemon) place(req Request) error {
	mode := policy.StickSelf
	switch req.Sticky {
	case "":
	case "tree":
		mode = policy.StickTree
	case "none":
		mode = policy.StickNone
	default:
		return fmt.Errorf("sticky %q: want tree or none: %w", req.Sticky, syscall.EINVAL)
	}
	spec, err := policy.ParseSpec(req.Groups)
	if err != nil {
		return err
	}
	switch req.Op {
	case "classify":
		return d.Policy.Classify(req.PIDs, spec, mode)
	case "exec":
		pid := req.PID
		if pid == 0 {
			pid = req.peer
		}
		return d.Policy.Exec(pid, spec, req.Program, mode)
	}
	var errs []error
	for _, pid := range req.PIDs {
		errs = append(errs, d.Policy.Stick(pid, mode))
	}
	return errors.Join(errs...)
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// Mount mounts the hierarchy that opts stand for at dir.
func (d *Daemon) Mount(source, dir, opts string) error {
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
		Debug: d.cfg.Debug,
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
	d.cfg.Logf.Printf("mounted hierarchy %d (%s) at %s", h.ID(), h.Options(), dir)
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

// Close unmounts everything and stops answering.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.close()
		close(d.closed)
	})
	<-d.closed
	return d.closeErr
}

func (d *Daemon) close() error {
	d.ln.Close()
	if d.watch != nil {
		<-d.watch.Stop() // a reload under way ends first: none runs after Close
	}
	d.track.close()
	os.Remove(d.cfg.Socket)
	d.mu.Lock()
	if d.metrics != nil {
		d.metrics.Close()
	}
	var ms []*cgfs.Mount
	for _, stack := range d.mounts {
		for i := len(stack) - 1; i >= 0; i-- {
			ms = append(ms, stack[i])
		}
	}
	d.mu.Unlock()
	// In parallel: a busy mount is detached and must not hold up the rest.
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Unmount(2 * time.Second) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// CgroupLines is task pid's /proc/PID/cgroup, as the model has it.
func (d *Daemon) CgroupLines(pid int) ([]string, error) {
	ws, ok := d.Reg.Where(pid)
	if !ok {
		return nil, fmt.Errorf("task %d: %w", pid, syscall.ESRCH)
	}
	lines := make([]string, 0, len(ws))
	for _, w := range ws {
		lines = append(lines, fmt.Sprintf("%d:%s:%s", w.Hierarchy.ID(), hierarchyLabel(w.Hierarchy), w.Path))
	}
	return lines, nil
}

// hierarchyLabel is the middle field of /proc/PID/cgroup: the subsystems,
// then name=X for a named hierarchy.
func hierarchyLabel(h *core.Hierarchy) string {
	parts := h.Subsystems()
	if name := h.Options().Name; name != "" {
		parts = append(parts, "name="+name)
	}
	return strings.Join(parts, ",")
}

// ProcCgroups is the /proc/cgroups table.
func (d *Daemon) ProcCgroups() []string {
	lines := []string{"#subsys_name\thierarchy\tnum_cgroups\tenabled"}
	for _, s := range d.Reg.Stats() {
		en := 0
		if s.Enabled {
			en = 1
		}
		lines = append(lines, fmt.Sprintf("%s\t%d\t%d\t%d", s.Subsys, s.Hierarchy, s.Containers, en))
	}
	return lines
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

// ownMounts lists the mount points of type fuse.container in /proc/self/mounts.
func ownMounts() []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "fuse."+cgfs.FSType {
			dirs = append(dirs, unescapeMount(f[1]))
		}
	}
	return dirs
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
