package testutil

import (
	"errors"
	"syscall"
	"testing"

	"github.com/containerfs/containerfs/internal/core"
)

// counter counts the tasks its containers gained by fork.
type counter struct{}

func (counter) Name() string                           { return "counter" }
func (counter) Create(c *core.Container) (any, error)  { return new(uint64), nil }
func (counter) Destroy(*core.Container)                {}
func (s counter) Fork(c *core.Container, _ *core.Task) { *core.StateOf[*uint64](c, s)++ }
func (s counter) Files() []core.File {
	return []core.File{{Name: "forks",
		ReadU64:  func(c *core.Container) uint64 { return *core.StateOf[*uint64](c, s) },
		WriteU64: func(c *core.Container, _ core.Caller, v uint64) error { *core.StateOf[*uint64](c, s) = v; return nil },
	}}
}

func TestModel(t *testing.T) {
	m := NewModel(t, counter{})
	h := m.Mount("counter")
	c := m.Mkdir(h.Root(), "c")
	m.Task(10, 10, 100)
	m.Attach(c, 10)
	m.Fork(10, 11, 11, 101)
	m.Fork(10, 12, 10, 102) // a thread
	if got := m.Read(c, "counter.forks"); got != "2\n" {
		t.Errorf("counter.forks = %q, want 2", got)
	}
	m.MustWrite(c, "counter.forks", "0x10\n")
	if got := m.Read(c, "counter.forks"); got != "16\n" {
		t.Errorf("counter.forks = %q after writing 0x10, want 16", got)
	}
	if err := m.Write(c, "counter.forks", "1 "); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write %q: %v, want EINVAL", "1 ", err)
	}
	m.Exit(11)
	if got := c.Path(); got != "/c" {
		t.Errorf("Path = %q", got)
	}
}
