// Latency histograms: fork-to-placement and exec-to-rules, cheap enough to
// record for every event, shown by `containerfs stats` and the metrics.

package daemon

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// latency is a histogram of durations in log-spaced buckets (8 per octave
// from 1 µs), cheap enough to record every fork event.
type latency struct {
	mu     sync.Mutex
	counts [256]uint64 // guarded by mu
	n      uint64      // guarded by mu
	sum    time.Duration
	max    time.Duration
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log2(us)*8)+1, 255)
}

// upper is the upper bound of bucket b.
func upper(b int) time.Duration {
	if b == 0 {
		return time.Microsecond
	}
	return time.Duration(math.Exp2(float64(b)/8) * float64(time.Microsecond))
}

func (l *latency) add(d time.Duration) {
	l.mu.Lock()
	l.counts[bucketOf(d)]++
	l.n++
	l.sum += d
	l.max = max(l.max, d)
	l.mu.Unlock()
}

// quantile is the upper bound of the bucket holding quantile q (within 9%).
func (l *latency) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(l.n)))
	var seen uint64
	for b, c := range l.counts {
		if seen += c; seen >= rank {
			return upper(b)
		}
	}
	return l.max
}

func (l *latency) String() string {
	l.mu.Lock()
	n, mx := l.n, l.max
	l.mu.Unlock()
	return fmt.Sprintf("n=%d p50=%v p99=%v p999=%v max=%v", n, l.quantile(.5), l.quantile(.99), l.quantile(.999), mx)
}
