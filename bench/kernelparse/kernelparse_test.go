// Package kernelparse checks the core's parsing of written numbers against
// this machine's kernel: every input is written to a u64 file of a bench-*
// child of the kernel's cpu hierarchy (cgroup v1) and to the same file of
// an in-process containerfs registry, and the two must give the same errno
// and leave the same value. It needs root and a cgroup v1 cpu hierarchy at
// /sys/fs/cgroup/cpu; without them it skips. It writes nothing else in the
// kernel's cgroups, moves no process, and removes its child.
package kernelparse

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
)

const cpuRoot = "/sys/fs/cgroup/cpu"

// kernelChild makes a bench-<random> child of the kernel's cpu hierarchy
// and removes it when the test ends.
func kernelChild(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	var st unix.Statfs_t
	if unix.Statfs(cpuRoot, &st) != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
		t.Skip("needs the kernel's cgroup v1 cpu hierarchy at " + cpuRoot)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	dir := filepath.Join(cpuRoot, "bench-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// write is one write(2) of data to path, and its errno.
func write(path, data string) syscall.Errno {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err.(syscall.Errno)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(data)); err != nil {
		return err.(syscall.Errno)
	}
	return 0
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if err == nil || !errors.As(err, &e) {
		return 0
	}
	return e
}

// inputs are adversarial writes to a number file: empty, whitespace, signs,
// bases, overflow, NUL, many lines, Unicode, huge.
func inputs() []string {
	in := []string{
		"", "\n", "\n\n", " ", "\t", "0", "1", "0\n", "1\n", "1\n\n", " 1", "1 ", "1\t", "\t1\n", "1\r\n",
		"+1", "++1", "-0", "-1", "+-1", "-+1", "1+", "01", "08", "010", "0x", "0x1", "0X1f", "0xg", "0x 1",
		"0b1", "0o7", "1_0", "1e3", "1.0", ".5", "1k", "one", "1 2", "1\n2", "1,2",
		"18446744073709551615", "18446744073709551616", "99999999999999999999999", "99999999999999999999999x",
		"0xffffffffffffffff", "0x10000000000000000", "01777777777777777777777", "02000000000000000000000",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"1\x00", "1\x00junk", "\x001", "x\x00", "1\xa0", "\xa01", "1\xc2\xa0", "\xc2\xa01", "１", "1\u2003",
		"000000000000000000000000000000000001",
		strings.Repeat("0", 4095) + "1", strings.Repeat("0", 4096) + "1", strings.Repeat("1\n", 3000),
	}
	return in
}

// TestU64Files compares notify_on_release and cgroup.clone_children,
// both write_u64 files of every cgroup: the errno of each write, then the
// value read back.
func TestU64Files(t *testing.T) {
	kdir := kernelChild(t)
	m := testutil.NewModel(t)
	h := m.Mount("none,name=kernelparse")
	c := m.Mkdir(h.Root(), "c")
	for _, file := range []string{"notify_on_release", "cgroup.clone_children"} {
		kpath := filepath.Join(kdir, file)
		for _, data := range inputs() {
			// Start both from the same value, 0, so a write that changes
			// nothing and one that writes 0 read the same.
			if e := write(kpath, "0"); e != 0 {
				t.Fatalf("reset %s: %v", kpath, e)
			}
			m.MustWrite(c, file, "0")
			kerr := write(kpath, data)
			ourErr := errnoOf(m.Write(c, file, data))
			kval, err := os.ReadFile(kpath)
			if err != nil {
				t.Fatal(err)
			}
			ourVal := m.Read(c, file)
			if kerr != ourErr || string(kval) != ourVal {
				t.Errorf("%s <- %s: kernel %v (reads %q), containerfs %v (reads %q)",
					file, strconv.QuoteToASCII(trim(data)), name(kerr), kval, name(ourErr), ourVal)
			}
		}
	}
}

// TestParsers compares core.Kstrtoull and core.Kstrtoll with the kernel,
// through notify_on_release (kstrtoull; any value but 0 reads 1) for the
// first; for the second, the kernel's answer to "-"+input where input is
// a plain unsigned number is derived from kstrtoull's, as lib/kstrtox.c
// does, so it is checked through the same file.
func TestParsers(t *testing.T) {
	kpath := filepath.Join(kernelChild(t), "notify_on_release")
	for _, data := range inputs() {
		if len(data) > core.MaxWrite || len(data) == 0 {
			continue // E2BIG, or no write at all, before any parser: TestU64Files covers both
		}
		kerr := write(kpath, data)
		_, err := core.Kstrtoull(core.CString(data))
		if got := errnoOf(err); got != kerr {
			t.Errorf("Kstrtoull(%s): %v, kernel kstrtoull %v", strconv.QuoteToASCII(data), name(got), name(kerr))
		}
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:20] + "..." + strconv.Itoa(len(s)) + " bytes"
	}
	return s
}

func name(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}
