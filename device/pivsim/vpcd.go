package pivsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// atr is the answer to reset the card gives, that of a YubiKey 5 NFC:
// T=1, and historical bytes with the card capabilities (extended length)
// and "YubiKey".
var atr = []byte{0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0,
	0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40}

// Control messages of the vpcd protocol (vsmartcard virtualsmartcard/src/
// vpcd/vpcd.h): a one-byte message from the driver.
const (
	vpcdPowerOff = 0x00
	vpcdPowerOn  = 0x01
	vpcdReset    = 0x02
	vpcdGetATR   = 0x04
)

// insertion is one stay of the card in a reader: a connection to vpcd and
// the goroutine serving it.
type insertion struct {
	conn      net.Conn
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	atrOnce   sync.Once
	atrAsked  chan struct{}
	closeOnce sync.Once
}

func (in *insertion) close() {
	in.closeOnce.Do(func() {
		in.cancel()
		in.conn.Close()
	})
}

// Insert puts the card into the vpcd reader at addr (host:port): it dials
// the driver, serves it from a goroutine the Card owns, and returns once
// pcscd has asked for the ATR, that is once pcscd sees the card.
func (c *Card) Insert(ctx context.Context, addr string) error {
	c.connMu.Lock()
	if c.closed {
		c.connMu.Unlock()
		return ErrClosed
	}
	if c.cur != nil {
		c.connMu.Unlock()
		return ErrPresent
	}
	c.connMu.Unlock()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("insert card into vpcd %s: %w", addr, err)
	}
	ictx, cancel := context.WithCancel(context.Background())
	in := &insertion{conn: conn, ctx: ictx, cancel: cancel, done: make(chan struct{}), atrAsked: make(chan struct{})}

	c.connMu.Lock()
	switch {
	case c.closed:
		c.connMu.Unlock()
		in.close()
		return ErrClosed
	case c.cur != nil:
		c.connMu.Unlock()
		in.close()
		return ErrPresent
	}
	c.cur = in
	c.wg.Add(1)
	c.connMu.Unlock()
	go c.serve(in)

	select {
	case <-in.atrAsked:
		slog.Debug("pivsim card inserted", "addr", addr, "serial", c.Serial())
		return nil
	case <-in.done:
		return fmt.Errorf("insert card into vpcd %s: driver closed the connection", addr)
	case <-ctx.Done():
		c.drop(in)
		return fmt.Errorf("insert card into vpcd %s: %w", addr, ctx.Err())
	}
}

// Remove takes the card out of the reader: the connection closes and the
// session (verified PIN, management key, selection) is gone. pcscd notices
// at its next presence poll. It does not wait for a command in progress,
// so it is safe from OnCommand, and safe when the card is not inserted.
func (c *Card) Remove() error {
	c.connMu.Lock()
	in := c.cur
	c.cur = nil
	c.connMu.Unlock()
	if in != nil {
		in.close()
		slog.Debug("pivsim card removed", "serial", c.Serial())
	}
	return nil
}

// drop ends one insertion if it is still the current one.
func (c *Card) drop(in *insertion) {
	c.connMu.Lock()
	if c.cur == in {
		c.cur = nil
	}
	c.connMu.Unlock()
	in.close()
}

// Present reports whether the card is in a reader.
func (c *Card) Present() bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.cur != nil
}

// Tap inserts the card, holds it in the reader for d, and removes it, as
// an NFC tap does. It returns early, with the card removed, when ctx ends.
func (c *Card) Tap(ctx context.Context, addr string, d time.Duration) error {
	if err := c.Insert(ctx, addr); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return c.Remove()
}

// Close removes the card and waits for its goroutines to end. Insert fails
// afterwards. It must not be called from the OnCommand hook.
func (c *Card) Close() error {
	c.connMu.Lock()
	c.closed = true
	c.connMu.Unlock()
	err := c.Remove()
	c.wg.Wait()
	return err
}

// serve answers the vpcd driver until the connection ends.
func (c *Card) serve(in *insertion) {
	defer c.wg.Done()
	defer close(in.done)
	defer c.drop(in)
	r := bufio.NewReader(QuickAckReader{Conn: in.conn})
	var s session
	for {
		msg, err := readMessage(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				slog.Debug("pivsim vpcd read", "err", err)
			}
			return
		}
		var resp []byte
		if len(msg) == 1 {
			switch msg[0] {
			case vpcdPowerOff, vpcdPowerOn, vpcdReset:
				slog.Debug("pivsim vpcd control", "msg", msg[0])
				// A power cycle or warm reset wipes the volatile state:
				// the next official cannot sign on this one's PIN.
				s.reset()
			case vpcdGetATR:
				resp = atr
				in.atrOnce.Do(func() { close(in.atrAsked) })
			}
			if resp == nil {
				continue
			}
		} else {
			c.mu.Lock()
			hook := c.hook
			c.mu.Unlock()
			if hook != nil && len(msg) >= 2 {
				hook(msg[1])
			}
			if in.ctx.Err() != nil {
				return // removed by the hook: the command never ran
			}
			resp = c.process(in.ctx, &s, msg)
		}
		if err := writeMessage(in.conn, resp); err != nil {
			return
		}
	}
}

// readMessage reads one vpcd message: a two-byte big-endian length, then
// the payload.
func readMessage(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(hdr[:])
	if n == 0 {
		return nil, errors.New("vpcd: empty message")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("vpcd: short message: %w", err)
	}
	return msg, nil
}

func writeMessage(w io.Writer, b []byte) error {
	if len(b) > 0xFFFF {
		return errors.New("vpcd: message too long")
	}
	out := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	copy(out[2:], b)
	_, err := w.Write(out)
	return err
}
