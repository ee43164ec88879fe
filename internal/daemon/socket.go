// The control socket: who may ask what (known by the peer credentials the
// kernel gives, SO_PEERCRED, never by what a client says) and what each
// request does.

package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/policy"
	"github.com/containerfs/containerfs/internal/prio"
	"golang.org/x/sys/unix"
)

func (d *Daemon) listen() error {
	sock := d.cfg.Socket
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		return err
	}
	if _, err := Call(sock, Request{Op: "ping"}, 200e6); err == nil {
		return fmt.Errorf("a containerfs daemon already answers on %s", sock)
	}
	os.Remove(sock)
	// Every user may connect, as every user may read /proc/PID/cgroup,
	// /proc/cgroups and a hierarchy's files: authorize judges each request.
	old := syscall.Umask(0o111)
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
	// Read the request before answering, a refusal included: a client
	// still writing it would otherwise see EPIPE ("broken pipe") instead
	// of the reply.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req Request
	decErr := json.NewDecoder(bufio.NewReader(conn)).Decode(&req)
	conn.SetReadDeadline(time.Time{})
	cred, err := peerCred(conn)
	if err != nil {
		enc.Encode(Reply{Error: "permission denied: no peer credentials: " + err.Error(), Errno: int(syscall.EPERM)})
		return
	}
	if decErr != nil {
		enc.Encode(Reply{Error: "bad request: " + decErr.Error(), Errno: int(syscall.EINVAL)})
		return
	}
	req.peer, req.uid, req.gid = int(cred.Pid), cred.Uid, cred.Gid
	if err := authorize(req); err != nil {
		enc.Encode(replyErr(err))
		return
	}
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
		if err := d.MountFlags(req.Source, req.Dir, req.Options, req.ReadOnly); err != nil {
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
		text, err := d.Policy.Explain(req.PID)
		if err != nil {
			return replyErr(err)
		}
		return Reply{Lines: lines(text)}
	case "classify", "exec", "sticky":
		place := d.place
		if req.uid != 0 {
			place = d.userPlace
		}
		if err := place(req); err != nil {
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
