//go:build lockrank

package lockrank

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
)

// Enabled tells whether this build checks the ladder.
const Enabled = true

type held struct {
	rank Rank
	lock any
}

var (
	mu   sync.Mutex
	byG  = map[uint64][]held{} // goroutine → ranked locks it holds, in order taken
	bufs = sync.Pool{New: func() any { return new([64]byte) }}
)

// goid is the calling goroutine's id, from the first line of its stack
// ("goroutine 42 [running]:"): slow, and only in lockrank builds.
func goid() uint64 {
	b := bufs.Get().(*[64]byte)
	defer bufs.Put(b)
	s := b[:runtime.Stack(b[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	if i := bytes.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(string(s), 10, 64)
	return id
}

func acquire(r Rank, lock any) {
	g := goid()
	mu.Lock()
	defer mu.Unlock()
	hs := byG[g]
	for _, h := range hs {
		if h.rank >= r {
			panic(fmt.Sprintf("lockrank: taking a %s lock (rank %d) while holding a %s lock (rank %d): the ladder is daemon → policy → registry → subsystem → stopper",
				r, r, h.rank, h.rank))
		}
	}
	byG[g] = append(hs, held{r, lock})
}

func release(lock any) {
	g := goid()
	mu.Lock()
	defer mu.Unlock()
	hs := byG[g]
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].lock == lock {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(byG, g)
	} else {
		byG[g] = hs
	}
}
