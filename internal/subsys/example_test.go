package subsys_test

// The recipe of docs/subsystems.md, compiled and run: a whole subsystem in
// one file. In the repository it would be internal/subsys/sample/sample.go
// (package sample, Name() "sample") and one line in all.go.

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/testutil"
	"github.com/containerfs/containerfs/internal/worker"
)

// Subsys is a toy subsystem. sample.max caps the tasks a container may
// take in by a move (a string file: "max" or a number, parsed as the
// kernel's pids_max_write parses pids.max); sample.weight is a plain u64
// setting; sample.forks, in the root, counts the forks the hierarchy's
// worker has handled. Its fields are configuration only, set before
// registration: the zero value works.
type Subsys struct {
	Logf core.Logf
}

var (
	_ core.Subsys      = (*Subsys)(nil)
	_ core.CanAttacher = (*Subsys)(nil)
	_ core.Forker      = (*Subsys)(nil)
)

// hier is the hierarchy-wide state, made by the root's Create and shared by
// every container of the hierarchy: its worker and what the worker works
// on. Its lock is the subsystem's rung of the ladder: taken after the
// registry lock, never before it.
type hier struct {
	w     *worker.Worker
	mu    sync.Mutex
	queue []int  // TIDs forked since the worker last looked; guarded by mu
	forks uint64 // forks handled by the worker; guarded by mu
}

// state is one container's state; guarded by the registry lock, which
// every handler and hook runs under.
type state struct {
	h      *hier // immutable
	max    int64 // -1: no limit
	weight uint64
}

func (s *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, s) }

// Name implements core.Subsys.
func (*Subsys) Name() string { return "sample" }

// Create implements core.Subsys: the root makes the hierarchy's state and
// starts its worker; a child shares its parent's.
func (s *Subsys) Create(c *core.Container) (any, error) {
	if p := c.Parent(); p != nil {
		return &state{h: s.state(p).h, max: -1, weight: 100}, nil
	}
	h := &hier{w: worker.New()}
	h.w.Start(func() { s.run(h) })
	return &state{h: h, max: -1, weight: 100}, nil
}

// Destroy implements core.Subsys. The root's stops the worker without
// waiting: Destroy runs under the registry lock.
func (s *Subsys) Destroy(c *core.Container) {
	if c.IsRoot() {
		s.state(c).h.w.Stop()
	}
}

// Files implements core.Subsys.
func (s *Subsys) Files() []core.File {
	return []core.File{
		{Name: "max", Flags: core.NotOnRoot,
			Read: func(c *core.Container) (string, error) {
				if m := s.state(c).max; m >= 0 {
					return fmt.Sprintf("%d\n", m), nil
				}
				return "max\n", nil
			},
			Write: func(c *core.Container, _ core.Caller, data string) error {
				buf := core.Strstrip(data)
				if buf == "max" {
					s.state(c).max = -1
					return nil
				}
				v, err := core.Kstrtoll(buf)
				if err != nil {
					return fmt.Errorf("sample.max %q: %w", buf, err)
				}
				if v < 0 || v > 1000 {
					return fmt.Errorf("sample.max %d: not in 0..1000: %w", v, syscall.EINVAL)
				}
				s.state(c).max = v
				return nil
			}},
		{Name: "weight",
			ReadU64: func(c *core.Container) uint64 { return s.state(c).weight },
			WriteU64: func(c *core.Container, _ core.Caller, v uint64) error {
				if v < 1 || v > 10000 {
					return fmt.Errorf("sample.weight %d: not in 1..10000: %w", v, syscall.EINVAL)
				}
				s.state(c).weight = v
				return nil
			}},
		{Name: "forks", Flags: core.OnlyOnRoot,
			ReadU64: func(c *core.Container) uint64 {
				h := s.state(c).h
				h.mu.Lock() // registry lock, then the subsystem's
				defer h.mu.Unlock()
				return h.forks
			}},
	}
}

// CanAttach implements core.CanAttacher: a move that would take a
// container over its max is refused, and nothing moves.
func (s *Subsys) CanAttach(ts *core.TaskSet) error {
	if ts.Dst.IsRoot() {
		return nil // nothing is ever enforced on a root
	}
	st := s.state(ts.Dst)
	if st.max >= 0 && int64(ts.Dst.NumTasksLocked()+len(ts.Tasks)) > st.max {
		return fmt.Errorf("%s holds at most %d tasks: %w", ts.Dst.PathLocked(), st.max, syscall.ENOSPC)
	}
	return nil
}

// Fork implements core.Forker. It runs under the registry lock, so it only
// queues the task and wakes the worker; userspace hears of a fork after it
// happened, so the child has run already.
func (s *Subsys) Fork(c *core.Container, t *core.Task) {
	h := s.state(c).h
	h.mu.Lock()
	h.queue = append(h.queue, t.TID)
	h.mu.Unlock()
	h.w.Wake()
}

// run is the worker's loop. It takes only the subsystem's lock, and never
// calls the registry while holding it.
func (s *Subsys) run(h *hier) {
	for h.w.Wait(-1) {
		h.mu.Lock()
		q := h.queue
		h.queue = nil
		h.mu.Unlock()
		// The slow work would be here, outside every lock: reading /proc
		// through internal/proc, a system call on each task.
		h.mu.Lock()
		h.forks += uint64(len(q))
		h.mu.Unlock()
	}
	s.Logf.Printf("sample: worker stopped")
}

// lookup is c's control file name (full name, with the prefix).
func lookup(c *core.Container, name string) *core.BoundFile {
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		panic("no file " + name)
	}
	return e.File
}

// errno is err's errno, for printing.
func errno(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e.Error()
	}
	return fmt.Sprint(err)
}

func Example() {
	procs := testutil.Procs{
		100: {TID: 100, TGID: 100, Start: 1},
		101: {TID: 101, TGID: 101, Start: 2},
	}
	s := &Subsys{Logf: func(format string, a ...any) { fmt.Printf(format+"\n", a...) }}
	r := core.NewRegistry(procs, s)
	r.AddTask(procs[100])
	r.AddTask(procs[101])

	h, err := r.Mount("sample")
	if err != nil {
		fmt.Println(err)
		return
	}
	root := h.Root()
	c, err := r.Mkdir(root, "guests", 0o755, core.Caller{})
	if err != nil {
		fmt.Println(err)
		return
	}
	write := func(name, data string) {
		if err := r.WriteFile(c, lookup(c, name), core.Caller{}, data); err != nil {
			fmt.Printf("write %q to %s: %s\n", data, name, errno(err))
		}
	}
	read := func(c *core.Container, name string) {
		v, err := r.ReadFile(c, lookup(c, name))
		if err != nil {
			fmt.Printf("read %s: %s\n", name, errno(err))
			return
		}
		fmt.Printf("%s: %s", name, v)
	}

	// A u64 file: the core parses as kstrtoull(buf, 0) does.
	write("sample.weight", "0x20\n")
	read(c, "sample.weight")
	write("sample.weight", " 5")                   // no leading space
	write("sample.weight", "18446744073709551616") // 2^64
	write("sample.weight", "0")                    // the handler's range

	// A string file: strstrip, then "max" or kstrtoll.
	read(c, "sample.max")
	write("sample.max", " 1\n")
	read(c, "sample.max")
	write("sample.max", "1_000")

	// The CanAttach hook refuses the second task.
	fmt.Println("attach 100:", r.Attach(c, core.Caller{}, 100, false))
	fmt.Println("attach 101:", errno(r.Attach(c, core.Caller{}, 101, false)))

	// A fork in guests: the hook queues it, the worker counts it.
	r.Fork(100, core.TaskInfo{TID: 102, TGID: 102, Start: 3})
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if v, _ := r.ReadFile(root, lookup(root, "sample.forks")); v == "1\n" {
			break
		}
	}
	read(root, "sample.forks")

	// Tear down: the tasks exit, guests goes, the unmount destroys the
	// root's state, whose Destroy stops the worker. Outside the lock, wait
	// for it to end.
	var hs *hier
	root.WithLock(func() error { hs = s.state(root).h; return nil })
	r.Exit(100, 0)
	r.Exit(102, 0)
	if err := r.Rmdir(root, "guests", core.Caller{}); err != nil {
		fmt.Println(err)
	}
	r.Unmount(h)
	<-hs.w.Stop()

	// Output:
	// sample.weight: 32
	// write " 5" to sample.weight: invalid argument
	// write "18446744073709551616" to sample.weight: numerical result out of range
	// write "0" to sample.weight: invalid argument
	// sample.max: max
	// sample.max: 1
	// write "1_000" to sample.max: invalid argument
	// attach 100: <nil>
	// attach 101: no space left on device
	// sample.forks: 1
	// sample: worker stopped
}
