// The daemon's life: what it is started with, what it owns, how it starts
// (the model, the tracker, the policy) and how it closes.

package daemon

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/containerfs/containerfs/internal/cgfs"
	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/policy"
	"github.com/containerfs/containerfs/internal/prio"
	"github.com/containerfs/containerfs/internal/worker"

	"github.com/containerfs/containerfs/internal/lockrank"
)

// Config is what the daemon is started with.
type Config struct {
	Socket string
	Proc   string // procfs root, "/proc"
	Subsys []core.Subsys
	Debug  bool
	Logf   core.Logf // log.Printf if nil

	// The policy: rules in the cgrules.conf grammar, and a setup in the
	// cgconfig.conf grammar applied at start (its templates serve the
	// rules). An empty path reads nothing.
	RulesFile, RulesDir   string
	ConfigFile, ConfigDir string
	// Fresh makes new instances of Subsys (subsys.All), so that a
	// snapshot writes only the settings that differ from a new container's.
	Fresh func() []core.Subsys
	// StrictV1 keeps cgroup v1's default of clone_children off in new
	// hierarchies; containerfs turns it on so that new cpusets are usable.
	StrictV1 bool
}

// Daemon owns the registry and every mount.
type Daemon struct {
	cfg Config
	Reg *core.Registry

	ln    net.Listener
	track *tracker

	// Policy places processes by the rules (internal/policy).
	Policy *policy.Engine
	watch  *worker.Worker // reloads the policy when its files change

	mu      lockrank.Mutex[lockrank.Daemon]
	mounts  map[string][]*cgfs.Mount // by directory, oldest first (mounts stack); guarded by mu
	metrics *http.Server             // guarded by mu

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{} // closed when Close has unmounted everything
}

// New makes the registry, learns every task on the machine, and listens on
// the control socket.
func New(cfg Config) (*Daemon, error) {
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	d := &Daemon{cfg: cfg, mounts: map[string][]*cgfs.Mount{}, closed: make(chan struct{})}
	procs := core.ProcFS{Root: cfg.Proc}
	d.Reg = core.NewRegistry(procs, cfg.Subsys...)
	d.Reg.SetSelf(os.Getpid())
	d.Reg.CloneChildrenByDefault(!cfg.StrictV1)
	d.Reg.OnRelease(d.release)
	prio.Raise(cfg.Logf.Printf)
	removeStaleMounts(cfg.Logf)
	if err := d.listen(); err != nil {
		return nil, err
	}
	// Listen for events before the first scan, so that nothing born
	// between the two is missed.
	d.Policy = policy.New(policy.Options{
		Model: policy.CoreModel{Reg: d.Reg}, Procs: policy.ProcFS{Root: cfg.Proc},
		Known: d.Reg.Subsystems(), RulesFile: cfg.RulesFile, RulesDir: cfg.RulesDir,
		Logf: cfg.Logf,
	})
	// A move made by hand (a write to tasks or cgroup.procs) sticks: the
	// rules leave that process alone from then on.
	d.Reg.OnAttach(func(dst *core.Container, who core.Caller, tgid int, start uint64) {
		if !policy.Own(who) {
			d.Policy.NoteManual(tgid, start)
		}
	})
	d.track = newTracker(d.Reg, cfg.Proc, cfg.Logf)
	d.track.onEvent = d.Policy.HandleEvent
	d.track.onLost = func() { d.Policy.Lost(nil) }
	d.track.resync()
	go d.track.run()
	return d, nil
}

// StartPolicy applies the setup file (mounting what it names through
// Mount), loads the rules, classifies every process once, as cgrulesengd
// does at start-up, and reloads the rules whenever their files (or the
// user and group databases) change. Bad files are logged with their line
// numbers; the daemon runs on without them.
func (d *Daemon) StartPolicy() {
	cfg, err := policy.LoadConfig(d.cfg.ConfigFile, d.cfg.ConfigDir)
	if err != nil {
		d.cfg.Logf.Printf("setup not applied:\n%v", err)
	} else {
		for _, w := range cfg.Warnings {
			d.cfg.Logf.Printf("setup: %s", w)
		}
		if err := policy.Apply(policy.CoreModel{Reg: d.Reg}, cfg, policy.ApplyOptions{Mount: d.Mount}); err != nil {
			d.cfg.Logf.Printf("setup: %v", err)
		}
		d.Policy.SetConfig(cfg)
	}
	d.Policy.Reload()
	go func() {
		t0 := time.Now()
		moved, err := d.Policy.ClassifyAll()
		d.cfg.Logf.Printf("rules: %d processes placed at start-up in %v", moved, time.Since(t0).Round(time.Millisecond))
		if err != nil {
			d.cfg.Logf.Printf("rules: %v", err)
		}
	}()
	var watched []string
	for _, p := range []string{d.cfg.RulesFile, d.cfg.RulesDir, d.cfg.ConfigFile, d.cfg.ConfigDir, "/etc/passwd", "/etc/group"} {
		if p != "" {
			watched = append(watched, p)
		}
	}
	d.watch = policy.Watch(time.Second, func() { d.ReloadPolicy() }, watched...)
}

// ReloadPolicy re-reads the rules and the setup's templates (SIGHUP). The
// setup is not applied again: that would undo changes made since. On an
// error the rules in force stay.
func (d *Daemon) ReloadPolicy() error {
	cfg, err := policy.LoadConfig(d.cfg.ConfigFile, d.cfg.ConfigDir)
	if err != nil {
		d.cfg.Logf.Printf("templates not reloaded:\n%v", err)
	} else {
		d.Policy.SetConfig(cfg)
	}
	return errors.Join(err, d.Policy.Reload())
}

// Close unmounts everything and stops answering.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.close()
		close(d.closed)
	})
	<-d.closed
	return d.closeErr
}

func (d *Daemon) close() error {
	d.ln.Close()
	if d.watch != nil {
		<-d.watch.Stop() // a reload under way ends first: none runs after Close
	}
	d.track.close()
	os.Remove(d.cfg.Socket)
	d.mu.Lock()
	if d.metrics != nil {
		d.metrics.Close()
	}
	var ms []*cgfs.Mount
	for _, stack := range d.mounts {
		for i := len(stack) - 1; i >= 0; i-- {
			ms = append(ms, stack[i])
		}
	}
	d.mu.Unlock()
	// In parallel: a busy mount is detached and must not hold up the rest.
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Unmount(2 * time.Second) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
