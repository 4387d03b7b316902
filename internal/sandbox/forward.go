package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// forwarder carries TCP connections from listeners on the host's 127.0.0.1
// to addresses inside another network namespace, one connection inside per
// connection accepted. It lives exactly as long as one pcscd run: vpcd
// takes a connection as a card in its reader and its end as the removal,
// so a connection through the forwarder must begin and end like a direct
// one.
type forwarder struct {
	ns      *os.File // the namespace dialled into; closed by close
	targets []string // inside ns, one per listener
	lns     []net.Listener
	logPath string // pcscd's log, where dial failures are noted

	ctx    context.Context // ends in-flight dials on close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startForwarder listens on 127.0.0.1:ports[i] (0 for a free port) for each
// target. It takes ownership of ns.
func startForwarder(ns *os.File, ports []int, targets []string, logPath string) (*forwarder, error) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{ns: ns, targets: targets, logPath: logPath, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	for i := range targets {
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])))
		if err != nil {
			f.close()
			return nil, fmt.Errorf("forwarder for %s: %w", targets[i], err)
		}
		f.lns = append(f.lns, ln)
	}
	for i, ln := range f.lns {
		f.wg.Add(1)
		go f.serve(ln, f.targets[i])
	}
	return f, nil
}

// port is the port of listener i.
func (f *forwarder) port(i int) int { return f.lns[i].Addr().(*net.TCPAddr).Port }

func (f *forwarder) serve(ln net.Listener, target string) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: let them free up
			// rather than spin.
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !f.track(c) {
			return
		}
		f.wg.Add(1)
		go f.relay(c, target)
	}
}

// relay connects client to target inside the namespace and copies both
// ways. When either side ends it closes both, as the ends themselves do:
// a card's Remove closes its socket, and so does vpcd's vicc_eject
// (vpcd.c), neither shuts down one direction. So vpcd's next presence
// poll gets no ATR and reports the card removed, and a card whose pcscd
// died or ejected it sees its connection end, as with a direct one.
func (f *forwarder) relay(client net.Conn, target string) {
	defer f.wg.Done()
	defer f.untrack(client)
	var inner net.Conn
	err := inNetns(f.ns, func() error {
		// tcp4 and an address literal: the dial stays on this goroutine
		// (no resolver, no parallel dials on other threads).
		var d net.Dialer
		var err error
		inner, err = d.DialContext(f.ctx, "tcp4", target)
		return err
	})
	if err != nil {
		// The card sees its connection end at once, as a reader that
		// is not there would look to it.
		if f.ctx.Err() == nil {
			f.logf("dial vpcd %s: %v", target, err)
		}
		return
	}
	if !f.track(inner) {
		return
	}
	defer f.untrack(inner)
	// Go sets TCP_NODELAY on every TCP connection (net.newTCPConn), so a
	// short APDU or response is not held back on our side; vpcd's side
	// has Nagle, so what it sends is acknowledged at once (QuickAckReader).
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(inner, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, quickAckReader{inner}); done <- struct{}{} }()
	<-done
	client.Close()
	inner.Close()
	<-done
}

// track registers c so that close can end it; it closes c and reports
// false once the forwarder is closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

// close stops listening, ends every connection and waits for the
// goroutines. The ports are refused afterwards, as vpcd's were when pcscd
// was down; Restart listens on them again.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
	for _, ln := range f.lns {
		ln.Close()
	}
	f.wg.Wait()
	f.ns.Close()
}

// logf notes a forwarder failure in pcscd's log, which the tests print when
// a card does not arrive.
func (f *forwarder) logf(format string, args ...any) {
	l, err := os.OpenFile(f.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer l.Close()
	fmt.Fprintf(l, "sandbox forwarder: "+format+"\n", args...)
}

// quickAckReader acknowledges at once each segment vpcd sends (see
// pivsim.QuickAckReader, whose tests import this package, hence the copy):
// vpcd writes the length and the bytes of a message separately, without
// TCP_NODELAY, so a delayed acknowledgement would hold every APDU back.
type quickAckReader struct{ conn net.Conn }

func (q quickAckReader) Read(p []byte) (int, error) {
	if tc, ok := q.conn.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
			})
		}
	}
	return q.conn.Read(p)
}
