package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Watch calls onChange whenever one of paths changes: a file's size,
// modification time or inode (editors replace files by rename), its
// appearance or disappearance, or for a directory the same of any entry in
// it. It polls every interval (a second is plenty for configuration) and
// returns a function that stops it. onChange runs on the watcher's
// goroutine, one call at a time. Polling the modification time needs no
// privilege and survives the directory being removed and made again,
// which inotify watches do not.
func Watch(interval time.Duration, onChange func(), paths ...string) (stop func()) {
	if interval <= 0 {
		interval = time.Second
	}
	done := make(chan struct{})
	var once sync.Once
	last := fingerprint(paths)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if cur := fingerprint(paths); cur != last {
				last = cur
				onChange()
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// fingerprint describes the state of paths in one string.
func fingerprint(paths []string) string {
	var b strings.Builder
	stat := func(p string) {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s:-;", p)
			return
		}
		fmt.Fprintf(&b, "%s:%d:%d:%v;", p, fi.Size(), fi.ModTime().UnixNano(), inode(fi))
	}
	for _, p := range paths {
		stat(p)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			ents, _ := os.ReadDir(p)
			names := make([]string, 0, len(ents))
			for _, e := range ents {
				names = append(names, e.Name())
			}
			slices.Sort(names)
			for _, n := range names {
				stat(filepath.Join(p, n))
			}
		}
	}
	return b.String()
}

// inode is the file's inode number, where the platform tells it.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
