// Command helper is the conformance suite's child process: it does one thing
// the suite needs done by a process other than the test (a multi-threaded
// task, or a write made with another uid) and reports the outcome on stdout,
// so that the test can check errnos without trusting a shell to report them.
//
//	helper threads N      start N extra threads, print "ready", then block
//	helper write FILE S   open FILE write-only, write S in one write(2)
//	helper mkdir DIR      mkdir DIR 0755
//	helper rmdir DIR      rmdir DIR
//
// write, mkdir and rmdir print "ok", or "STEP ERRNO" where STEP is open,
// write, mkdir or rmdir and ERRNO the decimal errno; they exit 0 either way.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "threads":
		if len(os.Args) != 3 {
			usage()
		}
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			usage()
		}
		threads(n)
	case "write":
		if len(os.Args) != 4 {
			usage()
		}
		f, err := os.OpenFile(os.Args[2], os.O_WRONLY, 0)
		if err != nil {
			report("open", err)
			return
		}
		_, err = f.Write([]byte(os.Args[3]))
		f.Close()
		report("write", err)
	case "mkdir":
		if len(os.Args) != 3 {
			usage()
		}
		report("mkdir", syscall.Mkdir(os.Args[2], 0o755))
	case "rmdir":
		if len(os.Args) != 3 {
			usage()
		}
		report("rmdir", syscall.Rmdir(os.Args[2]))
	default:
		usage()
	}
}

// threads starts n goroutines, each locked to its own OS thread, so that the
// process has at least n+1 threads, and blocks until it is killed.
func threads(n int) {
	started := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			started <- struct{}{}
			for {
				time.Sleep(time.Hour)
			}
		}()
	}
	for range n {
		<-started
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

func report(step string, err error) {
	if err == nil {
		fmt.Println("ok")
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Printf("%s %d\n", step, int(errno))
		return
	}
	fmt.Printf("%s %v\n", step, err)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: helper threads N | write FILE DATA | mkdir DIR | rmdir DIR")
	os.Exit(2)
}
