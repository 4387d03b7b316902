package pivsim

import (
	"net"

	"golang.org/x/sys/unix"
)

// QuickAckReader reads from a TCP connection whose peer is vpcd,
// acknowledging each segment at once (TCP_QUICKACK, set again before
// every read, since the kernel drops it as it sees fit). vpcd sends each
// message as two writes, the length then the bytes, on a socket without
// TCP_NODELAY: Nagle holds the second write until the first is
// acknowledged, and a delayed acknowledgement (40 ms on Linux) would stall
// every APDU by that much.
type QuickAckReader struct{ Conn net.Conn }

func (q QuickAckReader) Read(p []byte) (int, error) {
	if tc, ok := q.Conn.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
			})
		}
	}
	return q.Conn.Read(p)
}
