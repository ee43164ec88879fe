package procevent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The fixtures were recorded by TestRecordFixtures: the test process was
// 7297; 7302 was /bin/true run as uid and gid 65534; 7303 was the "record"
// helper, which cloned threads (7304, 7306, ...), renamed itself and exited 3.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		name string
		want Event
	}{
		{"fork", Event{What: Fork, CPU: 0, Seq: 5, Timestamp: 542672940457,
			PID: 7303, TGID: 7303, ParentPID: 7297, ParentTGID: 7297}},
		// A thread's parent is the process's parent, not the thread that
		// called clone: the kernel gives CLONE_THREAD children the caller's
		// real_parent.
		{"thread", Event{What: Fork, CPU: 1, Seq: 5, Timestamp: 542676749359,
			PID: 7304, TGID: 7303, ParentPID: 7297, ParentTGID: 7297}},
		{"gid", Event{What: GID, CPU: 1, Seq: 0, Timestamp: 542668351305,
			PID: 7302, TGID: 7302, GID: 65534, EGID: 65534}},
		{"uid", Event{What: UID, CPU: 1, Seq: 1, Timestamp: 542668378095,
			PID: 7302, TGID: 7302, UID: 65534, EUID: 65534}},
		{"exec", Event{What: Exec, CPU: 1, Seq: 2, Timestamp: 542670229261,
			PID: 7302, TGID: 7302}},
		{"exit_true", Event{What: Exit, CPU: 1, Seq: 3, Timestamp: 542672585694,
			PID: 7302, TGID: 7302, ParentPID: 7297, ParentTGID: 7297, ExitCode: 0, ExitSignal: 17}},
		{"comm", Event{What: Comm, CPU: 1, Seq: 8, Timestamp: 542680738262,
			PID: 7303, TGID: 7303, Comm: "fix (t) me"}},
		// A thread is reaped before its exit event is built: no parent, and
		// exit_signal -1.
		{"thread_exit", Event{What: Exit, CPU: 0, Seq: 6, Timestamp: 542691543507,
			PID: 7306, TGID: 7303, ExitCode: 3 << 8, ExitSignal: 0xffffffff}},
		{"exit", Event{What: Exit, CPU: 1, Seq: 12, Timestamp: 542692420592,
			PID: 7303, TGID: 7303, ParentPID: 7297, ParentTGID: 7297, ExitCode: 3 << 8, ExitSignal: 17}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(readFixture(t, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("got %+v, want [%+v]", got, tc.want)
			}
		})
	}
}

func TestParseAck(t *testing.T) {
	b := readFixture(t, "ack")
	evs, err := Parse(b)
	if err != nil || len(evs) != 0 {
		t.Errorf("Parse: got %+v, %v, want no events", evs, err)
	}
	msgs, err := ParseMessages(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Event: Event{What: None, CPU: 0, Seq: 1, Timestamp: 542667775322}, Ack: 7297 + 1, AckErr: 0}
	if len(msgs) != 1 || msgs[0] != want {
		t.Errorf("ParseMessages: got %+v, want [%+v]", msgs, want)
	}
}

func TestParseConcatenated(t *testing.T) {
	var b []byte
	for _, name := range []string{"ack", "gid", "uid", "exec", "fork", "thread", "comm", "exit"} {
		b = append(b, readFixture(t, name)...)
	}
	want := []What{GID, UID, Exec, Fork, Fork, Comm, Exit}
	evs, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []What
	for _, e := range evs {
		got = append(got, e.What)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// edit returns a copy of the fork fixture changed by f.
func edit(t *testing.T, f func(b []byte) []byte) []byte {
	return f(bytes.Clone(readFixture(t, "fork")))
}

func TestParseMalformed(t *testing.T) {
	const (
		cn = nlmsgHdrLen            // cn_msg
		pe = nlmsgHdrLen + cnMsgLen // proc_event
	)
	tests := []struct {
		name    string
		b       []byte
		events  int   // events decoded
		wantErr error // nil: no error; errAny: some error
	}{
		{"empty", nil, 0, nil},
		{"short header", edit(t, func(b []byte) []byte { return b[:10] }), 0, errAny},
		{"length past end", edit(t, func(b []byte) []byte { ne.PutUint32(b, 200); return b }), 0, errAny},
		{"length below header", edit(t, func(b []byte) []byte { ne.PutUint32(b, 8); return b }), 0, errAny},
		{"cn_msg len past end", edit(t, func(b []byte) []byte { ne.PutUint16(b[cn+16:], 100); return b }), 0, errAny},
		{"short fork data", edit(t, func(b []byte) []byte {
			ne.PutUint32(b, uint32(pe+20))
			ne.PutUint16(b[cn+16:], 20)
			return b[:pe+20]
		}), 0, errAny},
		{"unknown kind skipped", edit(t, func(b []byte) []byte { ne.PutUint32(b[pe:], 0x400); return b }), 0, nil},
		{"nonzero-exit kind skipped", edit(t, func(b []byte) []byte { ne.PutUint32(b[pe:], uint32(NonzeroExit)); return b }), 0, nil},
		{"other connector skipped", edit(t, func(b []byte) []byte { ne.PutUint32(b[cn:], 2); return b }), 0, nil},
		{"noop skipped", edit(t, func(b []byte) []byte { ne.PutUint16(b[4:], unix.NLMSG_NOOP); return b }), 0, nil},
		{"netlink error", edit(t, func(b []byte) []byte {
			ne.PutUint16(b[4:], unix.NLMSG_ERROR)
			ne.PutUint32(b[nlmsgHdrLen:], uint32(0xffffffff)) // -EPERM
			return b
		}), 0, syscall.EPERM},
		{"good then truncated", append(readFixture(t, "fork"), readFixture(t, "exit")[:40]...), 1, errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Parse(tc.b)
			if len(evs) != tc.events {
				t.Errorf("got %d events, want %d", len(evs), tc.events)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("got error %v, want none", err)
			case tc.wantErr == errAny && err == nil:
				t.Error("got no error, want one")
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestWhatString(t *testing.T) {
	for w, want := range map[What]string{Fork: "fork", Exit: "exit", None: "none", What(0x400): "What(0x400)"} {
		if got := w.String(); got != want {
			t.Errorf("What(%#x).String(): got %q, want %q", uint32(w), got, want)
		}
	}
}
