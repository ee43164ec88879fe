// Package procevent is where task events come from: the kernel's process
// events connector (Listen), a scan of /proc (Scan, ReadTask), a fallback
// that diffs scans when the connector cannot be had (NewPoller), and
// sources fed by tests (NewFake, Replay). All of them are a Source: Receive
// returns batches of Events until Close.
//
// # The proc connector
//
// Events arrive on a NETLINK_CONNECTOR socket joined to the CN_IDX_PROC
// multicast group after a PROC_CN_MCAST_LISTEN request. Each message is a
// struct nlmsghdr, a struct cn_msg and a struct proc_event (see
// include/uapi/linux/connector.h and cn_proc.h); Parse decodes them with no
// I/O, so the decoding is tested on byte fixtures recorded from a live
// kernel (testdata/*.bin, rewritten by go test -run TestRecordFixtures
// ./internal/procevent/ -record).
//
// The connector is lossy and late, and consumers must be built for it:
//
//   - A full receive buffer drops messages and the next read fails with
//     ENOBUFS; the kernel can also fail to allocate a message and tell
//     nobody. Each CPU numbers its messages (cn_msg seq), so Conn watches
//     the numbers per CPU as well. Either way Receive returns an error
//     wrapping ErrLost at that point in the stream, once per loss, and then
//     carries on; the consumer must rebuild its view from a Scan. Listen sets
//     an 8 MiB buffer with SO_RCVBUFFORCE against the first cause (the
//     default holds about 256 events).
//   - Events describe the past. By the time a Fork is read the child may
//     have run, forked, exec'd or exited; an Exit's parent fields are 0 if
//     the parent reaped the task first, which is always the case for a
//     thread. Only the order of events from one CPU is guaranteed.
//   - PIDs are those of the initial PID namespace, and the kernel ignores a
//     listener outside the initial PID or user namespace without a word:
//     Listen waits for the kernel's ack to be sure events will flow.
//
// Conn talks to the socket with golang.org/x/sys/unix, not
// mdlayher/netlink. The connector needs none of what that package gives
// (requests and replies, multipart dumps, attributes) and its Receive gets
// in the way: it returns parsed messages rather than the raw bytes that
// Parse and the fixtures are about, peeks before every read (two syscalls
// per datagram), allocates per datagram, and hides ENOBUFS inside an
// OpError. The socket is non-blocking and wrapped in an os.File, so a
// blocked Receive parks on the runtime poller and Close wakes it.
//
// # What it never does
//
// It only observes. It never signals, stops, traces or changes a task,
// never writes to /proc, never filters events by container (consumers
// decide what an event means), and never claims a view is complete: a
// Scan is a sequence of reads, not a snapshot, and a Poller misses every
// task that lives less than its interval without being able to say so.
// Nothing here holds a lock while it blocks except the one that
// serializes Receive.
package procevent
