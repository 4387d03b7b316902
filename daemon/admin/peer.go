package admin

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// RootOrSelf is the default ServerOptions.Allow: root and the user the
// server runs as.
func RootOrSelf(uid uint32) bool { return uid == 0 || uid == uint32(os.Geteuid()) }

// peer is who is at the other end of a unix socket, as the kernel saw it
// when the peer connected (SO_PEERCRED, unix(7)): it cannot be claimed.
type peer struct {
	uid uint32
	pid int32
}

func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", credErr)
	}
	return peer{uid: cred.Uid, pid: cred.Pid}, nil
}
