package conformance

// Control files: the flag files and their number syntax, permissions and
// delegation, and how reads of a file behave (in chunks, always fresh).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/containerfs/containerfs/internal/testutil"
	"golang.org/x/sys/unix"
)

func testFlags(t *testing.T, s *suite) {
	e := s.newEnv(t)
	flags := []string{"notify_on_release", "cgroup.clone_children"}
	parent := e.mkdir(s.root, name("flags"))
	for _, f := range flags {
		// A child copies its parent's flags at mkdir: here the root's.
		if got, want := testutil.ReadFile(t, filepath.Join(parent, f)), testutil.ReadFile(t, filepath.Join(s.root, f)); got != want {
			t.Errorf("%s of a new child of the root: got %q, want the root's %q", f, got, want)
		}
	}
	for _, f := range flags {
		path := filepath.Join(parent, f)
		for _, tc := range []struct{ write, want string }{
			{"1", "1\n"}, {"0\n", "0\n"}, {"5", "1\n"}, {"0x10", "1\n"},
		} {
			if err := testutil.WriteFile(t, path, tc.write); err != nil {
				t.Errorf("write %q to %s: %v", tc.write, f, errnoName(err))
				continue
			}
			if got := testutil.ReadFile(t, path); got != tc.want {
				t.Errorf("%s after writing %q: got %q, want %q", f, tc.write, got, tc.want)
			}
		}
		wantErrno(t, "write garbage to "+f, testutil.WriteFile(t, path, "yes\n"), unix.EINVAL)
		if got := testutil.ReadFile(t, path); got != "1\n" {
			t.Errorf("%s after a rejected write: got %q, want %q", f, got, "1\n")
		}
	}
	// Set to 1 in parent: a new child inherits 1; set back to 0: the next
	// child inherits 0, and the first keeps its own.
	set := e.mkdir(parent, "set")
	for _, f := range flags {
		testutil.MustWrite(t, filepath.Join(parent, f), "0")
	}
	unset := e.mkdir(parent, "unset")
	for _, f := range flags {
		if got := testutil.ReadFile(t, filepath.Join(set, f)); got != "1\n" {
			t.Errorf("%s of a child made while the parent had 1: got %q, want %q", f, got, "1\n")
		}
		if got := testutil.ReadFile(t, filepath.Join(unset, f)); got != "0\n" {
			t.Errorf("%s of a child made while the parent had 0: got %q, want %q", f, got, "0\n")
		}
	}
}

// The flag files are write_u64 files: the kernel parses them with
// kstrtoull(buf, 0) and does not strip the buffer, so a leading '+' is
// accepted and whitespace other than one final newline is not.
func testFlagsNumberSyntax(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("u64"))
	path := filepath.Join(dir, "notify_on_release")
	for _, tc := range []struct {
		data string
		want syscall.Errno // 0: accepted as 1
	}{
		{"+5", 0},
		{"010\n", 0},
		{" 1", unix.EINVAL},
		{"1 ", unix.EINVAL},
		{"1\n\n", unix.EINVAL},
	} {
		testutil.MustWrite(t, path, "0")
		err := testutil.WriteFile(t, path, tc.data)
		if tc.want != 0 {
			wantErrno(t, fmt.Sprintf("write %q to notify_on_release", tc.data), err, tc.want)
			continue
		}
		if err != nil {
			t.Errorf("write %q to notify_on_release: got %v, want success", tc.data, errnoName(err))
		} else if got := testutil.ReadFile(t, path); got != "1\n" {
			t.Errorf("notify_on_release after writing %q: got %q, want %q", tc.data, got, "1\n")
		}
	}
}

// cgroup v1: a writer that is not root may move only tasks whose real or
// saved uid is its euid, whatever the file's mode lets it open.
func testPermissions(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("perm"))
	tasks := filepath.Join(dir, "tasks")
	if err := testutil.Do(t, "chmod "+tasks, func() error { return unix.Chmod(tasks, 0o666) }); err != nil {
		t.Fatalf("chmod 0666 %s: %v", tasks, errnoName(err))
	}
	st, err := stat(t, tasks)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o666 {
		t.Errorf("%s after chmod 0666: mode %#o", tasks, st.Mode&0o7777)
	}

	rootOwned := e.sleeper(nil)
	e.moveTo(filepath.Join(s.root, "tasks"), rootOwned.pid)
	if got := runHelper(t, nobody, "write", tasks, strconv.Itoa(rootOwned.pid)); got != fmt.Sprintf("write %d", unix.EACCES) {
		t.Errorf("uid 65534 writing root's task %d to a 0666 tasks file: got %q, want %q", rootOwned.pid, got, fmt.Sprintf("write %d (EACCES)", unix.EACCES))
	}
	if ids := readIDs(t, tasks); slices.Contains(ids, rootOwned.pid) {
		t.Errorf("root's task %d moved by uid 65534", rootOwned.pid)
	}

	own := e.sleeper(nobody)
	e.moveTo(filepath.Join(s.root, "tasks"), own.pid)
	if got := runHelper(t, nobody, "write", tasks, strconv.Itoa(own.pid)); got != "ok" {
		t.Errorf("uid 65534 writing its own task %d: got %q, want ok", own.pid, got)
	}
	if ids := readIDs(t, tasks); !slices.Contains(ids, own.pid) {
		t.Errorf("%s: got %v, want uid 65534's task %d in it", tasks, ids, own.pid)
	}

	// Without the chmod the file's mode refuses the open.
	closed := e.mkdir(s.root, name("perm-closed"))
	if got := runHelper(t, nobody, "write", filepath.Join(closed, "tasks"), strconv.Itoa(own.pid)); got != fmt.Sprintf("open %d", unix.EACCES) {
		t.Errorf("uid 65534 opening a 0644 root-owned tasks file: got %q, want %q", got, fmt.Sprintf("open %d (EACCES)", unix.EACCES))
	}
}

// chmod and chown of a container directory are how a subtree is delegated.
func testDelegation(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("delegated"))
	err := testutil.Do(t, "chown "+dir, func() error { return unix.Lchown(dir, int(nobody.Uid), int(nobody.Gid)) })
	if err != nil {
		t.Fatalf("chown %s: %v", dir, errnoName(err))
	}
	if err := testutil.Do(t, "chmod "+dir, func() error { return unix.Chmod(dir, 0o750) }); err != nil {
		t.Fatalf("chmod %s: %v", dir, errnoName(err))
	}
	st, err := stat(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != nobody.Uid || st.Gid != nobody.Gid || st.Mode != unix.S_IFDIR|0o750 {
		t.Errorf("%s after chown 65534:65534 and chmod 0750: uid %d gid %d mode %#o", dir, st.Uid, st.Gid, st.Mode)
	}
	// The files inside keep their owner: a delegate gets the files it is
	// given (tasks, cgroup.procs), not its own container's limits.
	for _, f := range []string{"tasks", "notify_on_release", "cgroup.clone_children"} {
		path := filepath.Join(dir, f)
		if st, err := stat(t, path); err != nil || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s after chown of its directory to 65534:65534: owner %d:%d (err %v), want 0:0 as before", path, st.Uid, st.Gid, err)
		}
	}
	tasks := filepath.Join(dir, "tasks")
	if err := testutil.Do(t, "chown "+tasks, func() error { return unix.Lchown(tasks, int(nobody.Uid), -1) }); err != nil {
		t.Fatalf("chown %s: %v", tasks, errnoName(err))
	}
	if st, err := stat(t, tasks); err != nil || st.Uid != nobody.Uid || st.Gid != 0 {
		t.Errorf("%s after chown 65534: uid %d gid %d (err %v), want 65534 0", tasks, st.Uid, st.Gid, err)
	}

	if got := runHelper(t, nobody, "write", filepath.Join(dir, "notify_on_release"), "1"); got != fmt.Sprintf("open %d", unix.EACCES) {
		t.Errorf("uid 65534 writing notify_on_release of the directory it was given: got %q, want %q", got, fmt.Sprintf("open %d (EACCES)", unix.EACCES))
	}

	// The delegate makes and removes its own sub-containers, which it owns.
	sub := filepath.Join(dir, "sub")
	if got := runHelper(t, nobody, "mkdir", sub); got != "ok" {
		t.Fatalf("uid 65534 mkdir in a container it owns: got %q, want ok", got)
	}
	e.dirs = append(e.dirs, sub)
	e.prepare(sub)
	for _, path := range []string{sub, filepath.Join(sub, "tasks")} {
		if st, err := stat(t, path); err != nil || st.Uid != nobody.Uid || st.Gid != nobody.Gid {
			t.Errorf("%s made by uid 65534: owner %d:%d (err %v), want 65534:65534", path, st.Uid, st.Gid, err)
		}
	}
	own := e.sleeper(nobody)
	e.moveTo(filepath.Join(s.root, "tasks"), own.pid)
	if got := runHelper(t, nobody, "write", filepath.Join(sub, "tasks"), strconv.Itoa(own.pid)); got != "ok" {
		t.Errorf("uid 65534 moving its own task into its sub-container: got %q, want ok", got)
	}
	e.moveTo(filepath.Join(s.root, "tasks"), own.pid)
	if got := runHelper(t, nobody, "rmdir", sub); got != "ok" {
		t.Errorf("uid 65534 rmdir of its sub-container: got %q, want ok", got)
	}
	// Not in a container it does not own.
	closed := e.mkdir(s.root, name("not-delegated"))
	if got := runHelper(t, nobody, "mkdir", filepath.Join(closed, "sub")); got != fmt.Sprintf("mkdir %d", unix.EACCES) {
		e.dirs = append(e.dirs, filepath.Join(closed, "sub"))
		t.Errorf("uid 65534 mkdir in root's container: got %q, want %q", got, fmt.Sprintf("mkdir %d (EACCES)", unix.EACCES))
	}
}

// readChunks reads path through one open file, first n bytes, then the rest
// in reads of size chunk.
func readChunks(t *testing.T, path string, first, chunk int) string {
	t.Helper()
	var b []byte
	err := testutil.Do(t, "read "+path, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, max(first, chunk))
		for size := first; ; size = chunk {
			n, err := f.Read(buf[:size])
			b = append(b, buf[:n]...)
			if errors.Is(err, io.EOF) || (err == nil && n == 0) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testChunkedReads(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("chunks"))
	p, q := e.sleeper(nil), e.sleeper(nil)
	e.moveTo(filepath.Join(dir, "tasks"), p.pid)
	e.moveTo(filepath.Join(dir, "tasks"), q.pid)
	testutil.MustWrite(t, filepath.Join(dir, "notify_on_release"), "1")
	for _, f := range []string{"tasks", "cgroup.procs", "notify_on_release"} {
		path := filepath.Join(dir, f)
		whole := testutil.ReadFile(t, path)
		if got := readChunks(t, path, 3, 1<<16); got != whole {
			t.Errorf("%s read as 3 bytes then the rest: got %q, want %q as one read gives", f, got, whole)
		}
		if got := readChunks(t, path, 1, 1); got != whole {
			t.Errorf("%s read a byte at a time: got %q, want %q", f, got, whole)
		}
	}
	// The root's files are long and change as the machine runs: read in
	// small chunks, they must still be whole lines of unique IDs.
	for _, f := range []string{"tasks", "cgroup.procs"} {
		got := readChunks(t, filepath.Join(s.root, f), 3, 7)
		ids, err := parseIDs(got)
		if err != nil {
			t.Errorf("root's %s read in 7-byte chunks: %v", f, err)
			continue
		}
		sorted := slices.Clone(ids)
		slices.Sort(sorted)
		if len(slices.Compact(sorted)) != len(ids) {
			t.Errorf("root's %s read in 7-byte chunks has duplicates: %v", f, ids)
		}
	}
}

func testFreshReads(t *testing.T, s *suite) {
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("fresh"))
	tasks := filepath.Join(dir, "tasks")
	p := e.sleeper(nil)

	// One open file, read before and after a move made through another.
	var f *os.File
	if err := testutil.Do(t, "open "+tasks, func() error {
		var err error
		f, err = os.Open(tasks)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer testutil.Do(t, "close "+tasks, f.Close)
	pread := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		var n int
		if err := testutil.Do(t, "pread "+tasks, func() error {
			var err error
			n, err = f.ReadAt(buf, 0)
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := pread(); got != "" {
		t.Fatalf("%s of a new container: got %q, want it empty", tasks, got)
	}
	e.moveTo(tasks, p.pid)
	want := strconv.Itoa(p.pid) + "\n"
	if got := testutil.ReadFile(t, tasks); got != want {
		t.Errorf("%s opened after the move: got %q, want %q", tasks, got, want)
	}
	// The kernel keeps a tasks file's PID list for up to a second after
	// a read (CGROUP_PIDLIST_DESTROY_DELAY), so allow for that.
	start := time.Now()
	if err := eventually(3*time.Second, func() error {
		if got := pread(); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	}); err != nil {
		t.Errorf("%s read again at offset 0 through the file opened before the move: %v", tasks, err)
	} else {
		t.Logf("the open tasks file showed the move after %v", time.Since(start).Round(time.Millisecond))
	}

	// A flag file is formatted afresh at every read from offset 0.
	nor := filepath.Join(dir, "notify_on_release")
	var g *os.File
	if err := testutil.Do(t, "open "+nor, func() error {
		var err error
		g, err = os.Open(nor)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer testutil.Do(t, "close "+nor, g.Close)
	for _, v := range []string{"1", "0", "1"} {
		testutil.MustWrite(t, nor, v)
		buf := make([]byte, 16)
		var n int
		if err := testutil.Do(t, "pread "+nor, func() error {
			var err error
			n, err = g.ReadAt(buf, 0)
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != v+"\n" {
			t.Errorf("%s read again through one open file after writing %s: got %q, want %q", nor, v, got, v+"\n")
		}
	}
}

func testDebug(t *testing.T, s *suite) {
	if !s.has("debug") {
		t.Skip("no debug subsystem on this hierarchy")
	}
	e := s.newEnv(t)
	dir := e.mkdir(s.root, name("debug"))
	count := filepath.Join(dir, "debug.taskcount")
	if got := testutil.ReadFile(t, count); got != "0\n" {
		t.Errorf("debug.taskcount of a new container: got %q, want %q", got, "0\n")
	}
	p, tids := e.startThreads(2)
	e.moveTo(filepath.Join(dir, "cgroup.procs"), p.pid)
	// The helper's runtime may start a thread between two reads: compare
	// until they agree.
	if err := eventually(2*time.Second, func() error {
		n := len(readIDs(t, filepath.Join(dir, "tasks")))
		if n < len(tids) {
			return fmt.Errorf("%s/tasks lists %d threads, want at least %d", dir, n, len(tids))
		}
		if got := testutil.ReadFile(t, count); got != fmt.Sprintf("%d\n", n) {
			return fmt.Errorf("debug.taskcount: got %q, want %q (the lines of tasks)", got, fmt.Sprintf("%d\n", n))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
