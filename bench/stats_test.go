package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// stat summarizes the latencies of one sub-benchmark.
type stat struct {
	n              int
	mean, p50, p99 time.Duration
}

func summarize(lat []time.Duration) stat {
	if len(lat) == 0 {
		return stat{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return stat{n: len(s), mean: sum / time.Duration(len(s)), p50: quantile(s, 0.50), p99: quantile(s, 0.99)}
}

// quantile of sorted s, nearest rank.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// results collects the sub-benchmarks of one operation, by system, to log
// their ratios once all have run.
type results struct {
	op    string
	order []string
	stats map[string]stat
	cpus  map[string]cpuStat
}

// cpuStat is CPU time per operation, and the server's share of a CPU when
// idle.
type cpuStat struct {
	srv, cli time.Duration
	idle     float64
}

// cpu keeps system's CPU figures.
func (r *results) cpu(system string, srv, cli time.Duration, idle float64) {
	if r.cpus == nil {
		r.cpus = map[string]cpuStat{}
	}
	r.cpus[system] = cpuStat{srv: srv, cli: cli, idle: idle}
}

func newResults(op string) *results { return &results{op: op, stats: map[string]stat{}} }

// add reports p50 and p99 of one run of a sub-benchmark and keeps them (the
// last run, the one go test reports, wins).
func (r *results) add(b *testing.B, system string, lat []time.Duration) {
	s := r.keep(system, lat)
	b.ReportMetric(float64(s.p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(s.p99.Nanoseconds()), "p99-ns")
}

// keep summarizes lat as system's figures.
func (r *results) keep(system string, lat []time.Duration) stat {
	s := summarize(lat)
	if _, ok := r.stats[system]; !ok {
		r.order = append(r.order, system)
	}
	r.stats[system] = s
	return s
}

// String is one line per system, then containerfs's ratios to the others.
func (r *results) String() string {
	var sb strings.Builder
	for _, name := range r.order {
		s := r.stats[name]
		fmt.Fprintf(&sb, "%s %-11s mean %9v  p50 %9v  p99 %9v  (%d ops)", r.op, name, s.mean, s.p50, s.p99, s.n)
		if c, ok := r.cpus[name]; ok {
			fmt.Fprintf(&sb, "  cpu/op: server %v client %v", c.srv.Round(100*time.Nanosecond), c.cli.Round(100*time.Nanosecond))
			if name != kernName {
				fmt.Fprintf(&sb, " (server idle %.1f%% of a CPU)", 100*c.idle)
			}
		}
		sb.WriteByte('\n')
	}
	c, ok := r.stats[cfsName]
	if !ok {
		return sb.String()
	}
	for _, ref := range []string{floorName, kernName} {
		s, ok := r.stats[ref]
		if !ok || s.mean == 0 || s.p50 == 0 {
			continue
		}
		fmt.Fprintf(&sb, "%s containerfs/%s: mean %.2fx  p50 %.2fx  p99 %.2fx", r.op, ref,
			ratio(c.mean, s.mean), ratio(c.p50, s.p50), ratio(c.p99, s.p99))
		cc, ok1 := r.cpus[cfsName]
		rc, ok2 := r.cpus[ref]
		if ok1 && ok2 {
			fmt.Fprintf(&sb, "  cpu/op (server+client) %.2fx", ratio(cc.srv+cc.cli, rc.srv+rc.cli))
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func TestQuantile(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := quantile(s, tc.q); got != tc.want {
			t.Errorf("quantile(1..100, %v): got %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := summarize([]time.Duration{3, 1, 2}); got.mean != 2 || got.p50 != 2 || got.n != 3 {
		t.Errorf("summarize(3,1,2): got %+v, want mean 2, p50 2, n 3", got)
	}
}
