package policy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
	"github.com/containerfs/containerfs/internal/testutil"
)

// knob is a test subsystem with one file of each kind: shares (read and
// write, default 1024), entries (one entry per write, listed a line each),
// stat (read-only) and reset (write-only). It refuses to attach anything
// to a container named "refuse", so that tests can see a move undone.
type knob struct{ name string }

type knobState struct {
	mu      sync.Mutex
	shares  string
	entries []string
}

var (
	_ core.Subsys      = (*knob)(nil)
	_ core.CanAttacher = (*knob)(nil)
)

func (k *knob) Name() string                        { return k.name }
func (k *knob) Create(*core.Container) (any, error) { return &knobState{shares: "1024"}, nil }
func (k *knob) Destroy(*core.Container)             {}

func (k *knob) CanAttach(ts *core.TaskSet) error {
	if ts.Dst.NameLocked() == "refuse" {
		return fmt.Errorf("%s refuses: %w", k.name, syscall.EBUSY)
	}
	return nil
}

func (k *knob) Files() []core.File {
	st := func(c *core.Container) *knobState { return c.State(k).(*knobState) }
	return []core.File{
		{Name: "shares",
			Read: func(c *core.Container) (string, error) { return st(c).shares + "\n", nil },
			Write: func(c *core.Container, _ core.Caller, data string) error {
				v, err := core.Kstrtoull(data)
				if err != nil || v < 2 {
					return fmt.Errorf("shares %q: %w", data, syscall.EINVAL)
				}
				st(c).shares = fmt.Sprint(v)
				return nil
			}},
		{Name: "entries",
			Read: func(c *core.Container) (string, error) {
				var b strings.Builder
				for _, e := range st(c).entries {
					b.WriteString(e + "\n")
				}
				return b.String(), nil
			},
			Write: func(c *core.Container, _ core.Caller, data string) error {
				v := strings.TrimSpace(data)
				if v == "" || strings.Contains(v, "\n") {
					return fmt.Errorf("entries %q: %w", data, syscall.EINVAL)
				}
				st(c).entries = append(st(c).entries, v)
				return nil
			}},
		{Name: "stat", Read: func(c *core.Container) (string, error) { return "0\n", nil }},
		{Name: "reset", Write: func(*core.Container, core.Caller, string) error { return nil }},
	}
}

func knobs() []core.Subsys {
	return []core.Subsys{&knob{"cpu"}, &knob{"cpuacct"}, &knob{"memory"}}
}

// world is a machine of fake processes: core.Procs for the registry and
// Procs for the engine.
type world struct {
	mu      sync.Mutex
	procs   map[int]Process
	threads map[int][]int // tgid → its tids, the leader first
}

var (
	_ core.Procs = (*world)(nil)
	_ Procs      = (*world)(nil)
)

func newWorld() *world { return &world{procs: map[int]Process{}, threads: map[int][]int{}} }

func (w *world) add(p Process) Process {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.Comm == "" {
		p.Comm = p.Name
		if i := strings.LastIndexByte(p.Name, '/'); i >= 0 {
			p.Comm = p.Name[i+1:]
		}
	}
	if p.Start == 0 {
		p.Start = uint64(1000 + p.PID)
	}
	w.procs[p.PID] = p
	w.threads[p.PID] = []int{p.PID}
	return p
}

func (w *world) addThread(tgid, tid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.threads[tgid] = append(w.threads[tgid], tid)
}

func (w *world) set(pid int, f func(*Process)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.procs[pid]
	f(&p)
	w.procs[pid] = p
}

func (w *world) Task(tid int) (core.TaskInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for tgid, tids := range w.threads {
		if slices.Contains(tids, tid) {
			p := w.procs[tgid]
			return core.TaskInfo{TID: tid, TGID: tgid, Start: p.Start, UID: p.EUID}, nil
		}
	}
	return core.TaskInfo{}, fmt.Errorf("task %d: %w", tid, syscall.ESRCH)
}

func (w *world) Threads(tgid int) ([]int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tids, ok := w.threads[tgid]
	if !ok {
		return nil, fmt.Errorf("thread group %d: %w", tgid, syscall.ESRCH)
	}
	return slices.Clone(tids), nil
}

func (w *world) Process(pid int) (Process, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.procs[pid]
	if !ok {
		return Process{}, fmt.Errorf("process %d: %w", pid, syscall.ESRCH)
	}
	return p, nil
}

func (w *world) PIDs() ([]int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var pids []int
	for pid := range w.procs {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids, nil
}

// rig is an engine over a real registry of fake processes, with the
// hierarchies cpu,cpuacct; memory; and name=track mounted.
type rig struct {
	t     *testing.T
	w     *world
	reg   *core.Registry
	e     *Engine
	clock uint64
	logs  []string
	mu    sync.Mutex
}

func newRig(t *testing.T, rules, config string) *rig {
	t.Helper()
	r := &rig{t: t, w: newWorld(), clock: 1e9}
	r.reg = core.NewRegistry(r.w, knobs()...)
	for _, opts := range []string{"cpu,cpuacct", "memory", "none,name=track"} {
		if _, err := r.reg.Mount(opts); err != nil {
			t.Fatal(err)
		}
	}
	r.e = New(Options{
		Model: CoreModel{r.reg}, Procs: r.w, Users: testUsers(), Self: 1,
		Known: r.reg.Subsystems(),
		Logf: func(f string, a ...any) {
			r.mu.Lock()
			r.logs = append(r.logs, fmt.Sprintf(f, a...))
			r.mu.Unlock()
		},
		Clock: r.now,
	})
	rs, err := ParseRules("rules.conf", strings.NewReader(rules), ParseOptions{Users: testUsers(), Controllers: r.reg.Subsystems()})
	if err != nil {
		t.Fatal(err)
	}
	r.e.SetRules(rs)
	if config != "" {
		cfg, err := ParseConfig("config.conf", strings.NewReader(config))
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(CoreModel{r.reg}, cfg, ApplyOptions{Users: testUsers()}); err != nil {
			t.Fatal(err)
		}
		r.e.SetConfig(cfg)
	}
	return r
}

// now is the fake monotonic clock: every reading is a microsecond later.
func (r *rig) now() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock += 1000
	return r.clock
}

// spawn adds a process the model knows (as a scan would find it).
func (r *rig) spawn(p Process) Process {
	p = r.w.add(p)
	r.reg.AddTask(core.TaskInfo{TID: p.PID, TGID: p.PID, Start: p.Start})
	return p
}

// fork makes child of parent, as the tracker applies a fork event, and
// returns the event to hand to the engine.
func (r *rig) fork(parent, child int) procevent.Event {
	pp, _ := r.w.Process(parent)
	c := pp
	c.PID, c.PPID, c.Start = child, parent, uint64(1000+child)
	r.w.add(c)
	ev := procevent.Event{What: procevent.Fork, PID: child, TGID: child, ParentPID: parent, ParentTGID: parent, Timestamp: r.now()}
	if !r.reg.Fork(parent, core.TaskInfo{TID: child, TGID: child, Start: c.Start}) {
		r.t.Fatalf("fork %d→%d: parent unknown to the model", parent, child)
	}
	return ev
}

// exec replaces pid's program and hands the exec event to the engine.
func (r *rig) exec(pid int, name string) {
	r.w.set(pid, func(p *Process) {
		p.Name, p.Exe = name, name
		p.Comm = name[strings.LastIndexByte(name, '/')+1:]
	})
	r.e.HandleEvent(procevent.Event{What: procevent.Exec, PID: pid, TGID: pid, Timestamp: r.now()})
}

// where is pid's container path in the hierarchy of controller ctrl.
func (r *rig) where(pid int, ctrl string) string {
	r.t.Helper()
	ws, ok := r.reg.Where(pid)
	if !ok {
		return "unknown"
	}
	h := hierarchyFor(r.reg.Hierarchies(), ctrl)
	p, _ := whereIn(ws, h)
	return p
}

// places is pid's placement as "cpu:/a memory:/b name=track:/c".
func (r *rig) places(pid int) string {
	return fmt.Sprintf("cpu:%s memory:%s name=track:%s", r.where(pid, "cpu"), r.where(pid, "memory"), r.where(pid, "name=track"))
}

func (r *rig) mkdir(ctrl, path string) *core.Container {
	r.t.Helper()
	c, err := r.reg.ContainerAt(hierarchyFor(r.reg.Hierarchies(), ctrl), path, true)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) read(ctrl, path, file string) string {
	r.t.Helper()
	c, err := r.reg.ContainerAt(hierarchyFor(r.reg.Hierarchies(), ctrl), path, false)
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.TrimSuffix(testutil.Read(r.t, r.reg, c, file), "\n")
}
