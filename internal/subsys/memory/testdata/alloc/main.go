// Command alloc is the memory tests' allocator: it maps an anonymous region
// and touches it page by page at a steady rate, reporting its progress on
// stdout so that a test can tell when it crossed a limit and how far it got.
//
// Usage: alloc RATE_MB_PER_S TOTAL_MB
//
// It prints "ready RSS NS" (RSS: its resident bytes from /proc/self/statm,
// NS: CLOCK_MONOTONIC in nanoseconds), waits for a line on stdin, then
// prints "touched BYTES RSS NS" after every MiB, and "done BYTES RSS NS" at
// the end, after which it sleeps until stdin is closed. It is built without the race
// detector, whose shadow memory would double its resident size.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func mono() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// statm stays open: a pread is a few µs, an open a few tens.
var statm, _ = os.Open("/proc/self/statm")

func resident() int64 {
	b := make([]byte, 128)
	n, _ := statm.ReadAt(b, 0)
	f := strings.Fields(string(b[:n]))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: alloc RATE_MB_PER_S TOTAL_MB")
		os.Exit(2)
	}
	rate, _ := strconv.ParseFloat(os.Args[1], 64)
	total, _ := strconv.Atoi(os.Args[2])
	const mib = 1 << 20
	mem, err := syscall.Mmap(-1, 0, total*mib, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		os.Exit(1)
	}
	out := bufio.NewWriterSize(os.Stdout, 64)
	in := bufio.NewReader(os.Stdin)
	fmt.Fprintf(out, "ready %d %d\n", resident(), mono())
	out.Flush()
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(0)
	}
	page := os.Getpagesize()
	start := time.Now()
	touched := 0
	for touched < len(mem) {
		// Touch what the rate allows by now, a MiB at a time.
		allowed := int(time.Since(start).Seconds() * rate * mib)
		if touched+mib > allowed {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for i := touched; i < touched+mib; i += page {
			mem[i] = 1
		}
		touched += mib
		fmt.Fprintf(out, "touched %d %d %d\n", touched, resident(), mono())
		out.Flush()
	}
	fmt.Fprintf(out, "done %d %d %d\n", touched, resident(), mono())
	out.Flush()
	io.Copy(io.Discard, in)
}
