// Package cgfs serves a hierarchy of the core model as a FUSE filesystem:
// directories are containers, files are the control files declared in the
// core's and the subsystems' File tables.
//
// Every mount is one go-fuse server; several mounts of the same hierarchy
// are views of one model. Nodes are made on lookup and forgotten when the
// kernel forgets them, so a container costs the daemon nothing here until
// someone looks at it. Entries are cached by the kernel for a second, and a
// change made through one view invalidates the others' cached entries, off
// the request path (a notify from inside a request could deadlock two views
// against each other).
//
// Control files are opened with FOPEN_DIRECT_IO, so every read reaches the
// model; a file's content is formatted at the first read (and again at any
// read from offset 0) and then served from that snapshot, so a file read in
// several chunks is consistent. Each write(2) is handed whole to the file's
// handler, as the kernel's cgroupfs does.
//
// The mount uses default_permissions: the kernel checks modes and owners,
// which chmod and chown change as delegation needs.
//
// This package never decides anything about the model: it translates, and
// maps an error wrapping a syscall.Errno to that errno (anything else is EIO,
// and logged).
package cgfs
