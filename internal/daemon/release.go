package daemon

import (
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containerfs/containerfs/internal/core"
	"golang.org/x/sys/unix"
)

// release runs the hierarchy's release agent for a container that has
// become empty, as cgroup v1 does: argv {agent, path relative to the
// hierarchy root}, environment {HOME=/, PATH=/sbin:/bin:/usr/sbin:/usr/bin},
// waiting only until the exec succeeded, never for the agent to finish.
func (d *Daemon) release(h *core.Hierarchy, path string) {
	agent := h.Options().ReleaseAgent
	if agent == "" {
		return
	}
	cmd := &exec.Cmd{
		Path: agent,
		Args: []string{agent, path},
		Env:  []string{"HOME=/", "PATH=/sbin:/bin:/usr/sbin:/usr/bin"},
		Dir:  "/",
	}
	if !filepath.IsAbs(agent) {
		d.cfg.Logf("release agent %q is not an absolute path; not run for %s", agent, path)
		return
	}
	// Start returns once the exec has succeeded or failed.
	if err := cmd.Start(); err != nil {
		d.cfg.Logf("release agent for %s: %v", path, err)
		return
	}
	go cmd.Wait()
}

// raisePriority makes the daemon's threads run ahead of the tasks it
// serves: a starved daemon would stall every FUSE call and every
// enforcement. Threads inherit the nice value of the thread that creates
// them, so setting it on every thread now covers those to come. When the
// daemon leads its own session (as when mount.container starts it), its
// autogroup is raised too, since with autogroup on, nice counts only
// within a session; a daemon run from a terminal leaves the terminal's
// session alone.
func raisePriority(logf func(string, ...any)) {
	const nice = -10
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		var tid int
		for _, c := range e.Name() {
			tid = tid*10 + int(c-'0')
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			logf("raise priority of thread %d: %v", tid, err)
			return
		}
	}
	if sid, _ := unix.Getsid(0); sid == os.Getpid() {
		if err := os.WriteFile("/proc/self/autogroup", []byte("-10"), 0); err != nil {
			logf("raise autogroup priority: %v", err)
		}
	}
}
