package testutil

import (
	"testing"

	"github.com/containerfs/containerfs/internal/core"
)

// File is c's control file name; the test fails if c has none.
func File(t testing.TB, c *core.Container, name string) *core.BoundFile {
	t.Helper()
	e, ok := c.Lookup(name)
	if !ok || e.File == nil {
		t.Fatalf("%s has no file %s", c.Path(), name)
	}
	return e.File
}

// Read is the content of c's control file name, read through r; the test
// fails if the read does.
func Read(t testing.TB, r *core.Registry, c *core.Container, name string) string {
	t.Helper()
	s, err := r.ReadFile(c, File(t, c, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return s
}

// Write writes data to c's control file name through r, as an in-process
// caller (root, no view), and returns the handler's error.
func Write(t testing.TB, r *core.Registry, c *core.Container, name, data string) error {
	t.Helper()
	return r.WriteFile(c, File(t, c, name), core.Caller{}, data)
}
