package main

// The mount(8) helper: what the binary does when run as mount.container.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/daemon"
)

// mount(8)'s exit codes.
const (
	exitOK      = 0
	exitUsage   = 1
	exitSystem  = 2
	exitFailure = 32
)

// vfsOptions are mount(8)'s generic options, which are not ours to parse.
var vfsOptions = map[string]bool{
	"rw": true, "ro": true, "defaults": true, "auto": true, "noauto": true,
	"suid": true, "nosuid": true, "dev": true, "nodev": true, "exec": true, "noexec": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true, "strictatime": true,
	"diratime": true, "nodiratime": true, "sync": true, "async": true, "silent": true, "loud": true,
	"user": true, "nouser": true, "users": true, "owner": true, "group": true, "_netdev": true,
	"nofail": true, "lazytime": true, "nolazytime": true, "mand": true, "nomand": true,
}

// mountHelper is mount.container: SOURCE DIR [-sfnv] [-o OPTIONS], the
// arguments mount(8) passes to a helper. It starts the daemon if none runs,
// asks it to mount, and returns once the mount is usable.
func mountHelper(args []string) int {
	var pos []string
	var opts []string
	fake, verbose := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t":
			if i+1 >= len(args) {
				return usage()
			}
			if a == "-o" {
				opts = append(opts, args[i+1])
			}
			i++
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, a[2:])
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, f := range a[1:] {
				switch f {
				case 'f':
					fake = true
				case 'v':
					verbose = true
				case 's', 'n':
				default:
					return usage()
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return usage()
	}
	source, dir := pos[0], pos[1]
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	var ours []string
	readOnly := false // mount(8) passes -o ro or -o rw; the last one holds
	for _, o := range strings.Split(strings.Join(opts, ","), ",") {
		switch {
		case o == "ro" || o == "rw":
			readOnly = o == "ro"
		case o != "" && !vfsOptions[o] && !strings.HasPrefix(o, "x-") && !strings.HasPrefix(o, "comment="):
			ours = append(ours, o)
		}
	}
	if err := superuser(); err != nil {
		fmt.Fprintf(os.Stderr, "mount.container: %s: must be superuser to mount: %v\n", dir, err)
		return exitUsage
	}
	if fake {
		return exitOK
	}
	socket := daemon.SocketPath("")
	if _, err := daemon.Call(socket, daemon.Request{Op: "ping"}, time.Second); err != nil {
		if verbose {
			fmt.Fprintf(os.Stderr, "mount.container: starting the daemon on %s\n", socket)
		}
		if err := startDaemon(socket); err != nil {
			fmt.Fprintf(os.Stderr, "mount.container: %v\n", err)
			return exitSystem
		}
	}
	rep, err := daemon.Call(socket, daemon.Request{
		Op: "mount", Source: source, Dir: dir, Options: strings.Join(ours, ","), ReadOnly: readOnly,
	}, 30*time.Second)
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mount.container: %s: %v\n", dir, err)
		return exitFailure
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "mount.container: %s mounted on %s\n", source, dir)
	}
	return exitOK
}

// superuser is nil for root in the initial user namespace, who alone may
// mount (the kernel asks for CAP_SYS_ADMIN there) and start a daemon. Root
// of another user namespace (unshare -Ur) is not: its uid_map is not the
// initial namespace's identity map.
func superuser() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("euid %d: %w", os.Geteuid(), syscall.EPERM)
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	if f := strings.Fields(string(b)); len(f) != 3 || f[0] != "0" || f[1] != "0" || f[2] != "4294967295" {
		return fmt.Errorf("root of a user namespace other than the initial one (uid_map %q): %w",
			strings.TrimSpace(string(b)), syscall.EPERM)
	}
	return nil
}

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: mount.container SOURCE DIR [-sfnv] [-o OPTIONS]")
	return exitUsage
}
