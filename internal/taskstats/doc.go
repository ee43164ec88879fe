// Package taskstats is a client of the kernel's taskstats interface, the
// generic netlink family "TASKSTATS" (Documentation/accounting/taskstats.rst):
// the accounting record of a live task on demand (Conn), and the record the
// kernel sends for every task as it exits to the listeners registered for
// the CPU it exits on (Listener).
//
// The exit record is the only place userspace can learn a task's final CPU
// time after its parent has reaped it: /proc/TID is gone by then. The
// record is sent from do_exit before the task releases its memory and files,
// so it misses the last microseconds the task spends dying.
//
// Records are decoded by copying what the kernel sent into a zeroed
// unix.Taskstats: the kernel's struct grows with each version (this one sends
// 560 bytes while x/sys's struct is 688), and fields are only ever appended,
// so a shorter record is a prefix of the longer struct and the fields it
// lacks read as zero. Stats.Len tells how many bytes were sent.
//
// Parsing is apart from I/O (ParseRecords takes a message's attributes), so
// tests decode byte fixtures recorded from the live kernel (testdata/).
//
// What this package must never do: register a listener it does not remove
// (Close deregisters; the kernel also drops listeners whose socket is gone
// the next time it sends to them), or hold the caller up: Listener.Receive
// blocks, and belongs on a goroutine of its own.
package taskstats
