package core

import "log"

// The pieces every subsystem is built of (docs/subsystems.md): its state
// accessor and its logger; its background goroutine is a worker.Worker.

// StateOf is the state that subsystem ss's Create made for c, as the type T
// it made: every subsystem's accessor is one call of it,
//
//	func (s *Subsys) state(c *core.Container) *state { return core.StateOf[*state](c, s) }
//
// It panics if c's hierarchy does not have ss bound or the state is not a
// T: a programming error, as the kernel's css lookups assume.
func StateOf[T any](c *Container, ss Subsys) T {
	return c.State(ss).(T)
}

// Logf is how a subsystem reports what it could not do or chose not to
// (a task it could not confine, a kill it skipped). The daemon sets it to
// its own logger; the zero value logs with the standard logger.
type Logf func(format string, a ...any)

// Printf logs through l, or log.Printf when l is nil.
func (l Logf) Printf(format string, a ...any) {
	if l == nil {
		log.Printf(format, a...)
		return
	}
	l(format, a...)
}
