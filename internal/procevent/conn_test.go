package procevent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

// result is what one Receive returned, for comparison: the events' (cpu,
// seq) pairs, or the error.
type result struct {
	seqs [][2]uint32
	err  error
}

// receiveN calls Receive n times, failing after two seconds.
func receiveN(t *testing.T, s Source, n int) []result {
	t.Helper()
	timer := time.AfterFunc(2*time.Second, func() { s.Close() })
	defer timer.Stop()
	var rs []result
	for range n {
		evs, err := s.Receive()
		if errors.Is(err, os.ErrClosed) {
			t.Fatalf("timed out after %d results: %+v", len(rs), rs)
		}
		r := result{err: err}
		for _, e := range evs {
			r.seqs = append(r.seqs, [2]uint32{e.CPU, e.Seq})
		}
		rs = append(rs, r)
	}
	return rs
}

func checkResults(t *testing.T, got []result, want []result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d results %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if (g.err == nil) != (w.err == nil) || w.err != nil && !errors.Is(g.err, w.err) {
			t.Errorf("result %d: got error %v, want %v", i, g.err, w.err)
		}
		if !slices.Equal(g.seqs, w.seqs) {
			t.Errorf("result %d: got (cpu, seq) %v, want %v", i, g.seqs, w.seqs)
		}
	}
}

func TestReplayGap(t *testing.T) {
	c, err := ReplayFile("testdata/gap.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := receiveN(t, c, 3)
	checkResults(t, got, []result{
		{seqs: [][2]uint32{{0, 10}, {1, 7}, {0, 11}}},
		{err: ErrLost},
		{seqs: [][2]uint32{{0, 15}, {1, 8}, {0, 16}}},
	})
	if want := "procevent: events lost: 3 before seq 15 on cpu 0"; got[1].err.Error() != want {
		t.Errorf("got %q, want %q", got[1].err, want)
	}
}

// TestOverrun plays a socket that overflows: ENOBUFS comes before the
// messages queued ahead of the loss, as the kernel returns it.
func TestOverrun(t *testing.T) {
	fork := readFixture(t, "fork")
	msg := func(cpu, seq uint32) step { return step{b: withSeq(fork, cpu, seq)} }
	again, nobufs := step{err: unix.EAGAIN}, step{err: unix.ENOBUFS}
	s := &replaySocket{done: make(chan struct{}), steps: []step{
		msg(0, 1), msg(1, 1), again,
		// Overrun, then the drain: cpu 0 loses 3..8 and the gap shows in
		// the drain; cpu 1 loses 3..5 but its next message comes later.
		nobufs, msg(0, 2), msg(1, 2), msg(0, 9), again,
		// Gaps whose earlier message came before the overrun was reported
		// are covered by it.
		msg(1, 6), again,
		// A gap no overrun explains is reported.
		msg(0, 10), msg(0, 13), again,
	}}
	c := newConn(s, 0)
	defer c.Close()
	got := receiveN(t, c, 6)
	checkResults(t, got, []result{
		{seqs: [][2]uint32{{0, 1}, {1, 1}}},
		{err: unix.ENOBUFS},
		{seqs: [][2]uint32{{0, 2}, {1, 2}, {0, 9}}},
		{seqs: [][2]uint32{{1, 6}}},
		{seqs: [][2]uint32{{0, 10}}},
		{err: ErrLost},
	})
	if !errors.Is(got[1].err, ErrLost) {
		t.Errorf("got %v, want it to wrap ErrLost", got[1].err)
	}
	if evs := receiveN(t, c, 1); len(evs[0].seqs) != 1 || evs[0].seqs[0] != [2]uint32{0, 13} {
		t.Errorf("after the gap: got %+v, want (0, 13)", evs)
	}
}

func TestCloseUnblocksReceive(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) Source{
		"replay": func(t *testing.T) Source { return Replay(nil) },
		"live": func(t *testing.T) Source {
			testutil.RequireRoot(t)
			c, err := Listen(Options{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"poller": func(t *testing.T) Source {
			p, err := NewPoller(Options{Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		"fake": func(t *testing.T) Source { return NewFake() },
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			done := make(chan error, 1)
			go func() {
				for {
					if _, err := s.Receive(); err != nil && !errors.Is(err, ErrLost) {
						done <- err
						return
					}
				}
			}()
			time.Sleep(20 * time.Millisecond)
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, os.ErrClosed) {
					t.Errorf("got %v, want os.ErrClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Receive still blocked 2s after Close")
			}
		})
	}
}

// TestLive watches a shell fork a sleep and wait for it.
func TestLive(t *testing.T) {
	testutil.RequireRoot(t)
	c, err := Listen(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", "sleep 0.1 & wait")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer sh.Wait()
	shPID, sleepPID := sh.Process.Pid, 0

	seen := map[string]bool{}
	timer := time.AfterFunc(2*time.Second, func() { c.Close() })
	defer timer.Stop()
	for len(seen) < 6 {
		evs, err := c.Receive()
		if errors.Is(err, ErrLost) {
			t.Log(err)
			continue
		}
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		for _, e := range evs {
			switch {
			case e.What == Fork && e.PID == shPID:
				if e.TGID != shPID || e.ParentTGID != os.Getpid() {
					t.Errorf("shell fork: got %+v, want TGID %d, parent %d", e, shPID, os.Getpid())
				}
				seen["fork sh"] = true
			case e.What == Exec && e.PID == shPID:
				seen["exec sh"] = true
			case e.What == Fork && e.ParentTGID == shPID && e.PID == e.TGID:
				sleepPID = e.PID
				seen["fork sleep"] = true
			case e.What == Exec && e.PID == sleepPID && sleepPID != 0:
				seen["exec sleep"] = true
			case e.What == Exit && e.PID == sleepPID && sleepPID != 0:
				if e.ExitCode != 0 || e.ExitSignal != uint32(unix.SIGCHLD) {
					t.Errorf("sleep exit: got %+v, want code 0, signal SIGCHLD", e)
				}
				seen["exit sleep"] = true
			case e.What == Exit && e.PID == shPID:
				seen["exit sh"] = true
			}
		}
	}
}

// TestLiveOverrun fills a tiny receive buffer by forking children without
// reading, then checks that Receive reports the loss once and carries on.
func TestLiveOverrun(t *testing.T) {
	testutil.Short(t) // a fork storm until the socket overruns: seconds
	testutil.RequireRoot(t)
	c, err := Listen(Options{RcvBuf: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const children, workers = 2000, 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range children / workers {
				if err := exec.CommandContext(ctx, "/bin/true").Run(); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	timer := time.AfterFunc(10*time.Second, func() { c.Close() })
	defer timer.Stop()
	// The kernel returns ENOBUFS ahead of what the buffer still holds,
	// unless a recvmmsg got some datagrams before it met the error: then
	// the error comes with the next read.
	for i := 0; ; i++ {
		var evs []Event
		evs, err = c.Receive()
		if errors.Is(err, ErrLost) && errors.Is(err, unix.ENOBUFS) {
			break
		}
		if i == 3 || err != nil {
			t.Fatalf("Receive %d: got %d events, %v, want ErrLost wrapping ENOBUFS", i+1, len(evs), err)
		}
	}
	t.Log(err)
	// A child started now is seen whole. Under other load a tiny buffer
	// can overflow again; then try another child.
	for try := 0; ; try++ {
		if try == 5 {
			t.Fatal("5 children in a row lost to overruns")
		}
		child := exec.CommandContext(ctx, "/bin/sh", "-c", "exit 7")
		if err := child.Run(); child.ProcessState == nil || child.ProcessState.ExitCode() != 7 {
			t.Fatalf("sh: got %v, want exit status 7", err)
		}
		if exit, err := awaitExit(c, child.Process.Pid); err == nil {
			if exit.ExitCode != 7<<8 {
				t.Errorf("exit: got code %#x, want %#x", exit.ExitCode, 7<<8)
			}
			break
		} else if !errors.Is(err, ErrLost) {
			t.Fatal(err)
		} else {
			t.Logf("again: %v", err)
		}
	}
}

// awaitExit receives until the exit of pid, or an error.
func awaitExit(s Source, pid int) (Event, error) {
	for {
		evs, err := s.Receive()
		if err != nil {
			return Event{}, err
		}
		for _, e := range evs {
			if e.What == Exit && e.PID == pid {
				return e, nil
			}
		}
	}
}
