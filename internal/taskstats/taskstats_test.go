package taskstats

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/containerfs/containerfs/internal/testutil"
)

var record = flag.Bool("record", false, "rewrite testdata/*.bin from the live kernel")

// parseBytes decodes one netlink message as received.
func parseBytes(b []byte) ([]Record, error) {
	var m netlink.Message
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return recordsOf(m)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFixtures decodes records recorded from Linux 6.18 (TestRecord): the
// exit of a shell busy loop, the exit of the last thread of a four-thread
// process (with the group's aggregate), and the reply to a query.
func TestFixtures(t *testing.T) {
	tests := []struct {
		file  string
		group []bool // the records, in order: a group aggregate or not
		comm  string
		exit  bool
	}{
		{"exit.bin", []bool{false}, "sh", true},
		{"exit_group.bin", []bool{false, true}, "taskstats.test", true},
		{"get.bin", []bool{false}, "taskstats.test", false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			recs, err := parseBytes(fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(tc.group) {
				t.Fatalf("got %d records, want %d", len(recs), len(tc.group))
			}
			for i, r := range recs {
				s := r.Stats
				if r.Group != tc.group[i] {
					t.Errorf("record %d: group %v, want %v", i, r.Group, tc.group[i])
				}
				// 6.18 sends version 16, 560 bytes.
				if s.Version != 16 || s.Len != 560 {
					t.Errorf("record %d: version %d, %d bytes; want 16, 560", i, s.Version, s.Len)
				}
				if !r.Group && (r.ID != s.PID || s.Comm != tc.comm || s.TGID == 0) {
					t.Errorf("record %d: id %d, pid %d, tgid %d, comm %q; want the id as pid, comm %q, a tgid", i, r.ID, s.PID, s.TGID, s.Comm, tc.comm)
				}
				// A group aggregate carries the summed times and delays only.
				if r.Group && (r.ID != recs[0].Stats.TGID || s.PID != 0 || s.BeginTime != 0) {
					t.Errorf("group record %d: id %d, pid %d, btime %d; want the tgid %d, no pid, no btime", i, r.ID, s.PID, s.BeginTime, recs[0].Stats.TGID)
				}
				if r.Group && s.RunVirtualNS < recs[0].Stats.RunVirtualNS {
					t.Errorf("group record %d: %d ns, want at least the last thread's %d", i, s.RunVirtualNS, recs[0].Stats.RunVirtualNS)
				}
				if s.RunVirtualNS == 0 || (!r.Group && s.BeginTime == 0) {
					t.Errorf("record %d: cpu_run_virtual_total %d, btime %d; want both set", i, s.RunVirtualNS, s.BeginTime)
				}
				if s.RunRealNS != (s.UserUS+s.SysUS)*1000 {
					t.Errorf("record %d: cpu_run_real_total %d, want (ac_utime %d + ac_stime %d) µs", i, s.RunRealNS, s.UserUS, s.SysUS)
				}
			}
			if tc.exit && recs[0].Stats.RunVirtualNS < uint64(5*time.Millisecond) {
				t.Errorf("the exit of a task that burnt CPU shows %d ns", recs[0].Stats.RunVirtualNS)
			}
		})
	}
}

// TestDecodeLengths: a shorter struct (an older kernel) leaves the fields
// it lacks zero; a longer one (a newer kernel) is cut to what we know.
func TestDecodeLengths(t *testing.T) {
	recs, err := parseBytes(fixture(t, "exit.bin"))
	if err != nil {
		t.Fatal(err)
	}
	full := recs[0].Stats
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&full.Raw)), full.Len)
	size := int(unsafe.Sizeof(unix.Taskstats{}))
	tgidOff := int(unsafe.Offsetof(full.Raw.Ac_tgid))
	tests := []struct {
		name    string
		in      []byte
		wantLen int
		tgid    bool // ac_tgid (version 9+ offsets) survives
	}{
		{"as sent", raw, 560, true},
		{"cut before ac_tgid", raw[:tgidOff], tgidOff, false},
		{"longer than we know", append(append([]byte(nil), raw...), make([]byte, size)...), size, true},
		{"empty", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := DecodeStats(tc.in)
			if s.Len != tc.wantLen {
				t.Errorf("len: got %d, want %d", s.Len, tc.wantLen)
			}
			if (s.TGID == full.TGID) != tc.tgid {
				t.Errorf("tgid: got %d (full record %d), want kept %v", s.TGID, full.TGID, tc.tgid)
			}
			if tc.wantLen > int(unsafe.Offsetof(full.Raw.Ac_stime))+8 && (s.UserUS != full.UserUS || s.SysUS != full.SysUS) {
				t.Errorf("times: got %d/%d, want %d/%d", s.UserUS, s.SysUS, full.UserUS, full.SysUS)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range [][]byte{{1, 2, 3}, {8, 0, 4, 0, 1, 0, 0, 0}} {
		if _, err := ParseRecords(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRecords(%v): got %v, want ErrMalformed", in, err)
		}
	}
	// A record nest without stats.
	ae := netlink.NewAttributeEncoder()
	ae.Nested(unix.TASKSTATS_TYPE_AGGR_PID, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(unix.TASKSTATS_TYPE_PID, 1)
		return nil
	})
	b, _ := ae.Encode()
	if _, err := ParseRecords(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("record without stats: got %v, want ErrMalformed", err)
	}
}

// TestLive listens on every CPU while a child burns CPU and exits, and
// checks its record against the child's rusage; queries this process;
// and checks that Close ends a blocked Receive.
func TestLive(t *testing.T) {
	testutil.RequireRoot(t)
	l, err := Listen("0-"+itoa(runtimeCPUs()-1), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	reaped := uint64(ru.Utime.Nano() + ru.Stime.Nano())
	got := make(chan Stats, 1)
	go func() {
		for {
			recs, err := l.Receive()
			if err != nil {
				close(got)
				return
			}
			for _, r := range recs {
				if !r.Group && r.ID == cmd.Process.Pid {
					got <- r.Stats
					return
				}
			}
		}
	}()
	select {
	case s, ok := <-got:
		if !ok {
			t.Fatal("listener failed")
		}
		// The record is sent early in do_exit, with se.sum_exec_runtime as
		// of the task's last scheduler update: a little less than what
		// wait4 reports at the reap.
		if s.RunVirtualNS > reaped || s.RunVirtualNS+uint64(10*time.Millisecond) < reaped {
			t.Errorf("cpu_run_virtual_total %d, want at most and within 10ms of rusage %d", s.RunVirtualNS, reaped)
		}
		t.Logf("record %d ns, rusage %d ns: %d µs short", s.RunVirtualNS, reaped, (reaped-s.RunVirtualNS)/1000)
	case <-time.After(5 * time.Second):
		t.Fatal("no exit record within 5 s")
	}

	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.PID(os.Getpid())
	if err != nil || s.PID != os.Getpid() || s.RunVirtualNS == 0 {
		t.Errorf("PID(self): got %+v, %v", s, err)
	}
	if g, err := c.TGID(os.Getpid()); err != nil || g.RunVirtualNS < s.RunVirtualNS {
		t.Errorf("TGID(self): got %d ns, %v; want at least the leader's %d", g.RunVirtualNS, err, s.RunVirtualNS)
	}
	if _, err := c.PID(1 << 30); !errors.Is(err, unix.ESRCH) {
		t.Errorf("PID(no such task): got %v, want ESRCH", err)
	}

	l2, err := Listen("0", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := l2.Receive(); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	l2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Receive after Close: got %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Close did not end a blocked Receive")
	}
}

func TestListenBadMask(t *testing.T) {
	testutil.RequireRoot(t)
	if l, err := Listen("100000", 0); err == nil {
		l.Close()
		t.Error("Listen on an impossible CPU: got nil, want an error")
	}
}

// TestRecord rewrites the fixtures from the live kernel. Run:
//
//	go test -run TestRecord ./internal/taskstats/ -record
func TestRecord(t *testing.T) {
	if !*record {
		t.Skip("run with -record to rewrite testdata/*.bin")
	}
	testutil.RequireRoot(t)
	l, err := Listen("0-"+itoa(runtimeCPUs()-1), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	raw := map[int][]byte{} // by the first record's id
	l.tap = func(m netlink.Message) {
		mu.Lock()
		defer mu.Unlock()
		b, err := m.MarshalBinary()
		if err != nil {
			return
		}
		if recs, err := recordsOf(m); err == nil && len(recs) > 0 {
			raw[recs[0].ID] = b
			for _, r := range recs {
				if r.Group {
					raw[-r.ID] = b // the group's last thread, by -tgid
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", "i=0; while [ $i -lt 10000 ]; do i=$((i+1)); done")
	if err := sh.Run(); err != nil {
		t.Fatal(err)
	}
	th := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	th.Env = append(os.Environ(), helperEnv+"=threads")
	if err := th.Run(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"exit.bin": sh.Process.Pid, "exit_group.bin": -th.Process.Pid}
	go func() {
		for {
			if _, err := l.Receive(); err != nil {
				return
			}
		}
	}()
	have := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range want {
			if raw[id] == nil {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !have() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	l.Close()
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.tap = func(m netlink.Message) {
		mu.Lock()
		defer mu.Unlock()
		raw[0], _ = m.MarshalBinary()
	}
	if _, err := c.PID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	want["get.bin"] = 0
	mu.Lock()
	defer mu.Unlock()
	for name, id := range want {
		if raw[id] == nil {
			t.Fatalf("no message for %s", name)
		}
		if err := os.WriteFile(filepath.Join("testdata", name), raw[id], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
