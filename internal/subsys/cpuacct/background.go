package cpuacct

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/containerfs/containerfs/internal/prio"
	"github.com/containerfs/containerfs/internal/taskstats"
	"github.com/containerfs/containerfs/internal/worker"
)

// startBackground starts the subsystem's own work while a hierarchy has
// it, on one worker: the periodic sampler, and the taskstats listeners,
// which run until the worker is stopped. Stopping it does not wait (the
// root's Destroy holds the locks the loop takes).
func (a *acct) startBackground() *worker.Worker {
	w := worker.New()
	w.Start(func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.listen(w)
		}()
		a.sampleLoop(w)
		wg.Wait()
	})
	return w
}

// stopped tells whether w was told to stop.
func stopped(w *worker.Worker) bool {
	select {
	case <-w.Stopping():
		return true
	default:
		return false
	}
}

// pendingRecord is an exit record that arrived before its task was known
// (the proc connector's fork event for a short-lived child can come after
// the child's exit record) or that belongs to a task that is not tracked.
type pendingRecord struct {
	tgid  int
	begin uint64 // seconds since the epoch
	final sample
	at    int64
}

// recordSample turns an exit record into the task's final sample. The
// record's cpu_run_virtual_total is se.sum_exec_runtime when do_exit sent
// it (the kernel fills it whether or not delay accounting is on); the
// user/system split is the ratio of its tick-sampled ac_utime and ac_stime.
// cpu is the CPU the task exited on, known from the listener that got it.
func recordSample(st *taskstats.Stats, cpu int) sample {
	run := st.RunVirtualNS
	if run == 0 {
		run = st.RunRealNS
	}
	sm := splitRun(run, st.UserUS, st.SysUS)
	sm.cpu = cpu
	return sm
}

// matches tells whether record p can be task tk's: same thread group, and
// a start time that agrees to within the record's one-second resolution
// (a reused TID would have to be reused within seconds, and by the same
// thread group, to fool it).
func (a *acct) matches(tk *task, p pendingRecord) bool {
	if p.tgid != 0 && p.tgid != tk.tgid {
		return false
	}
	if a.btime == 0 || p.begin == 0 {
		return true
	}
	began := a.btime + tk.start/userHZ
	return p.begin+2 >= began && began+2 >= p.begin
}

// finishLocked charges tk with its final sample.
func (a *acct) finishLocked(tk *task, final sample) {
	tk.advanceLocked(final)
	tk.final = true
	tk.fromRecord = true
	a.stats.Matched++
}

// onRecords handles the exit records of one Receive from the listener of
// cpu. A message holds a task's record, followed by its thread group's
// aggregate when it was the last thread of a group that had several.
func (a *acct) onRecords(w *worker.Worker, cpu int, recs []taskstats.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bg != w || a.tasks == nil {
		return
	}
	for i, r := range recs {
		if r.Group {
			continue
		}
		a.onRecordLocked(cpu, r)
		// The death of a thread group: the aggregate when there is one,
		// else the leader's record (a single-threaded process).
		tgid := r.Stats.TGID
		var own uint64
		var dead bool
		if i+1 < len(recs) && recs[i+1].Group && recs[i+1].ID == tgid {
			own, dead = recs[i+1].Stats.RunVirtualNS, true
		} else if r.Stats.PID == tgid {
			own, dead = recordSample(&r.Stats, cpu).run, true
			if tk := a.byTID[tgid]; tk != nil && tk.tgid == tgid {
				own = max(own, tk.run) // a zombie's /proc may have told more
			}
		}
		if dead && a.deathLocked(tgid, r.Stats.PPID, own) {
			if tk := a.byTID[tgid]; tk != nil && tk.tgid == tgid {
				tk.linked = r.Stats.PPID
			}
		}
	}
}

// onRecordLocked charges a task's exit record, or keeps it for a task not
// known yet.
func (a *acct) onRecordLocked(cpu int, r taskstats.Record) {
	p := pendingRecord{
		tgid:  r.Stats.TGID,
		begin: r.Stats.BeginTime,
		final: recordSample(&r.Stats, cpu),
		at:    a.nowNS(),
	}
	a.stats.Records++
	if tk := a.byTID[r.ID]; tk != nil && !tk.final && a.matches(tk, p) {
		a.finishLocked(tk, p.final)
		if tk.exited {
			delete(a.byTID, tk.tid)
		}
		return
	}
	// Keep it for a fork event still on its way only if it can be one of
	// ours: a thread of a tracked thread group, or a child of one.
	if a.groups[r.Stats.TGID] == 0 && a.groups[r.Stats.PPID] == 0 {
		return
	}
	if len(a.records) >= maxPending {
		clear(a.records) // an exit storm: they would have expired anyway
	}
	a.records[r.ID] = p
}

// expireLocked forgets exited tasks whose record never came (their last
// sample stands) and records nobody claimed.
func (a *acct) expireLocked(now int64) {
	for tid, tk := range a.byTID {
		if tk.exited && now-tk.exitAt > int64(exitWait) {
			delete(a.byTID, tid)
			if !tk.final {
				a.stats.TimedOut++
				// Its parent will find its time in cutime: what was
				// charged of it is expected there. One never sampled
				// was charged nothing, and the parent's difference is
				// all of it.
				if tk.tid == tk.tgid && tk.run > 0 && tk.ppid != 0 {
					a.deathLocked(tk.tgid, tk.ppid, tk.run)
				}
			}
		}
	}
	for tid, p := range a.records {
		if now-p.at > int64(exitWait) {
			delete(a.records, tid)
		}
	}
}

// listen registers a taskstats listener per possible CPU, so that each
// exit record also tells the CPU the task exited on, and hands the records
// to onRecord until w stops. If per-CPU listeners cannot be had, one
// listener for every CPU will do (the exit is then charged to the CPU the
// task was last sampled on).
func (a *acct) listen(w *worker.Worker) {
	a.mu.Lock()
	ncpu := a.ncpu
	a.mu.Unlock()
	type lc struct {
		l   *taskstats.Listener
		cpu int
	}
	var ls []lc
	fail := func(err error) {
		a.mu.Lock()
		a.stats.ListenErrors++
		a.mu.Unlock()
		a.Logf.Printf("cpuacct: taskstats: %v; exited tasks keep the figure of their last sample (up to %v old)", err, defaultPeriod)
	}
	buf := max(1<<20, taskstats.DefaultRcvBuf/ncpu)
	for cpu := range ncpu {
		l, err := taskstats.Listen(strconv.Itoa(cpu), buf)
		if err != nil {
			for _, x := range ls {
				x.l.Close()
			}
			ls = nil
			all := "0-" + strconv.Itoa(ncpu-1)
			if l, err2 := taskstats.Listen(all, 0); err2 == nil {
				ls = []lc{{l, -1}}
			} else {
				fail(err2)
			}
			break
		}
		ls = append(ls, lc{l, cpu})
	}
	var wg sync.WaitGroup
	for _, x := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				recs, err := x.l.Receive()
				if errors.Is(err, os.ErrClosed) {
					return
				}
				if errors.Is(err, taskstats.ErrLost) {
					a.mu.Lock()
					a.stats.Lost++
					a.mu.Unlock()
				} else if err != nil && stopped(w) {
					return
				} else if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
				if len(recs) > 0 {
					a.onRecords(w, x.cpu, recs)
				}
			}
		}()
	}
	<-w.Stopping()
	for _, x := range ls {
		x.l.Close()
	}
	wg.Wait()
}

// sampleLoop samples every tracked task periodically, so that the per-CPU
// split follows the tasks and an exit whose record is lost loses at most
// one period. A round costs about 5 µs per task that has not run and 10 µs
// per task that has; the period stretches so that sampling takes no more
// than 2% of a CPU.
func (a *acct) sampleLoop(w *worker.Worker) {
	prio.Background() // bulk reads of schedstat: not real-time
	period := a.period
	if period == 0 {
		period = defaultPeriod
	}
	for wait := period; w.Wait(wait); {
		start := time.Now()
		a.sampleAll(w)
		wait = max(period, 50*time.Since(start))
	}
}

// sampleAll is one round: the tasks are listed under mu, read without it
// (thousands of tasks take milliseconds, and reads of control files wait
// for mu), and charged under mu again. A sample is dropped if its task
// moved meanwhile: the move charged the old container with a fresher one.
func (a *acct) sampleAll(w *worker.Worker) {
	type job struct {
		tk     *task
		gen    uint64
		src    source
		opened bool
		last   uint64
		based  bool
		sm     sample
		ok     bool
	}
	a.mu.Lock()
	if a.bg != w || a.tasks == nil {
		a.mu.Unlock()
		return
	}
	jobs := make([]job, 0, len(a.tasks))
	for _, tk := range a.tasks {
		if tk.final || tk.noSource {
			continue
		}
		jobs = append(jobs, job{tk: tk, gen: tk.gen, src: tk.src, last: tk.run, based: tk.based})
	}
	a.mu.Unlock()

	for i := range jobs {
		j := &jobs[i]
		if j.src == nil {
			src, err := a.openTask(j.tk.tid, j.tk.start)
			if err != nil {
				continue
			}
			j.src, j.opened = src, true
		}
		last := j.last
		if !j.based {
			last = ^uint64(0)
		}
		j.sm, j.ok = sampleOf(j.src, last)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.Samples++
	for i := range jobs {
		j := &jobs[i]
		tk := j.tk
		if a.tasks[tk.ct] != tk {
			if j.opened {
				j.src.close()
			}
			continue
		}
		if j.opened {
			if tk.src == nil {
				tk.src = j.src
			} else {
				j.src.close()
			}
		}
		if j.ok && tk.gen == j.gen && !tk.final {
			tk.advanceLocked(j.sm)
			a.observeLocked(tk, j.sm)
		}
	}
	now := a.nowNS()
	a.expireLocked(now)
	a.reconcileLocked(now)
}

func sampleOf(src source, last uint64) (sample, bool) {
	sm, err := src.read(last)
	return sm, err == nil
}
