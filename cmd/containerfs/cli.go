package main

// The CLI: the daemon (serve), the client commands that talk to it over
// the control socket, install, and starting a daemon when none answers.

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/daemon"
	"github.com/containerfs/containerfs/internal/policy"
	"github.com/containerfs/containerfs/internal/subsys"
	"github.com/spf13/cobra"
	"runtime/debug"
)

var socketFlag string

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "containerfs",
		Short:         "Process containers (cgroup v1) in userspace, served as a filesystem",
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       version(),
	}
	root.PersistentFlags().StringVar(&socketFlag, "socket", "", "control socket (default $CONTAINERFS_SOCKET or "+daemon.DefaultSocket+")")
	root.AddCommand(serveCmd(), execCmd(), classifyCmd(), explainCmd(), snapshotCmd(), reloadCmd(), mountCmd(), umountCmd(), installCmd(), cgroupCmd(), lssubsysCmd(), statsCmd(), demoCmd(),
		cgcreateCmd(), cgdeleteCmd(), cgsetCmd(), cggetCmd(), lscgroupCmd())
	return root
}

func serveCmd() *cobra.Command {
	var mountDir, mountOpts, metricsAddr string
	var rules, rulesDir, config, configDir string
	var debug, doInstall, strict bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon that owns the model and serves every mount",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if doInstall {
				if err := installAt("/", cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			d, err := daemon.New(daemon.Config{
				Socket: daemon.SocketPath(socketFlag),
				Subsys: subsys.All(),
				Fresh:  subsys.All,

				RulesFile: rules, RulesDir: rulesDir,
				ConfigFile: config, ConfigDir: configDir,
				Debug:    debug,
				StrictV1: strict,
			})
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
			go func() {
				s := <-sigs
				log.Printf("%v: unmounting everything", s)
				if err := d.Close(); err != nil {
					log.Print(err)
				}
				stopProfile()
				os.Exit(0)
			}()
			if mountDir != "" {
				if err := os.MkdirAll(mountDir, 0o755); err != nil {
					d.Close()
					return err
				}
				if err := d.Mount("container", mountDir, mountOpts); err != nil {
					d.Close()
					return err
				}
			}
			if metricsAddr != "" {
				if err := d.ServeMetrics(metricsAddr); err != nil {
					d.Close()
					return fmt.Errorf("--metrics: %w", err)
				}
			}
			d.StartPolicy()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			go func() {
				for range hup {
					d.ReloadPolicy() // logs what it did
				}
			}()
			log.Printf("containerfs daemon %d listening on %s", os.Getpid(), daemon.SocketPath(socketFlag))
			return d.Serve()
		},
	}
	cmd.Flags().StringVar(&mountDir, "mount", "", "mount a hierarchy at this directory at start-up")
	cmd.Flags().StringVarP(&mountOpts, "options", "o", "", "mount options for --mount (default: all subsystems)")
	cmd.Flags().BoolVar(&debug, "debug", false, "log every FUSE request")
	cmd.Flags().BoolVar(&strict, "strict-v1", false, "leave cgroup.clone_children off in new hierarchies, as cgroup v1 does (new cpusets start empty)")
	cmd.Flags().StringVar(&rules, "rules", policy.DefaultRulesFile, "rules file, cgrules.conf grammar (\"\" for none); reloaded on SIGHUP and on change")
	cmd.Flags().StringVar(&rulesDir, "rules-dir", policy.DefaultRulesDir, "directory of more *.conf rules files")
	cmd.Flags().StringVar(&config, "config", policy.DefaultConfigFile, "setup file, cgconfig.conf grammar, applied at start-up (\"\" for none)")
	cmd.Flags().StringVar(&configDir, "config-dir", policy.DefaultConfigDir, "directory of more *.conf setup files")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (host:port, e.g. 127.0.0.1:9256; \"\" for none)")
	cmd.Flags().BoolVar(&doInstall, "install", false, "first install the binary and mount.container, as `containerfs install` does")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (runtime/pprof) to this file until shutdown")
	cmd.Flags().MarkHidden("cpuprofile") // a developer's tool, not a feature
	return cmd
}

// startCPUProfile profiles the daemon's CPU into file, if not "", until the
// returned function runs (on SIGINT/SIGTERM or when Serve returns).
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", file, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Printf("cpu profile %s: %v", file, err)
			}
		})
	}, nil
}

func mountCmd() *cobra.Command {
	var opts string
	cmd := &cobra.Command{
		Use:   "mount [-o OPTIONS] SOURCE DIR",
		Short: "Mount a hierarchy, starting the daemon if none runs (as mount -t container does)",
		Args:  cobra.ExactArgs(2),
		Run: func(cmd *cobra.Command, args []string) {
			a := []string{args[0], args[1]}
			if opts != "" {
				a = append(a, "-o", opts)
			}
			os.Exit(mountHelper(a))
		},
	}
	cmd.Flags().StringVarP(&opts, "options", "o", "", "mount options: subsystems, none, all, name=, noprefix, clone_children, release_agent=")
	return cmd
}

func umountCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "umount DIR",
		Short: "Unmount a containerfs mount",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _ := filepath.Abs(args[0])
			return call(daemon.Request{Op: "umount", Dir: dir}, nil)
		},
	}
}

func cgroupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cgroup PID",
		Short: "Print a task's containers in the /proc/PID/cgroup format",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("bad PID %q", args[0])
			}
			return call(daemon.Request{Op: "cgroup", PID: pid}, cmd.OutOrStdout())
		},
	}
}

func lssubsysCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lssubsys",
		Short: "Print the subsystems table in the /proc/cgroups format",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(daemon.Request{Op: "lssubsys"}, cmd.OutOrStdout())
		},
	}
}

func statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print the daemon's task-tracking figures (events, losses, fork-to-placement latency)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(daemon.Request{Op: "stats"}, cmd.OutOrStdout())
		},
	}
}

func execCmd() *cobra.Command {
	var groups []string
	var sticky bool
	cmd := &cobra.Command{
		Use:   "exec [-g CONTROLLERS:PATH]... [--sticky] [--] COMMAND [ARG]...",
		Short: "Run a command in the given containers, or where the rules put it (cgexec)",
		Long: "The daemon moves this process first, then it execs COMMAND: the command never\n" +
			"runs in the wrong container, and the rules leave it alone afterwards (with\n" +
			"--sticky, its children too).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := policy.ParseSpec(groups); err != nil {
				return err
			}
			prog, err := exec.LookPath(args[0])
			if err != nil {
				return err
			}
			if prog, err = filepath.Abs(prog); err != nil {
				return err
			}
			req := daemon.Request{Op: "exec", Groups: groups, Program: prog}
			if sticky {
				req.Sticky = "tree"
			}
			if err := call(req, nil); err != nil {
				return err
			}
			return syscall.Exec(prog, args, os.Environ())
		},
	}
	cmd.Flags().StringArrayVarP(&groups, "group", "g", nil, "CONTROLLERS:PATH to run in, as cpu,memory:/guests or *:/x (repeatable; none: by the rules)")
	cmd.Flags().BoolVar(&sticky, "sticky", false, "the rules leave the command's children alone too")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func classifyCmd() *cobra.Command {
	var groups []string
	var sticky, cancel bool
	cmd := &cobra.Command{
		Use:   "classify [-g CONTROLLERS:PATH]... [--sticky | --cancel-unchanged] PID...",
		Short: "Move processes into the given containers, or where the rules put them (cgclassify)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := daemon.Request{Op: "classify", Groups: groups}
			switch {
			case sticky && cancel:
				return fmt.Errorf("--sticky and --cancel-unchanged exclude each other")
			case sticky:
				req.Sticky = "tree"
			case cancel:
				req.Sticky = "none"
			}
			for _, a := range args {
				pid, err := strconv.Atoi(a)
				if err != nil || pid <= 0 {
					return fmt.Errorf("bad PID %q", a)
				}
				req.PIDs = append(req.PIDs, pid)
			}
			return call(req, nil)
		},
	}
	cmd.Flags().StringArrayVarP(&groups, "group", "g", nil, "CONTROLLERS:PATH to move into (repeatable; none: by the rules)")
	cmd.Flags().BoolVar(&sticky, "sticky", false, "the rules leave the processes and their children alone")
	cmd.Flags().BoolVar(&cancel, "cancel-unchanged", false, "the rules may move the processes again")
	return cmd
}

func explainCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "explain PID",
		Short: "Tell which rule places a process, or why none does",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("bad PID %q", args[0])
			}
			return call(daemon.Request{Op: "explain", PID: pid}, cmd.OutOrStdout())
		},
	}
}

func snapshotCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "snapshot",
		Short: "Print the live containers, owners and settings in the cgconfig.conf grammar (cgsnapshot)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(daemon.Request{Op: "snapshot"}, cmd.OutOrStdout())
		},
	}
}

func reloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Re-read the rules and templates (as SIGHUP does); a bad file keeps the rules in force",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(daemon.Request{Op: "reload"}, nil)
		},
	}
}

// call sends a request to the running daemon and prints the reply's lines.
func call(req daemon.Request, out io.Writer) error {
	rep, err := daemon.Call(daemon.SocketPath(socketFlag), req, 10*time.Second)
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return err
	}
	for _, l := range rep.Lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

func installCmd() *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the binary and the mount.container helper for mount(8)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return installAt(prefix, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "/", "install under this root")
	return cmd
}

// installAt installs this binary as PREFIX/usr/local/bin/containerfs and
// links PREFIX/sbin/mount.container to it, where mount(8) looks for helpers.
func installAt(prefix string, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Join(prefix, "usr/local/bin/containerfs")
	helper := filepath.Join(prefix, "sbin/mount.container")
	if err := install(self, bin); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(helper), 0o755); err != nil {
		return err
	}
	os.Remove(helper)
	if err := os.Symlink(bin, helper); err != nil {
		return err
	}
	fmt.Fprintf(out, "installed %s and %s\n", bin, helper)
	return nil
}

// install copies src to dst through a temporary file, so a running daemon's
// binary is replaced, not overwritten in place.
func install(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if s, err := filepath.EvalSymlinks(src); err == nil {
		if d, err := filepath.EvalSymlinks(dst); err == nil && s == d {
			return nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".containerfs-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// startDaemon starts `containerfs serve` in its own session, logging to
// $CONTAINERFS_LOG (default /var/log/containerfs.log), and waits until it
// answers on socket.
func startDaemon(socket string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := os.Getenv("CONTAINERFS_LOG")
	if logPath == "" {
		logPath = "/var/log/containerfs.log"
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(self, "serve", "--socket", socket)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := daemon.Call(socket, daemon.Request{Op: "ping"}, time.Second); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("daemon exited at start-up (%v); see %s", err, logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("daemon did not answer on %s within 10s; see %s", socket, logPath)
}

// version is the module's version and the commit it was built from, as
// the Go toolchain records them in the binary.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " (" + rev[:min(12, len(rev))] + dirty + ")"
	}
	return v + " " + bi.GoVersion
}
