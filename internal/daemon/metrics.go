// Metrics in the Prometheus text format: the daemon's own counters and each
// container's figures, read from its control files at every scrape.

package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containerfs/containerfs/internal/core"
	"github.com/containerfs/containerfs/internal/prio"
	"github.com/containerfs/containerfs/internal/stopper"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics in the Prometheus text format, served by `containerfs serve
// --metrics ADDR` at /metrics. Per-container figures are read from the
// containers' own files at each scrape, so they are exactly what a reader
// of those files sees; nothing is sampled in between.

var containerLabels = []string{"hierarchy", "container"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("containerfs_"+name, help, labels, nil)
}

// fileMetric is one figure taken from a control file: the whole content,
// or the value on the line that starts with key.
type fileMetric struct {
	file  string
	key   string  // "" for a one-value file
	scale float64 // multiplies the value (ns to seconds); 0 is 1
	typ   prometheus.ValueType
	desc  *prometheus.Desc
}

var fileMetrics = []fileMetric{
	{file: "cpuacct.usage", scale: 1e-9, typ: prometheus.CounterValue,
		desc: desc("cpuacct_usage_seconds_total", "CPU time used by the container's tasks and its descendants' (cpuacct.usage).", containerLabels...)},
	{file: "cpu.stat", key: "nr_periods", typ: prometheus.CounterValue,
		desc: desc("cpu_periods_total", "Enforcement periods in which the container used CPU or was throttled (cpu.stat nr_periods).", containerLabels...)},
	{file: "cpu.stat", key: "nr_throttled", typ: prometheus.CounterValue,
		desc: desc("cpu_throttled_periods_total", "Periods in which the container was throttled (cpu.stat nr_throttled).", containerLabels...)},
	{file: "cpu.stat", key: "throttled_time", scale: 1e-9, typ: prometheus.CounterValue,
		desc: desc("cpu_throttled_seconds_total", "Time the container was throttled (cpu.stat throttled_time).", containerLabels...)},
	{file: "memory.usage_in_bytes", typ: prometheus.GaugeValue,
		desc: desc("memory_usage_bytes", "Memory counted to the container (memory.usage_in_bytes).", containerLabels...)},
	{file: "memory.max_usage_in_bytes", typ: prometheus.GaugeValue,
		desc: desc("memory_max_usage_bytes", "Peak of memory.usage_in_bytes since the last reset.", containerLabels...)},
	{file: "memory.limit_in_bytes", typ: prometheus.GaugeValue,
		desc: desc("memory_limit_bytes", "The container's memory limit (memory.limit_in_bytes).", containerLabels...)},
	{file: "memory.failcnt", typ: prometheus.CounterValue,
		desc: desc("memory_failcnt_total", "Times the container hit its memory limit (memory.failcnt).", containerLabels...)},
	{file: "memory.oom_control", key: "oom_kill", typ: prometheus.CounterValue,
		desc: desc("memory_oom_kills_total", "Tasks killed for going over the memory limit (memory.oom_control oom_kill).", containerLabels...)},
	{file: "memory.oom_control", key: "under_oom", typ: prometheus.GaugeValue,
		desc: desc("memory_under_oom", "1 while the container is paused over its limit with the OOM killer disabled.", containerLabels...)},
	{file: "pids.current", typ: prometheus.GaugeValue,
		desc: desc("pids_current", "Tasks in the container and its descendants (pids.current).", containerLabels...)},
	{file: "pids.max", typ: prometheus.GaugeValue,
		desc: desc("pids_max", "The container's pids.max; absent when it is \"max\".", containerLabels...)},
	{file: "pids.events", key: "max", typ: prometheus.CounterValue,
		desc: desc("pids_refused_forks_total", "Forks refused because of pids.max (pids.events max).", containerLabels...)},
}

var (
	descTasks    = desc("container_tasks", "Tasks (threads) directly in the container.", containerLabels...)
	descFrozen   = desc("freezer_state", "1 for the container's freezer.state (THAWED, FREEZING or FROZEN).", append(containerLabels, "state")...)
	descSubsys   = desc("subsystem_containers", "Containers of the hierarchy a subsystem is bound to (/proc/cgroups num_cgroups).", "subsystem")
	descEvents   = desc("proc_events_total", "Events of the kernel's proc connector applied to the model.", "event")
	descLost     = desc("proc_event_losses_total", "Times events were lost (the model was then resynchronised from /proc).")
	descResyncs  = desc("resyncs_total", "Resynchronisations of the model from /proc after a loss.")
	descForkLat  = desc("fork_to_placement_seconds", "Time from the kernel's fork to the child's placement in the model.")
	descExecLat  = desc("exec_to_rules_applied_seconds", "Time from the kernel's exec to the rules applied to the process.")
	descStopper  = desc("stopper_operations_total", "What the shared ptrace Stopper did (cpu throttling, memory pauses, the freezer).", "op")
	latencyUpper = []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}
)

// collector gathers the daemon's metrics at each scrape.
type collector struct{ d *Daemon }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range fileMetrics {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{descTasks, descFrozen, descSubsys, descEvents, descLost, descResyncs, descForkLat, descExecLat, descStopper} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	for _, h := range d.Reg.Hierarchies() {
		label := hierarchyLabel(h)
		walkContainers(h.Root(), func(ct *core.Container) {
			c.collectContainer(ch, label, ct)
		})
	}
	for _, s := range d.Reg.Stats() {
		ch <- prometheus.MustNewConstMetric(descSubsys, prometheus.GaugeValue, float64(s.Containers), s.Subsys)
	}
	if t := d.track; t != nil {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(t.forks.Load()), "fork")
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(t.exits.Load()), "exit")
		ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(t.losses.Load()))
		ch <- prometheus.MustNewConstMetric(descResyncs, prometheus.CounterValue, float64(max(t.resyncs.Load()-1, 0)))
		ch <- t.forkToPlaced.histogram(descForkLat)
		ch <- t.execToRules.histogram(descExecLat)
	}
	if sp := stopper.Started(); sp != nil {
		st := sp.Stats()
		for op, v := range map[string]int64{"seize": st.Seized, "detach": st.Detached, "stop": st.Stops,
			"exit": st.Exits, "reinject": st.Injected, "failure": st.Failures} {
			ch <- prometheus.MustNewConstMetric(descStopper, prometheus.CounterValue, float64(v), op)
		}
	}
}

// walkContainers calls f for c and every descendant, without holding the
// registry lock across calls.
func walkContainers(c *core.Container, f func(*core.Container)) {
	f(c)
	for _, e := range c.List() {
		if e.Child != nil {
			walkContainers(e.Child, f)
		}
	}
}

func (c collector) collectContainer(ch chan<- prometheus.Metric, hierarchy string, ct *core.Container) {
	if ct.Removed() {
		return
	}
	path := ct.Path()
	ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(ct.NumTasks()), hierarchy, path)
	contents := map[string]string{}
	read := func(name string) (string, bool) {
		if s, ok := contents[name]; ok {
			return s, true
		}
		e, ok := ct.Lookup(name)
		if !ok || e.File == nil {
			return "", false
		}
		s, err := c.d.Reg.ReadFile(ct, e.File)
		if err != nil {
			return "", false
		}
		contents[name] = s
		return s, true
	}
	for _, m := range fileMetrics {
		s, ok := read(m.file)
		if !ok {
			continue
		}
		v, ok := fileValue(s, m.key)
		if !ok {
			continue
		}
		if m.scale != 0 {
			v *= m.scale
		}
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, hierarchy, path)
	}
	if s, ok := read("freezer.state"); ok {
		cur := strings.TrimSpace(s)
		for _, st := range []string{"THAWED", "FREEZING", "FROZEN"} {
			v := 0.0
			if st == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descFrozen, prometheus.GaugeValue, v, hierarchy, path, st)
		}
	}
}

// fileValue is the number in s (key "") or on s's line "key value". "max"
// and anything else that is not a number is no value.
func fileValue(s, key string) (float64, bool) {
	if key == "" {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		return v, err == nil
	}
	for line := range strings.Lines(s) {
		k, val, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// histogram is l as a Prometheus histogram with fixed bucket bounds. A
// sample counts below a bound when its log-spaced bucket lies wholly below
// it, so counts are exact to the bucket width (9%).
func (l *latency) histogram(d *prometheus.Desc) prometheus.Metric {
	l.mu.Lock()
	defer l.mu.Unlock()
	buckets := make(map[float64]uint64, len(latencyUpper))
	var seen uint64
	b := 0
	for _, bound := range latencyUpper {
		for ; b < len(l.counts) && upper(b).Seconds() <= bound*1.0000001; b++ {
			seen += l.counts[b]
		}
		buckets[bound] = seen
	}
	return prometheus.MustNewConstHistogram(d, l.n, l.sum.Seconds(), buckets)
}

// ServeMetrics serves /metrics on addr (host:port) until the daemon
// closes. It returns once it listens.
func (d *Daemon) ServeMetrics(addr string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: logger{d.cfg.Logf}})
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A scrape reads every container's files: not real-time. The
		// connection's goroutine keeps this thread until it ends.
		prio.Background()
		h.ServeHTTP(w, r)
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.mu.Lock()
	d.metrics = srv
	d.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.cfg.Logf.Printf("metrics: %v", err)
		}
	}()
	return nil
}

// logger adapts Logf to promhttp's logger.
type logger struct{ logf core.Logf }

func (l logger) Println(v ...any) {
	l.logf.Printf("metrics: %s", strings.TrimSpace(fmt.Sprintln(v...)))
}
