package policy

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/procevent"
)

// specRules is an example cgrules.conf in libcgroup's grammar (cgrules.conf(5):
// @group, process names, % continuation, templates), adapted to the test
// hierarchies, with a rule of each option.
const specRules = `
@kvm                  cpu,cpuacct  guests/%u
*:qemu-system-x86_64  cpu          guests/
%                     memory       guests/
root:sshd             *            system/
bob                   *            nothing/   ignore
*:chrony              cpu          rt/        ignore_rt
*                     cpu          system/
`

const specConfig = `
group guests { cpu { } memory { } }
group system { cpu { } memory { } "name=track" { } }
group rt { cpu { } }
template guests/%u {
	perm { task { uid = qemu; gid = kvm; fperm = 660; } admin { uid = root; gid = kvm; dperm = 775; } }
	cpu { cpu.shares = 2048; }
}
`

func TestEngineExec(t *testing.T) {
	tests := []struct {
		name string
		p    Process
		want string
	}{
		{"kvm member, template made on the fly",
			Process{PID: 100, EUID: 107, EGID: 107}, "cpu:/guests/qemu memory:/ name=track:/"},
		{"egid is the group",
			Process{PID: 101, EUID: 1000, EGID: 36}, "cpu:/guests/alice memory:/ name=track:/"},
		{"full path matches by base name, with a continuation line",
			Process{PID: 102, EUID: 1000, EGID: 1000, Name: "/usr/bin/qemu-system-x86_64"}, "cpu:/guests memory:/guests name=track:/"},
		{"user and process, every hierarchy",
			Process{PID: 103, EUID: 0, EGID: 0, Name: "/usr/sbin/sshd"}, "cpu:/system memory:/system name=track:/system"},
		{"ignore",
			Process{PID: 104, EUID: 1001, EGID: 1001, Name: "/usr/sbin/sshd"}, "cpu:/ memory:/ name=track:/"},
		{"ignore_rt on a real-time process",
			Process{PID: 105, EUID: 1000, EGID: 1000, Name: "/usr/sbin/chrony", RT: true}, "cpu:/ memory:/ name=track:/"},
		{"ignore_rt on an ordinary process",
			Process{PID: 106, EUID: 1000, EGID: 1000, Name: "/usr/sbin/chrony"}, "cpu:/rt memory:/ name=track:/"},
		{"the catch-all",
			Process{PID: 107, EUID: 1000, EGID: 1000, Name: "/usr/bin/vim"}, "cpu:/system memory:/ name=track:/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, specRules, specConfig)
			name := tc.p.Name
			if name == "" {
				name = "/usr/bin/true"
			}
			tc.p.Name = "/bin/sh"
			r.spawn(tc.p)
			r.exec(tc.p.PID, name)
			if got := r.places(tc.p.PID); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEngineTemplate(t *testing.T) {
	r := newRig(t, specRules, specConfig)
	r.spawn(Process{PID: 100, EUID: 107, EGID: 107, Name: "/bin/sh"})
	r.exec(100, "/usr/bin/qemu-system-x86_64")
	if got, want := r.read("cpu", "/guests/qemu", "cpu.shares"), "2048"; got != want {
		t.Errorf("cpu.shares of the container made from the template: got %s, want %s", got, want)
	}
	c := r.mkdir("cpu", "/guests/qemu")
	if got, want := c.DirAttr(), (core.Attr{Mode: 0o775, UID: 0, GID: 36}); got != want {
		t.Errorf("directory: got %+v, want %+v", got, want)
	}
	e, _ := c.Lookup("tasks")
	if got, want := e.Attr, (core.Attr{Mode: 0o660, UID: 107, GID: 36}); got != want {
		t.Errorf("tasks: got %+v, want %+v", got, want)
	}
	// The template applies to the container it names, not to its plain
	// parent, which already existed.
	if got := r.read("cpu", "/guests", "cpu.shares"); got != "1024" {
		t.Errorf("parent's cpu.shares: got %s, want 1024", got)
	}
	// A second process of the same user reuses the container.
	r.spawn(Process{PID: 200, EUID: 107, EGID: 107, Name: "/bin/sh"})
	r.exec(200, "/usr/bin/other")
	if got := r.where(200, "cpu"); got != "/guests/qemu" {
		t.Errorf("second process: got %s, want /guests/qemu", got)
	}
}

func TestEngineUIDChange(t *testing.T) {
	r := newRig(t, "alice cpu a/\n* cpu other/\n", "group a { cpu { } }\ngroup other { cpu { } }")
	r.spawn(Process{PID: 100, EUID: 0, Name: "/usr/bin/login"})
	r.e.HandleEvent(procevent.Event{What: procevent.UID, PID: 100, TGID: 100, EUID: 0})
	if got := r.where(100, "cpu"); got != "/other" {
		t.Fatalf("as root: got %s, want /other", got)
	}
	r.w.set(100, func(p *Process) { p.EUID = 1000 })
	r.e.HandleEvent(procevent.Event{What: procevent.UID, PID: 100, TGID: 100, UID: 1000, EUID: 1000})
	if got := r.where(100, "cpu"); got != "/a" {
		t.Errorf("after setuid(alice): got %s, want /a", got)
	}
}

func TestEngineChildBornAfterExec(t *testing.T) {
	// The tracker applies events in order, and the engine moves a process
	// while handling its exec event: a child forked after the exec is
	// applied after the move and is born in the new container.
	r := newRig(t, "*:worker cpu,memory pool/\n", "group pool { cpu { } memory { } }")
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	r.exec(100, "/usr/bin/worker")
	r.e.HandleEvent(r.fork(100, 101))
	r.e.HandleEvent(r.fork(101, 102))
	for _, pid := range []int{100, 101, 102} {
		if got, want := r.places(pid), "cpu:/pool memory:/pool name=track:/"; got != want {
			t.Errorf("%d: got %s, want %s", pid, got, want)
		}
	}
}

func TestEngineThreads(t *testing.T) {
	r := newRig(t, "*:server cpu s/\n", "group s { cpu { } }")
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	r.w.addThread(100, 101)
	r.reg.AddTask(core.TaskInfo{TID: 101, TGID: 100, Start: 1100})
	r.exec(100, "/usr/bin/server")
	for _, tid := range []int{100, 101} {
		if got := r.where(tid, "cpu"); got != "/s" {
			t.Errorf("thread %d: got %s, want /s (the whole thread group moves)", tid, got)
		}
	}
}

func TestEngineAllOrNothing(t *testing.T) {
	// memory refuses /refuse; the cpu move already made is undone.
	r := newRig(t, "* cpu,memory refuse/\n", "group refuse { cpu { } memory { } }")
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	r.exec(100, "/bin/x")
	if got, want := r.places(100), "cpu:/ memory:/ name=track:/"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if len(r.logs) == 0 || !strings.Contains(strings.Join(r.logs, "\n"), "rules.conf:1") {
		t.Errorf("got log %q, want the failure logged with its rule", r.logs)
	}
	if r.e.Stats().Errors != 1 {
		t.Errorf("got %d errors counted, want 1", r.e.Stats().Errors)
	}
}

func TestEngineMissingDestination(t *testing.T) {
	r := newRig(t, "* cpu missing/\n", "")
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	r.exec(100, "/bin/x")
	r.exec(100, "/bin/y")
	if got := r.where(100, "cpu"); got != "/" {
		t.Errorf("got %s, want / (a plain destination is not made on the fly)", got)
	}
	if len(r.logs) != 1 {
		t.Errorf("got logs %q, want the failure logged once", r.logs)
	}
}

func TestEngineUnmountedController(t *testing.T) {
	r := newRig(t, "", "group a { cpu { } }")
	rs, err := ParseRules("r", strings.NewReader("* cpu,freezer a/\n"), ParseOptions{Users: testUsers()})
	if err != nil {
		t.Fatal(err)
	}
	r.e.SetRules(rs)
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	r.exec(100, "/bin/x")
	if got := r.where(100, "cpu"); got != "/a" {
		t.Errorf("got %s, want /a: the mounted controllers still apply", got)
	}
	if ex := mustExplain(t, r.e, 100); !strings.Contains(ex, "controller freezer is not mounted") {
		t.Errorf("explain:\n%s\nwant it to name the missing controller", ex)
	}
}

func TestEngineTemplateSafety(t *testing.T) {
	r := newRig(t, "* cpu users/%p\n", "group users { cpu { } }")
	for _, tc := range []struct {
		pid  int
		comm string
		want string
	}{
		{100, "..", "/users/100"},
		{101, "a/b", "/users/101"},
		{102, "ok", "/users/ok"},
	} {
		r.spawn(Process{PID: tc.pid, Name: "/bin/sh"})
		r.w.set(tc.pid, func(p *Process) { p.Name, p.Comm, p.Exe = tc.comm, tc.comm, "" })
		r.e.HandleEvent(procevent.Event{What: procevent.Exec, PID: tc.pid, TGID: tc.pid})
		if got := r.where(tc.pid, "cpu"); got != tc.want {
			t.Errorf("comm %q: got %s, want %s", tc.comm, got, tc.want)
		}
	}
}

func TestEngineSkips(t *testing.T) {
	r := newRig(t, "* cpu a/\n", "group a { cpu { } }")
	r.spawn(Process{PID: 1, Name: "/usr/bin/containerfs"}) // Self
	r.spawn(Process{PID: 2, Name: "kthreadd", Kernel: true})
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	moved, err := r.e.ClassifyAll()
	if err != nil || moved != 1 {
		t.Errorf("ClassifyAll: got %d, %v, want 1 moved", moved, err)
	}
	for pid, want := range map[int]string{1: "/", 2: "/", 100: "/a"} {
		if got := r.where(pid, "cpu"); got != want {
			t.Errorf("%d: got %s, want %s", pid, got, want)
		}
	}
	if err := r.e.Classify([]int{1}, Spec{{Controllers: []string{"cpu"}, Path: "/a"}}, StickSelf); !errors.Is(err, syscall.EPERM) {
		t.Errorf("classify the daemon: got %v, want EPERM", err)
	}
	if err := r.e.Classify([]int{2}, Spec{{Controllers: []string{"cpu"}, Path: "/a"}}, StickSelf); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("classify a kernel thread: got %v, want EINVAL", err)
	}
	if err := r.e.Classify([]int{999}, Spec{{Controllers: []string{"cpu"}, Path: "/a"}}, StickSelf); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("classify a missing process: got %v, want ESRCH", err)
	}
}

func TestEngineSticky(t *testing.T) {
	const rules = "* cpu ruled/\n"
	const cfg = "group ruled { cpu { } }\ngroup placed { cpu { } }"
	tests := []struct {
		name      string
		mode      Stick
		self      string // after the placed process execs
		child     string // after its child execs
		grandkid  string // a child of the child, after it execs
		manual    bool   // placed by hand instead of by Classify
		childSame bool
	}{
		{name: "sticky self: children follow the rules", mode: StickSelf, self: "/placed", child: "/ruled", grandkid: "/ruled"},
		{name: "sticky tree: the whole tree stays", mode: StickTree, self: "/placed", child: "/placed", grandkid: "/placed"},
		{name: "not sticky: rules apply again", mode: StickNone, self: "/ruled", child: "/ruled", grandkid: "/ruled"},
		{name: "by hand: the whole tree stays", manual: true, self: "/placed", child: "/placed", grandkid: "/placed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rules, cfg)
			r.spawn(Process{PID: 100, Name: "/bin/sh"})
			if tc.manual {
				if err := r.reg.Attach(r.mkdir("cpu", "/placed"), core.Caller{}, 100, true); err != nil {
					t.Fatal(err)
				}
				r.e.NoteManual(100, 0)
			} else if err := r.e.Classify([]int{100}, Spec{{Controllers: []string{"cpu"}, Path: "/placed"}}, tc.mode); err != nil {
				t.Fatal(err)
			}
			r.exec(100, "/bin/next")
			if got := r.where(100, "cpu"); got != tc.self {
				t.Errorf("placed process after exec: got %s, want %s", got, tc.self)
			}
			r.e.HandleEvent(r.fork(100, 101))
			r.exec(101, "/bin/child")
			if got := r.where(101, "cpu"); got != tc.child {
				t.Errorf("child after exec: got %s, want %s", got, tc.child)
			}
			r.e.HandleEvent(r.fork(101, 102))
			r.exec(102, "/bin/grandchild")
			if got := r.where(102, "cpu"); got != tc.grandkid {
				t.Errorf("grandchild after exec: got %s, want %s", got, tc.grandkid)
			}
			if tc.grandkid == "/placed" {
				if ex, want := mustExplain(t, r.e, 102), "sticky with its children (a descendant of 100, "; !strings.Contains(ex, want) {
					t.Errorf("explain the grandchild:\n%s\nwant %q", ex, want)
				}
			}
			// An entry goes with its process: not at the exit of the
			// leader while another thread lives on (it may exec and take
			// over the PID), but once the last thread is gone. Exits reach
			// the model first, as the tracker applies them.
			for _, pid := range []int{102, 101} {
				r.reg.Exit(pid, 0)
				r.e.HandleEvent(procevent.Event{What: procevent.Exit, PID: pid, TGID: pid})
				if _, ok := r.e.stickyEntry(pid); ok {
					t.Errorf("sticky entry of %d outlived its process", pid)
				}
			}
			r.reg.Fork(100, core.TaskInfo{TID: 105, TGID: 100, Start: 1105})
			r.reg.Exit(100, 0)
			r.e.HandleEvent(procevent.Event{What: procevent.Exit, PID: 100, TGID: 100})
			if _, ok := r.e.stickyEntry(100); !ok && tc.mode != StickNone {
				t.Error("sticky entry dropped at the exit of a leader whose process lives on")
			}
			r.reg.Exit(105, 0)
			r.e.HandleEvent(procevent.Event{What: procevent.Exit, PID: 105, TGID: 100})
			if _, ok := r.e.stickyEntry(100); ok {
				t.Error("sticky entry outlived its process")
			}
		})
	}
}

func TestEngineStickyPIDReuse(t *testing.T) {
	r := newRig(t, "* cpu ruled/\n", "group ruled { cpu { } }\ngroup placed { cpu { } }")
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	if err := r.e.Stick(100, StickSelf); err != nil {
		t.Fatal(err)
	}
	// The process exits and its exit event is lost; a new one gets its PID.
	r.w.set(100, func(p *Process) { p.Start += 500 })
	r.exec(100, "/bin/new")
	if got := r.where(100, "cpu"); got != "/ruled" {
		t.Errorf("got %s, want /ruled: a reused PID is not sticky", got)
	}
}

// TestEngineStickyLateForkStamp: a move by hand reports the start time the
// model holds, which for a task learnt from a fork event is the event's
// stamp, a few ticks after the start /proc shows under load. The process
// stays sticky: only a start later than the recorded one is another task.
func TestEngineStickyLateForkStamp(t *testing.T) {
	r := newRig(t, "* cpu ruled/\n", "group ruled { cpu { } }\ngroup placed { cpu { } }")
	p := r.spawn(Process{PID: 100, Name: "/bin/sh"})
	if err := r.reg.Attach(r.mkdir("cpu", "/placed"), core.Caller{}, 100, true); err != nil {
		t.Fatal(err)
	}
	r.e.NoteManual(100, p.Start+5)
	r.exec(100, "/bin/next")
	if got := r.where(100, "cpu"); got != "/placed" {
		t.Errorf("got %s, want /placed: a fork stamp 5 ticks late is the same process", got)
	}
}

func TestEngineExecPlacesBeforeExec(t *testing.T) {
	r := newRig(t, specRules, specConfig)
	// cgexec without -g: the rules for the program about to run.
	r.spawn(Process{PID: 100, EUID: 1000, EGID: 1000, Name: "/usr/bin/containerfs"})
	if err := r.e.Exec(100, nil, "/usr/bin/qemu-system-x86_64", StickSelf); err != nil {
		t.Fatal(err)
	}
	if got, want := r.places(100), "cpu:/guests memory:/guests name=track:/"; got != want {
		t.Fatalf("before exec: got %s, want %s", got, want)
	}
	r.exec(100, "/usr/bin/qemu-system-x86_64")
	if got, want := r.places(100), "cpu:/guests memory:/guests name=track:/"; got != want {
		t.Errorf("after exec: got %s, want %s", got, want)
	}
	// cgexec -g: an explicit place; a missing one is ENOENT and moves nothing.
	r.spawn(Process{PID: 200, Name: "/usr/bin/containerfs"})
	spec, _ := ParseSpec([]string{"*:/system"})
	if err := r.e.Exec(200, spec, "", StickTree); err != nil {
		t.Fatal(err)
	}
	if got, want := r.places(200), "cpu:/system memory:/system name=track:/system"; got != want {
		t.Errorf("-g *:/system: got %s, want %s", got, want)
	}
	spec, _ = ParseSpec([]string{"cpu:/system", "memory:/nowhere"})
	if err := r.e.Exec(200, spec, "", StickTree); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("-g memory:/nowhere: got %v, want ENOENT", err)
	}
	spec, _ = ParseSpec([]string{"freezer:/x"})
	if err := r.e.Exec(200, spec, "", StickTree); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("-g freezer:/x (not mounted): got %v, want EINVAL", err)
	}
}

// racyModel injects something into the model just before a move.
type racyModel struct {
	Model
	before func(dst *core.Container, pid int)
}

func (m racyModel) Attach(dst *core.Container, pid int) error {
	if m.before != nil {
		b := m.before
		b(dst, pid)
	}
	return m.Model.Attach(dst, pid)
}

func TestEngineForkRace(t *testing.T) {
	// A start-up pass (or Classify) moves process 100 off the tracker's
	// goroutine while the tracker applies forks of it. Whichever way the
	// fork and the move interleave, the child ends up with its parent.
	tests := []struct {
		name string
		// handle says when the engine sees the fork event: "before" the
		// move (the fork was applied and handled first), or "after" it
		// (applied to the model first, handed to the engine once the move
		// completed).
		handle string
	}{
		{"fork handled before the move", "before"},
		{"fork applied before, handled after the move", "after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "*:server cpu,memory pool/\n", "group pool { cpu { } memory { } }")
			r.spawn(Process{PID: 100, Name: "/usr/bin/server"})
			var late []procevent.Event
			injected := false
			r.e.o.Model = racyModel{Model: CoreModel{r.reg}, before: func(dst *core.Container, pid int) {
				if pid != 100 || injected {
					return
				}
				injected = true
				// The child is forked, and the tracker applies its fork to
				// the model: it joins its parent's old containers.
				ev := r.fork(100, 101)
				ev2 := r.fork(101, 102) // and a grandchild
				if tc.handle == "before" {
					r.e.HandleEvent(ev)
					r.e.HandleEvent(ev2)
				} else {
					late = append(late, ev, ev2)
				}
			}}
			moved, err := r.e.ClassifyAll()
			if err != nil || moved != 1 {
				t.Fatalf("ClassifyAll: got %d, %v; want 1 moved", moved, err)
			}
			for _, ev := range late {
				r.e.HandleEvent(ev)
			}
			for _, pid := range []int{100, 101, 102} {
				if got, want := r.places(pid), "cpu:/pool memory:/pool name=track:/"; got != want {
					t.Errorf("%d: got %s, want %s", pid, got, want)
				}
			}
			if got := r.e.Stats().Fixups; got != 2 {
				t.Errorf("got %d fix-ups, want 2", got)
			}
		})
	}
}

func TestEngineForkRaceLeavesPlacedChild(t *testing.T) {
	// A child forked during the move that was placed elsewhere meanwhile
	// (here: by hand) is not dragged along.
	r := newRig(t, "*:server cpu pool/\n", "group pool { cpu { } }\ngroup mine { cpu { } }")
	r.spawn(Process{PID: 100, Name: "/usr/bin/server"})
	var late procevent.Event
	injected := false
	r.e.o.Model = racyModel{Model: CoreModel{r.reg}, before: func(dst *core.Container, pid int) {
		if pid != 100 || injected {
			return
		}
		injected = true
		late = r.fork(100, 101)
		if err := r.reg.Attach(r.mkdir("cpu", "/mine"), core.Caller{}, 101, true); err != nil {
			t.Fatal(err)
		}
	}}
	if _, err := r.e.ClassifyAll(); err != nil {
		t.Fatal(err)
	}
	r.e.HandleEvent(late)
	if got := r.where(101, "cpu"); got != "/mine" {
		t.Errorf("got %s, want /mine", got)
	}
}

func TestEngineForkAfterMoveNotTouched(t *testing.T) {
	// A fork stamped after the move completed needs nothing: the child was
	// born in the new container. The engine must not move it back if it
	// has meanwhile gone elsewhere.
	r := newRig(t, "*:server cpu pool/\n", "group pool { cpu { } }\ngroup other { cpu { } }")
	r.spawn(Process{PID: 100, Name: "/usr/bin/server"})
	if _, err := r.e.ClassifyAll(); err != nil {
		t.Fatal(err)
	}
	ev := r.fork(100, 101)
	if err := r.reg.Attach(r.mkdir("cpu", "/other"), core.Caller{}, 101, true); err != nil {
		t.Fatal(err)
	}
	r.e.HandleEvent(ev)
	if got := r.where(101, "cpu"); got != "/other" {
		t.Errorf("got %s, want /other", got)
	}
	if got := r.e.Stats().Fixups; got != 0 {
		t.Errorf("got %d fix-ups, want 0", got)
	}
}

func TestExplain(t *testing.T) {
	r := newRig(t, specRules, specConfig)
	r.spawn(Process{PID: 100, EUID: 1000, EGID: 1000, Name: "/usr/bin/qemu-system-x86_64", Exe: "/usr/bin/qemu-system-x86_64"})
	ex := mustExplain(t, r.e, 100)
	for _, want := range []string{
		`process 100: name "/usr/bin/qemu-system-x86_64"`,
		"euid 1000 (alice), egid 1000 (alice)",
		`no match: rules.conf:2 "@kvm                  cpu,cpuacct  guests/%u": egid 1000 is not kvm (36), and uid 1000 is not a member`,
		"matched rules.conf:3: *:qemu-system-x86_64  cpu          guests/",
		"and rules.conf:4: %                     memory       guests/",
		"cpu,cpuacct: destination /guests, now in /",
		"memory: destination /guests, now in /",
	} {
		if !strings.Contains(ex, want) {
			t.Errorf("explain:\n%s\nwant it to contain %q", ex, want)
		}
	}

	r.spawn(Process{PID: 101, EUID: 107, EGID: 107, Name: "/bin/sh"})
	if ex := mustExplain(t, r.e, 101); !strings.Contains(ex, "cpu,cpuacct: destination /guests/qemu (made on the fly, following template guests/%u at config.conf:5)") {
		t.Errorf("explain:\n%s\nwant the templated destination", ex)
	}
	r.spawn(Process{PID: 102, EUID: 1001, Name: "/bin/sh"})
	if ex := mustExplain(t, r.e, 102); !strings.Contains(ex, "not moved: the rule says ignore") {
		t.Errorf("explain:\n%s\nwant the ignore", ex)
	}
	r.e.SetRules(&RuleSet{})
	if ex := mustExplain(t, r.e, 102); !strings.Contains(ex, "no rule matched") {
		t.Errorf("explain:\n%s\nwant no rule matched", ex)
	}
	if err := r.e.Stick(102, StickTree); err != nil {
		t.Fatal(err)
	}
	if ex := mustExplain(t, r.e, 102); !strings.Contains(ex, "not classified: sticky with its children (on request)") {
		t.Errorf("explain:\n%s\nwant the sticky state", ex)
	}
	if _, err := r.e.Explain(999); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("explain of a missing process: %v, want ESRCH", err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, "", "group a { cpu { } }\ngroup b { cpu { } }")
	r.e.o.RulesFile, r.e.o.RulesDir = dir+"/rules.conf", dir+"/rules.d"
	write := func(s string) {
		if err := os.WriteFile(dir+"/rules.conf", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("* cpu a/\n")
	if err := r.e.Reload(); err != nil {
		t.Fatal(err)
	}
	write("* cpu b/\n* nosuch c/\n")
	err := r.e.Reload()
	if err == nil || !strings.Contains(err.Error(), "rules.conf:2: unknown controller") {
		t.Fatalf("got %v, want a line-numbered error", err)
	}
	if got := r.e.Rules().Rules[0].Destination; got != "a/" {
		t.Errorf("after a bad reload: got rule %s in force, want a/ (the previous rules stay)", got)
	}
}

// After lost events, sticky entries of processes the model no longer has
// go: their exit events may have been lost, and a new process given the
// PID must not inherit the entry.
func TestEngineLostPrunesSticky(t *testing.T) {
	r := newRig(t, "* cpu ruled/\n", "group ruled { cpu { } }\ngroup placed { cpu { } }")
	r.spawn(Process{PID: 100, Name: "/bin/sh"})
	if err := r.e.Stick(100, StickTree); err != nil {
		t.Fatal(err)
	}
	r.e.HandleEvent(r.fork(100, 101))
	r.e.HandleEvent(r.fork(100, 102))
	r.reg.Exit(101, 0) // its exit event is lost
	done := make(chan int, 1)
	r.e.Lost(func(int) { close(done) })
	<-done
	for _, tc := range []struct {
		pid  int
		want bool
	}{{100, true}, {101, false}, {102, true}} {
		if _, got := r.e.stickyEntry(tc.pid); got != tc.want {
			t.Errorf("sticky entry of %d after Lost: got %v, want %v", tc.pid, got, tc.want)
		}
	}
}

func TestEngineLost(t *testing.T) {
	r := newRig(t, "*:worker cpu pool/\n", "group pool { cpu { } }")
	r.spawn(Process{PID: 100, Name: "/usr/bin/worker"})
	done := make(chan int, 1)
	r.e.Lost(func(moved int) { done <- moved })
	if got := <-done; got != 1 {
		t.Errorf("got %d moved, want 1 (its exec was never seen)", got)
	}
	if got := r.where(100, "cpu"); got != "/pool" {
		t.Errorf("got %s, want /pool", got)
	}
}

func mustExplain(t *testing.T, e *Engine, pid int) string {
	t.Helper()
	ex, err := e.Explain(pid)
	if err != nil {
		t.Fatalf("explain %d: %v", pid, err)
	}
	return ex
}
