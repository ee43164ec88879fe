package conformance

// The suite: what the hierarchy under test is, and the list of checks Run
// runs against it.

import (
	"os"
	"slices"
	"testing"
)

// Options describe the hierarchy under test.
type Options struct {
	// Subsys are the subsystems bound to the hierarchy ("debug", "cpuset",
	// ...). Each must show control files with its prefix in a child
	// container (the hierarchy is not expected to be mounted with
	// noprefix), except perf_event, which has none; a root may have none
	// (pids). With debug, debug.taskcount is checked against tasks.
	Subsys []string
	// NotRoot says that root is a cgroup below its hierarchy's root: the
	// root-only files are not expected in it, and the check that a new
	// process starts in the root is skipped.
	NotRoot bool
}

type suite struct {
	root string
	opts Options
}

// Run runs the whole suite against the hierarchy mounted at root.
func Run(t *testing.T, root string, opts Options) {
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		t.Fatalf("%s is not a directory", root)
	}
	s := &suite{root: root, opts: opts}
	tests := []struct {
		name string
		f    func(*testing.T, *suite)
	}{
		{"CoreFiles", testCoreFiles},
		{"ReaddirDots", testReaddirDots},
		{"Mkdir", testMkdir},
		{"Rmdir", testRmdir},
		{"ControlFilesAreFixed", testControlFilesAreFixed},
		{"Rename", testRename},
		{"TasksWrite", testTasksWrite},
		{"TasksWriteErrors", testTasksWriteErrors},
		{"WriteZeroMovesWriter", testWriteZero},
		{"Threads", testThreads},
		{"Flags", testFlags},
		{"FlagsNumberSyntax", testFlagsNumberSyntax},
		{"Permissions", testPermissions},
		{"Delegation", testDelegation},
		{"ChunkedReads", testChunkedReads},
		{"FreshReads", testFreshReads},
		{"Debug", testDebug},
		{"Tracking", testTracking},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, s) })
	}
}

func (s *suite) has(subsys string) bool { return slices.Contains(s.opts.Subsys, subsys) }
