// Package policy places processes by rules and sets up containers from a
// declarative file, in libcgroup's own grammars, so that an existing
// cgrules.conf and cgconfig.conf work unchanged:
//
//   - rules.go parses cgrules.conf: `user[:process] controllers destination
//     [options]`, @group, *, % continuation lines, quoted names, the %u %U
//     %g %G %p %P templates, ignore and ignore_rt; a main file and drop-in
//     *.conf files, first match wins. A bad file is rejected whole, with
//     every bad line numbered, and the rules in force stay.
//   - config.go parses cgconfig.conf (mount, group with perm and settings,
//     template, default) into a Config and writes one back (Format);
//     apply.go makes a Config true on the model (Apply), and snapshot.go
//     describes the live model as one (Snapshot), so that applying a
//     snapshot to a fresh registry makes an equal tree.
//   - The Engine (engine.go) is the rules engine, cgrulesengd's part. Its
//     entry points (entry.go): the daemon's tracker hands it every proc
//     connector event (HandleEvent); on exec, uid and gid change it reads
//     the process from /proc (proc.go) and moves its whole thread group
//     where the first matching rule says (decide.go), into containers it
//     finds or makes from templates (dest.go), all hierarchies or none,
//     and makes children forked during a racing move follow (move.go).
//     ClassifyAll does the same for every process at start-up; Classify
//     and Exec are cgclassify and cgexec (-g spec.go), and leave what they
//     placed alone (sticky.go); Explain says which rule matched a process
//     and why.
//
// # How it enforces
//
// Only by moving processes in the model (Model.Attach, as root, marked as
// the policy's own with Caller), never by touching a process. The daemon
// learns of an exec after it happened: the program runs in its old
// containers for the time the event takes to arrive (tens of
// microseconds: docs/field-notes.md, "Proc connector"). Exec, like cgexec,
// avoids even that by moving the process before it execs. Forks racing a
// move are handled as Engine's comment explains.
//
// # What it must never do
//
// It never moves the daemon, kernel threads, or a process left alone as
// sticky (placed by cgexec/cgclassify, or by hand when the daemon reports
// manual moves through NoteManual). Its hooks run on the tracker's
// goroutine: they never wait on anything but the model, and never hold
// the engine's locks while calling out except moveMu, which only the
// engine takes. A rule's template never lets a process steer itself out
// of the destination: a name holding '/' or being ".." expands to its
// number instead.
package policy
