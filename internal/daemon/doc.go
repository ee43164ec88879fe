// Package daemon is containerfs's lifecycle: the one process that owns the
// model, serves every mount of every hierarchy, answers the control socket
// (mount requests from the mount(8) helper and queries from the CLI), and on
// SIGINT or SIGTERM unmounts everything before it exits.
//
// The control socket is root-only: the daemon checks the peer's credentials
// (SO_PEERCRED) on every connection, besides the socket file's 0600 mode.
// The protocol is one JSON request and one JSON reply per connection.
//
// At start-up the daemon removes stale mounts of its filesystem type left by
// a crashed run: those whose FUSE connection is gone (ENOTCONN). Live mounts
// served by another daemon (tests run isolated daemons side by side) are
// left alone.
package daemon
