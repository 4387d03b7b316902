package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// FreePorts finds n consecutive free TCP ports on 127.0.0.1 and returns the
// first one. vpcd listens on one port per virtual reader, from its
// configured port on. The caller must tolerate losing a race for them; the
// starters here retry.
//
// The ports come from outside the kernel's ephemeral range: a broker or
// pcscd restarted on its port would otherwise find it taken by some
// client's outgoing connection, which the kernel may give any free port of
// that range in the moment the server is down (EADDRINUSE on restart).
func FreePorts(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("free ports: want at least one, not %d", n)
	}
	if lo, hi, ok := quietPortRange(n); ok {
		for range 200 {
			base := lo + rand.IntN(hi-lo-n+2)
			if portsFree(base, n) {
				return base, nil
			}
		}
	}
	// No room outside the ephemeral range: let the kernel choose.
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen on a free port: %w", err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n-1 <= 65535 && portsFree(base, n) {
			return base, nil
		}
	}
	return 0, errors.New("no run of free ports found")
}

// quietPortRange is the widest stretch of ports, at or above 15000 (clear
// of most services' registered ports), that the kernel never hands out as
// the local port of an outgoing connection.
func quietPortRange(n int) (lo, hi int, ok bool) {
	ephLo, ephHi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				ephLo, ephHi = a, z
			}
		}
	}
	const floor = 15000
	below := ephLo - floor // ports floor … ephLo-1
	above := 65535 - ephHi // ports ephHi+1 … 65535
	switch {
	case below >= above && below >= 100+n:
		return floor, ephLo - 1, true
	case above >= 100+n:
		return ephHi + 1, 65535, true
	}
	return 0, 0, false
}

// portsFree reports whether base … base+n-1 can all be listened on now.
func portsFree(base, n int) bool {
	var held []net.Listener
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for i := range n {
		// Loopback only, like every port the sandbox opens: vpcd, which
		// binds every address, does so inside pcscd's own network
		// namespace (PCSCD).
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
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
