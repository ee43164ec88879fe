package main

// The demo: the seed's Guests 90% / System 10% example, run live with
// busy loops and measured.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/daemon"
	"github.com/containerfs/containerfs/internal/proc"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// demoCmd is `containerfs demo`: the seed's example, run. Guests
// (cpu.shares 9216, with guest-a and guest-b inside at equal shares) and
// System (1024) each get busy loops, all on one CPU and each in a session
// of its own, so that the kernel alone would give every loop the same
// time; the demo prints the shares containerfs achieves, second by second.
func demoCmd() *cobra.Command {
	var dir string
	var seconds, cpu int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the seed's example: Guests 90% (guest-a and guest-b 50/50) and System 10% on one CPU, shares shown live",
		Long: "Mounts a cpu hierarchy (or uses --dir), makes Guests (cpu.shares 9216) with guest-a\n" +
			"and guest-b inside, and System (1024), starts a busy loop in guest-a, two in guest-b\n" +
			"and one in System, every one in a session of its own and all on one CPU, and prints\n" +
			"each container's share of the CPU time they used, each second and since the start,\n" +
			"beside what cpu.effective_percent says it is entitled to. Everything it made is\n" +
			"removed when it ends (after --seconds, or on Ctrl-C).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.OutOrStdout(), dir, time.Duration(seconds)*time.Second, cpu)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "a mounted hierarchy with the cpu subsystem to use (default: mount one in a temporary directory)")
	cmd.Flags().IntVar(&seconds, "seconds", 10, "how long to run; 0 runs until interrupted")
	cmd.Flags().IntVar(&cpu, "cpu", -1, "the CPU every busy loop runs on (default: the last online CPU)")
	return cmd
}

// demoGroup is one container of the demo and its busy loops.
type demoGroup struct {
	name, path string
	loops      []*exec.Cmd
	last       int64 // CPU time of its loops at the previous line, ns
	first      int64
}

func runDemo(out io.Writer, dir string, d time.Duration, cpu int) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("demo: must be run as root (it mounts a hierarchy and moves processes)")
	}
	if cpu < 0 {
		cpu = lastOnlineCPU()
	}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	if dir == "" {
		if dir, err = demoMount(); err != nil {
			return err
		}
		mnt := dir
		cleanups = append(cleanups, func() {
			daemon.Call(daemon.SocketPath(socketFlag), daemon.Request{Op: "umount", Dir: mnt}, 10*time.Second)
			os.Remove(mnt)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu.shares")); err != nil {
		return fmt.Errorf("demo: %s has no cpu subsystem (no cpu.shares): %w", dir, err)
	}
	base := filepath.Join(dir, fmt.Sprintf("containerfs-demo-%d", os.Getpid()))
	var made []string
	cleanups = append(cleanups, func() {
		for i := len(made) - 1; i >= 0; i-- {
			// A loop just killed leaves its container once reaped.
			for try := 0; try < 100 && os.Remove(made[i]) != nil; try++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	mk := func(rel, shares string) (string, error) {
		p := filepath.Join(base, rel)
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", err
		}
		made = append(made, p)
		if shares != "" {
			if err := os.WriteFile(filepath.Join(p, "cpu.shares"), []byte(shares), 0); err != nil {
				return "", fmt.Errorf("%s/cpu.shares: %w", p, err)
			}
		}
		return p, nil
	}
	if _, err := mk("", ""); err != nil {
		return err
	}
	guests, err := mk("Guests", "9216")
	if err != nil {
		return err
	}
	ga, err := mk("Guests/guest-a", "")
	if err != nil {
		return err
	}
	gb, err := mk("Guests/guest-b", "")
	if err != nil {
		return err
	}
	system, err := mk("System", "1024")
	if err != nil {
		return err
	}
	_ = guests
	groups := []*demoGroup{{name: "guest-a", path: ga}, {name: "guest-b", path: gb}, {name: "System", path: system}}
	loops := map[string]int{"guest-a": 1, "guest-b": 2, "System": 1}
	cleanups = append(cleanups, func() {
		for _, g := range groups {
			for _, c := range g.loops {
				c.Process.Kill()
				c.Wait()
			}
		}
	})
	for _, g := range groups {
		for i := 0; i < loops[g.name]; i++ {
			c := exec.Command("/bin/sh", "-c", "while :; do :; done")
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				return err
			}
			g.loops = append(g.loops, c)
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(c.Process.Pid, &set); err != nil {
				return fmt.Errorf("pin to CPU %d: %w", cpu, err)
			}
			if err := os.WriteFile(filepath.Join(g.path, "tasks"), []byte(strconv.Itoa(c.Process.Pid)), 0); err != nil {
				return fmt.Errorf("%s/tasks: %w", g.path, err)
			}
		}
	}

	fmt.Fprintf(out, "containerfs demo in %s, busy loops on CPU %d, each in its own session\n", base, cpu)
	fmt.Fprintf(out, "  Guests (cpu.shares 9216): guest-a (1 loop), guest-b (2 loops); System (cpu.shares 1024): 1 loop\n")
	fmt.Fprintf(out, "  without containerfs the kernel gives each of the 4 sessions 25%%: guest-a 25, guest-b 50, System 25\n")
	fmt.Fprintf(out, "  entitled (cpu.effective_percent of the demo's share):")
	for _, g := range groups {
		fmt.Fprintf(out, " %s %s", g.name, demoEntitled(base, g.path))
	}
	fmt.Fprintf(out, "\n\n%6s  %-23s  %-23s\n", "", "last second", "since the start")
	fmt.Fprintf(out, "%6s  %7s %7s %7s  %7s %7s %7s\n", "time", "guest-a", "guest-b", "System", "guest-a", "guest-b", "System")
	for _, g := range groups {
		g.first = demoCPU(g)
		g.last = g.first
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for d == 0 || time.Since(start) < d {
		select {
		case <-sigs:
			fmt.Fprintln(out, "interrupted: cleaning up")
			return nil
		case <-tick.C:
		}
		now := make([]int64, len(groups))
		var dsum, tsum int64
		for i, g := range groups {
			now[i] = demoCPU(g)
			dsum += now[i] - g.last
			tsum += now[i] - g.first
		}
		fmt.Fprintf(out, "%5.0fs ", time.Since(start).Seconds())
		for i, g := range groups {
			fmt.Fprintf(out, " %7.1f", demoPct(now[i]-g.last, dsum))
		}
		fmt.Fprint(out, " ")
		for i, g := range groups {
			fmt.Fprintf(out, " %7.1f", demoPct(now[i]-g.first, tsum))
			g.last = now[i]
		}
		fmt.Fprintln(out)
	}
	return nil
}

// demoMount mounts a cpu hierarchy in a temporary directory, starting the
// daemon if none runs.
func demoMount() (string, error) {
	socket := daemon.SocketPath(socketFlag)
	if _, err := daemon.Call(socket, daemon.Request{Op: "ping"}, time.Second); err != nil {
		if err := startDaemon(socket); err != nil {
			return "", err
		}
	}
	dir, err := os.MkdirTemp("", "containerfs-demo-")
	if err != nil {
		return "", err
	}
	rep, err := daemon.Call(socket, daemon.Request{Op: "mount", Source: "demo", Dir: dir, Options: "cpu"}, 30*time.Second)
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("demo: mount -o cpu: %w (if cpu is already mounted with other subsystems, pass --dir)", err)
	}
	return dir, nil
}

// demoCPU is the CPU time of a group's loops, from /proc/PID/schedstat.
func demoCPU(g *demoGroup) int64 {
	var n int64
	for _, c := range g.loops {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", c.Process.Pid))
		if err != nil {
			continue
		}
		if ss, err := proc.ParseSchedstat(b); err == nil {
			n += ss.Run
		}
	}
	return n
}

func demoPct(a, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(a) / float64(total)
}

// demoEntitled is a container's effective_percent relative to the demo's
// own container, as the percentage of the CPU time the demo's loops get.
func demoEntitled(base, path string) string {
	read := func(p string) float64 {
		b, err := os.ReadFile(filepath.Join(p, "cpu.effective_percent"))
		if err != nil {
			return 0
		}
		v, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		return v
	}
	b, p := read(base), read(path)
	if b == 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f%%", 100*p/b)
}

// lastOnlineCPU is the highest CPU number in /sys/devices/system/cpu/online.
func lastOnlineCPU() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexAny(s, ",-"); i >= 0 {
		s = s[i+1:]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
