// The control socket's protocol, the client side included: one JSON
// Request and one JSON Reply per connection, errors carried as errnos.

package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/containerfs.sock"

// SocketPath is the control socket path a client should use: flag, then
// $CONTAINERFS_SOCKET, then DefaultSocket.
func SocketPath(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("CONTAINERFS_SOCKET"); env != "" {
		return env
	}
	return DefaultSocket
}

// Request is one call on the control socket.
type Request struct {
	Op      string `json:"op"` // ping, mount, umount, cgroup, lssubsys, stats
	Source  string `json:"source,omitempty"`
	Dir     string `json:"dir,omitempty"`
	Options string `json:"options,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// ReadOnly is mount(8)'s -o ro, for mount.
	ReadOnly bool `json:"read_only,omitempty"`

	// Policy: classify, exec, sticky, explain, snapshot, reload.
	PIDs    []int    `json:"pids,omitempty"`    // classify, sticky
	Groups  []string `json:"groups,omitempty"`  // -g CONTROLLERS:PATH; none: by the rules
	Program string   `json:"program,omitempty"` // exec: the program the caller execs next
	Sticky  string   `json:"sticky,omitempty"`  // "" (the process only), "tree" (--sticky), "none" (--cancel-unchanged)

	// libcgroup's tools: cgcreate, cgdelete, cgset, cgget, lscgroup (Groups
	// are their -g <controllers>:<path>).
	Recursive   bool     `json:"recursive,omitempty"`   // cgdelete -r
	Settings    []string `json:"settings,omitempty"`    // cgset -r name=value
	Names       []string `json:"names,omitempty"`       // cgget -r name
	Controllers []string `json:"controllers,omitempty"` // cgget -g controller
	Paths       []string `json:"paths,omitempty"`       // cgset, cgget: the groups
	NoHeaders   bool     `json:"no_headers,omitempty"`  // cgget -n
	ValuesOnly  bool     `json:"values_only,omitempty"` // cgget -v

	// The caller, from SO_PEERCRED: its PID, effective uid and gid. Never
	// sent; zero (root) for a request made in process through Do.
	peer     int
	uid, gid uint32
}

// Reply answers a Request.
type Reply struct {
	Error string   `json:"error,omitempty"`
	Errno int      `json:"errno,omitempty"`
	Lines []string `json:"lines,omitempty"`
	PID   int      `json:"pid,omitempty"` // the daemon's, for ping
}

// Err turns a failed reply back into an error with the daemon's message
// that unwraps to its errno.
func (r *Reply) Err() error {
	if r.Error == "" {
		return nil
	}
	if r.Errno != 0 {
		return &remoteError{msg: r.Error, errno: syscall.Errno(r.Errno)}
	}
	return errors.New(r.Error)
}

type remoteError struct {
	msg   string
	errno syscall.Errno
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.errno }

func replyErr(err error) Reply {
	r := Reply{Error: err.Error()}
	var e syscall.Errno
	if errors.As(err, &e) {
		r.Errno = int(e)
	}
	return r
}

// Call sends one request to the daemon at socket and waits for its reply.
func Call(socket string, req Request, timeout time.Duration) (Reply, error) {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return Reply{}, fmt.Errorf("containerfs daemon at %s: %w", socket, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	// A daemon that refused the request may have answered and closed
	// before it was all written: its reply, not the write's EPIPE, says why.
	werr := json.NewEncoder(conn).Encode(req)
	var rep Reply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		if werr != nil {
			err = werr
		}
		return Reply{}, fmt.Errorf("containerfs daemon at %s: %w", socket, err)
	}
	return rep, nil
}
