package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// scrape reads http://addr/metrics and parses its samples.
func scrape(t *testing.T, addr string) []sample {
	t.Helper()
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		s := sample{name: line[:i], labels: map[string]string{}, value: v}
		if j := strings.IndexByte(line[:i], '{'); j >= 0 {
			s.name = line[:j]
			for _, m := range labelRE.FindAllStringSubmatch(line[j:i], -1) {
				s.labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// find is the value of the sample named name whose labels include want.
func find(ss []sample, name string, want map[string]string) (float64, bool) {
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMetrics: `serve --metrics` serves the containers' figures as their
// files show them, and the daemon's own.
func TestMetrics(t *testing.T) {
	testutil.Short(t)
	addr := freeAddr(t)
	d := testutil.StartDaemon(t, "--metrics", addr)
	mnt := d.Mount("cpuacct,pids,freezer")
	c := filepath.Join(mnt, "c")
	mkdir(t, c)
	t.Cleanup(func() { rmdir(t, c) })
	if err := testutil.WriteFile(t, filepath.Join(c, "pids.max"), "50"); err != nil {
		t.Fatal(err)
	}
	pid := sleeper(t)
	if err := testutil.WriteFile(t, filepath.Join(c, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		t.Fatal(err)
	}
	// A short busy child in c, so that cpuacct.usage is not 0.
	if out, code := sh(t, d, fmt.Sprintf("echo $$ > %s/cgroup.procs && i=0 && while [ $i -lt 20000 ]; do i=$((i+1)); done", c)); code != 0 {
		t.Fatalf("busy shell: exit %d: %s", code, out)
	}

	var ss []sample
	eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	usage0 := testutil.ReadFile(t, filepath.Join(c, "cpuacct.usage"))
	ss = scrape(t, addr)
	usage1 := testutil.ReadFile(t, filepath.Join(c, "cpuacct.usage"))

	var hier string
	for _, s := range ss {
		if s.name == "containerfs_container_tasks" && s.labels["container"] == "/c" {
			hier = s.labels["hierarchy"]
		}
	}
	if hier == "" {
		t.Fatalf("no containerfs_container_tasks for /c")
	}
	for _, sub := range []string{"cpuacct", "pids", "freezer"} {
		if !strings.Contains(hier, sub) {
			t.Errorf("hierarchy label %q lacks %s", hier, sub)
		}
	}
	at := map[string]string{"hierarchy": hier, "container": "/c"}
	expect := func(name string, want float64) {
		t.Helper()
		got, ok := find(ss, name, at)
		if !ok || got != want {
			t.Errorf("%s for /c: got %v (present %v), want %v", name, got, ok, want)
		}
	}
	expect("containerfs_container_tasks", 1)
	expect("containerfs_pids_current", 1)
	expect("containerfs_pids_max", 50)
	expect("containerfs_pids_refused_forks_total", 0)
	at["state"] = "THAWED"
	expect("containerfs_freezer_state", 1)
	at["state"] = "FROZEN"
	expect("containerfs_freezer_state", 0)
	delete(at, "state")

	u0, _ := strconv.ParseFloat(strings.TrimSpace(usage0), 64)
	u1, _ := strconv.ParseFloat(strings.TrimSpace(usage1), 64)
	got, ok := find(ss, "containerfs_cpuacct_usage_seconds_total", at)
	const eps = 1e-12 // ns to seconds in floating point
	if !ok || got <= 0 || got < u0/1e9-eps || got > u1/1e9+eps {
		t.Errorf("containerfs_cpuacct_usage_seconds_total for /c: got %v (present %v), want between cpuacct.usage read before (%v s) and after (%v s)", got, ok, u0/1e9, u1/1e9)
	}
	if _, ok := find(ss, "containerfs_container_tasks", map[string]string{"hierarchy": hier, "container": "/"}); !ok {
		t.Errorf("no containerfs_container_tasks for the root container")
	}
	if v, ok := find(ss, "containerfs_proc_events_total", map[string]string{"event": "fork"}); !ok || v < 1 {
		t.Errorf("containerfs_proc_events_total{event=fork}: got %v (present %v), want at least the test's own forks", v, ok)
	}
	if v, ok := find(ss, "containerfs_fork_to_placement_seconds_count", nil); !ok || v < 1 {
		t.Errorf("containerfs_fork_to_placement_seconds_count: got %v (present %v), want > 0", v, ok)
	}
	if v, ok := find(ss, "containerfs_subsystem_containers", map[string]string{"subsystem": "pids"}); !ok || v != 2 {
		t.Errorf("containerfs_subsystem_containers{subsystem=pids}: got %v (present %v), want 2", v, ok)
	}
	if _, ok := find(ss, "process_cpu_seconds_total", nil); !ok {
		t.Errorf("no process_cpu_seconds_total: the process collector is missing")
	}
}
