// Release agents: what runs when a container with notify_on_release
// becomes empty, as cgroup v1 runs it.

package daemon

import (
	"os/exec"
	"path/filepath"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/prio"
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
		d.cfg.Logf.Printf("release agent %q is not an absolute path; not run for %s", agent, path)
		return
	}
	// Started from a thread of its own put back to ordinary scheduling, so
	// that the agent inherits nothing of the daemon's priority. Start
	// returns once the exec has succeeded or failed.
	started := make(chan error, 1)
	go func() {
		prio.Ordinary()
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
	}()
	if err := <-started; err != nil {
		d.cfg.Logf.Printf("release agent for %s: %v", path, err)
	}
}
