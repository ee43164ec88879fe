package procevent

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

var record = flag.Bool("record", false, "rewrite testdata/*.bin from the live proc connector")

// TestRecordFixtures listens on the live connector while it runs two
// children: /bin/true under uid and gid 65534 (fork, gid, uid, exec,
// exit) and this binary as the "record" helper (fork, thread clones, comm,
// thread exit, exit 3). It writes the raw datagram of one event of each
// kind, all from processes it started, to testdata/. Run:
//
//	go test -run TestRecordFixtures ./internal/procevent/ -record
func TestRecordFixtures(t *testing.T) {
	if !*record {
		t.Skip("run with -record to rewrite testdata/*.bin")
	}
	testutil.RequireRoot(t)
	c, err := Listen(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var raw [][]byte
	c.mu.Lock()
	c.tap = func(d []byte) { raw = append(raw, bytes.Clone(d)) }
	c.mu.Unlock()
	// Ask again, for an ack to record (Listen consumed the first).
	if err := c.request(mcastListen); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr := exec.CommandContext(ctx, "/bin/true")
	tr.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	h := helper(ctx, "record")
	var exitErr *exec.ExitError
	if err := h.Run(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("helper: got %v, want exit status 3", err)
	}
	tp, hp := tr.Process.Pid, h.Process.Pid

	want := map[string]func(m Message) bool{
		"ack":         func(m Message) bool { return m.What == None && m.Ack == c.nonce+1 },
		"fork":        func(m Message) bool { return m.What == Fork && m.PID == hp && m.TGID == hp },
		"thread":      func(m Message) bool { return m.What == Fork && m.TGID == hp && m.PID != hp },
		"gid":         func(m Message) bool { return m.What == GID && m.PID == tp },
		"uid":         func(m Message) bool { return m.What == UID && m.PID == tp },
		"exec":        func(m Message) bool { return m.What == Exec && m.PID == tp },
		"exit_true":   func(m Message) bool { return m.What == Exit && m.PID == tp },
		"comm":        func(m Message) bool { return m.What == Comm && m.TGID == hp },
		"thread_exit": func(m Message) bool { return m.What == Exit && m.TGID == hp && m.PID != hp },
		"exit":        func(m Message) bool { return m.What == Exit && m.PID == hp },
	}
	got := map[string][]byte{}
	timer := time.AfterFunc(5*time.Second, func() { c.Close() })
	defer timer.Stop()
	for len(got) < len(want) {
		if _, err := c.Receive(); err != nil {
			t.Fatalf("receive with %d of %d fixtures: %v", len(got), len(want), err)
		}
		for _, d := range raw {
			msgs, err := ParseMessages(d)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("datagram %x: %d messages, %v", d, len(msgs), err)
			}
			for name, match := range want {
				if _, ok := got[name]; !ok && match(msgs[0]) {
					got[name] = d
					t.Logf("%s: %+v", name, msgs[0])
				}
			}
		}
		raw = raw[:0]
	}
	for name, d := range got {
		if err := os.WriteFile(filepath.Join("testdata", name+".bin"), d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// gap.bin is crafted from a real message: cpu 0 skips 12 to 14, cpu 1
	// does not skip.
	var gap []byte
	for _, p := range [][2]uint32{{0, 10}, {1, 7}, {0, 11}, {0, 15}, {1, 8}, {0, 16}} {
		gap = append(gap, withSeq(got["fork"], p[0], p[1])...)
	}
	if err := os.WriteFile(filepath.Join("testdata", "gap.bin"), gap, 0o644); err != nil {
		t.Fatal(err)
	}
}

// withSeq returns a copy of a one-message datagram from the given cpu with
// the given sequence number.
func withSeq(d []byte, cpu, seq uint32) []byte {
	d = bytes.Clone(d)
	ne.PutUint32(d[nlmsgHdrLen+8:], seq)
	ne.PutUint32(d[nlmsgHdrLen+cnMsgLen+4:], cpu)
	return d
}
