package procevent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	task := func(tid, tgid, ppid int, start uint64) Task {
		return Task{TID: tid, TGID: tgid, PPID: ppid, Start: start}
	}
	ev := func(w What, tid, tgid, ppid int, ts uint64) Event {
		return Event{What: w, Timestamp: ts, PID: tid, TGID: tgid, ParentPID: ppid, ParentTGID: ppid}
	}
	// Boot time runs 5 s ahead of monotonic time; the scan is at 1000 s.
	now := clock{mono: 1000e9, bootAhead: 5e9}
	base := []Task{task(1, 1, 0, 1), task(10, 10, 1, 500), task(11, 10, 1, 600)}
	tests := []struct {
		name string
		cur  []Task
		want []Event
	}{
		{"same", base, nil},
		{"new process and thread, parents first", append(slices.Clone(base), task(21, 20, 10, 900), task(20, 20, 10, 800)),
			[]Event{ev(Fork, 20, 20, 10, 8e9-5e9), ev(Fork, 21, 20, 10, 9e9-5e9)}},
		{"thread gone", base[:2], []Event{ev(Exit, 11, 10, 1, 1000e9)}},
		{"TID reused", []Task{base[0], base[1], task(11, 11, 1, 700)},
			[]Event{ev(Exit, 11, 10, 1, 1000e9), ev(Fork, 11, 11, 1, 7e9-5e9)}},
		{"all gone", nil, []Event{ev(Exit, 1, 1, 0, 1000e9), ev(Exit, 10, 10, 1, 1000e9), ev(Exit, 11, 10, 1, 1000e9)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, prev := diff(nil, base, now)
			got, next := diff(prev, tc.cur, now)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if len(next) != len(tc.cur) {
				t.Errorf("next: got %d tasks, want %d", len(next), len(tc.cur))
			}
		})
	}
}

func TestPollerSeesChild(t *testing.T) {
	p, err := NewPoller(Options{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sleep", "0.3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	timer := time.AfterFunc(2*time.Second, func() { p.Close() })
	defer timer.Stop()

	await := func(w What) Event {
		t.Helper()
		for {
			evs, err := p.Receive()
			if err != nil {
				t.Fatalf("waiting for %v of %d: %v", w, pid, err)
			}
			for _, e := range evs {
				if e.What == w && e.PID == pid {
					return e
				}
			}
		}
	}
	fork := await(Fork)
	if fork.TGID != pid || fork.ParentTGID != os.Getpid() {
		t.Errorf("fork: got %+v, want TGID %d, parent %d", fork, pid, os.Getpid())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	exit := await(Exit)
	if exit.TGID != pid {
		t.Errorf("exit: got %+v, want TGID %d", exit, pid)
	}
	if exit.Seq <= fork.Seq {
		t.Errorf("got exit seq %d after fork seq %d, want it higher", exit.Seq, fork.Seq)
	}
}

func TestFake(t *testing.T) {
	f := NewFake([]Event{{What: Fork, PID: 2}}, []Event{{What: Exec, PID: 2}})
	f.Fail(ErrLost)
	f.Send(Event{What: Exit, PID: 2})
	f.Close()
	var got []string
	for {
		evs, err := f.Receive()
		if errors.Is(err, os.ErrClosed) {
			break
		}
		if errors.Is(err, ErrLost) {
			got = append(got, "lost")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got = append(got, e.What.String())
		}
	}
	if want := []string{"fork", "exec", "lost", "exit"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
