// Watch: noticing that the policy's files changed, by polling them.

package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerfs/containerfs/internal/worker"
)

// Watch calls onChange whenever one of paths changes: a file's size,
// modification time or inode (editors replace files by rename), its
// appearance or disappearance, or for a directory the same of any entry in
// it. It polls every interval (a second is plenty for configuration) on a
// worker, which the caller stops (a Wake makes it look at once). onChange
// runs on the worker's goroutine, one call at a time. Polling the
// modification time needs no privilege and survives the directory being
// removed and made again, which inotify watches do not.
func Watch(interval time.Duration, onChange func(), paths ...string) *worker.Worker {
	if interval <= 0 {
		interval = time.Second
	}
	last := fingerprint(paths)
	w := worker.New()
	w.Start(func() {
		for w.Wait(interval) {
			if cur := fingerprint(paths); cur != last {
				last = cur
				onChange()
			}
		}
	})
	return w
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
