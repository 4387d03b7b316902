package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// FreePorts finds n consecutive free TCP ports and returns the first one.
// vpcd listens on one port per virtual reader, from its configured port on.
// The caller must tolerate losing a race for them; the starters here retry.
func FreePorts(n int) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen on a free port: %w", err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l}
		ok := base+n-1 <= 65535
		for i := 1; ok && i < n; i++ {
			// Loopback only, like every port the sandbox opens: vpcd,
			// which binds every address, does so inside pcscd's own
			// network namespace (PCSCD).
			li, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			held = append(held, li)
		}
		for _, h := range held {
			h.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no run of free ports found")
}

// permanentError marks a condition that can no longer come true.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that WaitFor stops polling and returns it at once.
func Permanent(err error) error { return permanentError{err} }

// WaitFor polls cond until it returns nil, returns an error made by
// Permanent, or the timeout passes, and returns the last error. It is the
// harness's only way to wait: no fixed sleeps.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// TCPListening reports whether some socket in this network namespace listens
// on port. It reads /proc instead of connecting, because a connection to a
// vpcd port is taken by the driver as a card being inserted.
func TCPListening(port int) (bool, error) { return tcpListening("/proc/net", port) }

// tcpListening is TCPListening for the network namespace whose tables are
// in netDir: /proc/net for this process's, /proc/PID/net for process PID's.
func tcpListening(netDir string, port int) (bool, error) {
	want := fmt.Sprintf(":%04X", port)
	for _, name := range []string{netDir + "/tcp", netDir + "/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return false, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// fields: sl local_address rem_address st ...; 0A is LISTEN.
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				f.Close()
				return true, nil
			}
		}
		f.Close()
	}
	return false, nil
}
