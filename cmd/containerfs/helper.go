package main

// The mount(8) helper: what the binary does when run as mount.container.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	for _, o := range strings.Split(strings.Join(opts, ","), ",") {
		if o != "" && !vfsOptions[o] && !strings.HasPrefix(o, "x-") && !strings.HasPrefix(o, "comment=") {
			ours = append(ours, o)
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "mount.container: %s: must be superuser to mount\n", dir)
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
		Op: "mount", Source: source, Dir: dir, Options: strings.Join(ours, ","),
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

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: mount.container SOURCE DIR [-sfnv] [-o OPTIONS]")
	return exitUsage
}
