package pids

// The fork bomb and what the tests measure of it: the proc connector's
// timeline of its children, /proc samples, pids.current reads.

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/proc"
	"github.com/containerfs/containerfs/internal/procevent"
	"golang.org/x/sys/unix"
)

// bomb is testdata/bomb.pl running in its own process group.
type bomb struct {
	cmd   *exec.Cmd
	pid   int
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startBomb starts the bomb, waits until it is ready, and makes sure that
// it and every child it made are dead when the test ends, failed or not:
// they share a process group that only this test made.
func startBomb(t *testing.T, forks, sleep int) *bomb {
	t.Helper()
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Fatalf("the fork bomb is a perl script: %v", err)
	}
	cmd := exec.Command(perl, "testdata/bomb.pl", strconv.Itoa(forks), strconv.Itoa(sleep))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &bomb{cmd: cmd, pid: cmd.Process.Pid, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(b.kill)
	line, err := b.line(30 * time.Second)
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("bomb did not start: %q, %v", line, err)
	}
	return b
}

// line reads one line of the bomb's output, within d.
func (b *bomb) line(d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := b.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(d):
		return "", fmt.Errorf("no output within %v", d)
	}
}

// kill kills the bomb's whole process group and waits until no member is
// left (the children are reaped by init, or at once: SIGCHLD is ignored).
func (b *bomb) kill() {
	syscall.Kill(-b.pid, syscall.SIGKILL)
	b.stdin.Close()
	b.cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	var sc procScanner
	for time.Now().Before(deadline) {
		if n, _ := sc.count(b.pid, true); n == 0 {
			return
		}
		syscall.Kill(-b.pid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
}

// procScanner counts the members of a process group in /proc. It remembers
// which PIDs are not members, until they disappear from /proc, so a scan
// reads only the stat files of members and of PIDs new since the last scan.
type procScanner struct {
	foreign map[int]bool
}

// count returns how many members of process group pgid are alive (not
// zombies); with any, zombies count too.
func (sc *procScanner) count(pgid int, any bool) (int, error) {
	if sc.foreign == nil {
		sc.foreign = map[int]bool{}
	}
	f, err := os.Open("/proc")
	if err != nil {
		return 0, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return 0, err
	}
	seen := make(map[int]bool, len(names))
	n := 0
	var buf [proc.StatBufSize]byte
	for _, name := range names {
		pid, ok := proc.Atoi(name)
		if !ok {
			continue
		}
		seen[pid] = true
		if sc.foreign[pid] {
			continue
		}
		if pg, err := unix.Getpgid(pid); err != nil {
			continue // gone
		} else if pg != pgid {
			sc.foreign[pid] = true
			continue
		}
		b, err := proc.ReadSmall(proc.Path("", pid, "stat"), buf[:])
		if err != nil {
			continue
		}
		if st, ok := proc.StateOf(b); ok && (any || (st != 'Z' && st != 'X')) {
			n++
		}
	}
	for pid := range sc.foreign {
		if !seen[pid] {
			delete(sc.foreign, pid) // gone: the PID may be reused
		}
	}
	return n, nil
}

// bombResult is what one bomb run measured.
type bombResult struct {
	OK, Failed int           // forks that returned a child / that failed (the bomb's own count)
	Elapsed    time.Duration // from "go" to "done"

	// From the proc connector's fork and exit events of the bomb's
	// children, stamped by the kernel: exact, unless Lost.
	Lost        int           // connector losses (ENOBUFS): the figures below are then incomplete
	Children    int           // fork events of the bomb's children
	Killed      int           // children that died of SIGKILL
	MaxLive     int           // most live tasks of the bomb (itself included) at any instant
	OverTime    time.Duration // total time with more than limit live tasks
	LongestOver time.Duration // longest stretch with more than limit live tasks
	MaxLife     time.Duration // longest life of a child that was killed: birth to death
	MedianLife  time.Duration // median life of a killed child
	// How late this test's own connector socket read the children's fork
	// events: one event round trip on this machine, right now, for
	// comparison with the lives of killed children.
	MedianLag, MaxLag time.Duration

	// From /proc, sampled: a cross-check independent of the connector.
	MaxAlive int // most live (not zombie) members of the bomb's group in one scan
	Scans    int

	MaxCurrent    int           // highest pids.current read (-1: not read)
	MaxReadDelay  time.Duration // slowest pids.current read
	MaxTimerDelay time.Duration // worst lateness of a 5 ms timer: is the machine responsive?
}

// recorder keeps the connector's events about one bomb's children.
type recorder struct {
	conn *procevent.Conn
	done chan struct{}
	bomb int

	forks map[int][]uint64 // child pid → fork timestamps
	lags  []time.Duration  // receipt time - fork time, per fork event
	exits map[int][]exit   // pid → exits (of every process: the children are known only at the end)
	lost  int
}

type exit struct {
	ts     uint64
	killed bool
}

func record(t *testing.T, bomb int) *recorder {
	t.Helper()
	conn, err := procevent.Listen(procevent.Options{})
	if err != nil {
		t.Fatalf("listen to the proc connector: %v", err)
	}
	rec := &recorder{conn: conn, done: make(chan struct{}), bomb: bomb, forks: map[int][]uint64{}, exits: map[int][]exit{}}
	go func() {
		defer close(rec.done)
		for {
			evs, err := conn.Receive()
			if errors.Is(err, procevent.ErrLost) {
				rec.lost++
				continue
			}
			if err != nil {
				return
			}
			for _, ev := range evs {
				switch {
				case ev.PID != ev.TGID:
				case ev.What == procevent.Fork && ev.ParentTGID == bomb:
					rec.forks[ev.PID] = append(rec.forks[ev.PID], ev.Timestamp)
					var now unix.Timespec
					unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
					rec.lags = append(rec.lags, time.Duration(uint64(now.Nano())-ev.Timestamp))
				case ev.What == procevent.Exit:
					rec.exits[ev.PID] = append(rec.exits[ev.PID], exit{ts: ev.Timestamp, killed: ev.ExitCode == uint32(syscall.SIGKILL)})
				}
			}
		}
	}()
	return rec
}

// finish stops the recorder and computes the timeline of the bomb's live
// tasks (itself and its children) from the kernel's timestamps.
func (rec *recorder) finish(limit int, res *bombResult) {
	rec.conn.Close()
	<-rec.done
	res.Lost = rec.lost
	type step struct {
		ts    uint64
		delta int
	}
	var steps []step
	var lives []time.Duration
	for pid, forks := range rec.forks {
		exits := rec.exits[pid]
		slices.SortFunc(exits, func(a, b exit) int { return cmp.Compare(a.ts, b.ts) })
		for _, f := range forks {
			res.Children++
			steps = append(steps, step{f, +1})
			i := slices.IndexFunc(exits, func(e exit) bool { return e.ts >= f })
			if i < 0 {
				continue // still alive
			}
			e := exits[i]
			exits = exits[i+1:]
			steps = append(steps, step{e.ts, -1})
			if e.killed {
				res.Killed++
				lives = append(lives, time.Duration(e.ts-f))
			}
		}
	}
	slices.SortFunc(steps, func(a, b step) int {
		// At equal times, count the exit first: never an overshoot of 0 ns.
		return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.delta, b.delta))
	})
	live := 1 // the bomb
	res.MaxLive = live
	var overSince uint64
	for _, st := range steps {
		was := live
		live += st.delta
		res.MaxLive = max(res.MaxLive, live)
		switch {
		case was <= limit && live > limit:
			overSince = st.ts
		case was > limit && live <= limit:
			d := time.Duration(st.ts - overSince)
			res.OverTime += d
			res.LongestOver = maxDur(res.LongestOver, d)
		}
	}
	if len(rec.lags) > 0 {
		slices.Sort(rec.lags)
		res.MedianLag, res.MaxLag = rec.lags[len(rec.lags)/2], rec.lags[len(rec.lags)-1]
	}
	if len(lives) > 0 {
		slices.Sort(lives)
		res.MaxLife = lives[len(lives)-1]
		res.MedianLife = lives[len(lives)/2]
	}
}

// runBomb starts a bomb of n forks, lets place move it into the container
// under test (limited to limit tasks), and measures while it runs. current
// reads the container's pids.current, if not nil.
func runBomb(t *testing.T, n, limit int, place func(pid int) error, current func() (int, error)) (*bomb, bombResult) {
	t.Helper()
	b := startBomb(t, n, 120)
	if err := place(b.pid); err != nil {
		t.Fatalf("move bomb %d into the container: %v", b.pid, err)
	}
	rec := record(t, b.pid)
	res := bombResult{MaxCurrent: -1}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // guards res's sampled fields

	wg.Add(1)
	go func() { // /proc sampler
		defer wg.Done()
		var sc procScanner
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Microsecond):
			}
			alive, err := sc.count(b.pid, false)
			if err != nil {
				continue
			}
			mu.Lock()
			res.Scans++
			res.MaxAlive = max(res.MaxAlive, alive)
			mu.Unlock()
		}
	}()
	if current != nil {
		wg.Add(1)
		go func() { // pids.current sampler
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				t0 := time.Now()
				v, err := current()
				d := time.Since(t0)
				if err != nil {
					t.Errorf("read pids.current: %v", err)
					return
				}
				mu.Lock()
				res.MaxCurrent = max(res.MaxCurrent, v)
				res.MaxReadDelay = maxDur(res.MaxReadDelay, d)
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() { // responsiveness: how late does a 5 ms timer fire?
		defer wg.Done()
		for {
			t0 := time.Now()
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			late := time.Since(t0) - 5*time.Millisecond
			mu.Lock()
			res.MaxTimerDelay = maxDur(res.MaxTimerDelay, late)
			mu.Unlock()
		}
	}()

	start := time.Now()
	if _, err := io.WriteString(b.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	line, err := b.line(120 * time.Second)
	res.Elapsed = time.Since(start)
	// Keep watching a little after the last fork: a kill may still be on
	// its way.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	rec.finish(limit, &res)
	if err != nil {
		t.Fatalf("bomb did not finish: %v", err)
	}
	if _, err := fmt.Sscanf(line, "done %d %d", &res.OK, &res.Failed); err != nil {
		t.Fatalf("bomb said %q: %v", line, err)
	}
	return b, res
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func (r bombResult) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
	return fmt.Sprintf("forks ok %d failed %d in %v | events (lost %d): %d children, %d killed, max live %d, over the limit %s in all, longest %s, killed child life max %s median %s, event receipt lag max %s median %s | /proc: max alive %d in %d scans | max pids.current %d, slowest read %s | worst 5 ms timer lateness %s",
		r.OK, r.Failed, r.Elapsed.Round(time.Millisecond), r.Lost, r.Children, r.Killed, r.MaxLive,
		ms(r.OverTime), ms(r.LongestOver), ms(r.MaxLife), ms(r.MedianLife), ms(r.MaxLag), ms(r.MedianLag),
		r.MaxAlive, r.Scans, r.MaxCurrent, ms(r.MaxReadDelay), ms(r.MaxTimerDelay))
}
