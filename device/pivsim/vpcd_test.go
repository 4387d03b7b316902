package pivsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeVPCD plays the vpcd driver's side of the socket, so the protocol and
// the session rules are tested without pcscd.
type fakeVPCD struct {
	t    *testing.T
	ln   net.Listener
	conn net.Conn
	r    *bufio.Reader
}

func newFakeVPCD(t *testing.T) *fakeVPCD {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeVPCD{t: t, ln: ln}
}

// insert inserts c and answers the atr request Insert waits for.
func (f *fakeVPCD) insert(c *Card) {
	f.t.Helper()
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { errc <- c.Insert(ctx, f.ln.Addr().String()) }()
	conn, err := f.ln.Accept()
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	f.conn, f.r = conn, bufio.NewReader(conn)
	if atr := f.send([]byte{vpcdGetATR}); !bytes.Equal(atr, atr) {
		f.t.Fatalf("atr %x", atr)
	}
	if err := <-errc; err != nil {
		f.t.Fatalf("Insert: %v", err)
	}
}

func (f *fakeVPCD) control(b byte) {
	f.t.Helper()
	if err := writeMessage(f.conn, []byte{b}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeVPCD) send(msg []byte) []byte {
	f.t.Helper()
	if err := writeMessage(f.conn, msg); err != nil {
		f.t.Fatal(err)
	}
	f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := readMessage(f.r)
	if err != nil {
		f.t.Fatalf("read answer: %v", err)
	}
	return resp
}

func (f *fakeVPCD) apdu(s string) uint16 {
	f.t.Helper()
	raw, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	resp := f.send(raw)
	return uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])
}

func TestVPCDPowerClearsSession(t *testing.T) {
	for _, ctl := range []struct {
		name string
		b    byte
	}{{"power off", vpcdPowerOff}, {"reset", vpcdReset}, {"power on", vpcdPowerOn}} {
		t.Run(ctl.name, func(t *testing.T) {
			c, _ := New(Config{})
			defer c.Close()
			f := newFakeVPCD(t)
			f.insert(c)
			f.apdu(selectPIV)
			if sw := f.apdu(verifyPIN); sw != 0x9000 {
				t.Fatalf("verify %04X", sw)
			}
			if sw := f.apdu(pinStatus); sw != 0x9000 {
				t.Fatalf("status %04X", sw)
			}
			f.control(ctl.b)
			if sw := f.apdu(selectPIV); sw != 0x9000 {
				t.Fatalf("select %04X", sw)
			}
			if sw := f.apdu(pinStatus); sw != 0x63C3 {
				t.Fatalf("PIN status after %s: %04X, want 63C3", ctl.name, sw)
			}
		})
	}
}

func TestRemoveDuringCommand(t *testing.T) {
	c, _ := New(Config{})
	defer c.Close()
	if _, err := c.GenerateKey(SlotSignature, AlgECCP256, PINPolicyAlways, TouchPolicyNever); err != nil {
		t.Fatal(err)
	}
	f := newFakeVPCD(t)
	f.insert(c)
	f.apdu(selectPIV)
	f.apdu(verifyPIN)
	c.OnCommand(func(ins byte) {
		if ins == insAuthenticate {
			c.Remove()
		}
	})
	raw, _ := hex.DecodeString("0087119C267C248200812000112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF")
	if err := writeMessage(f.conn, raw); err != nil {
		t.Fatal(err)
	}
	f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := readMessage(f.r); err == nil {
		t.Fatalf("card answered %x after removal", resp)
	}
	if c.Present() {
		t.Fatal("Present() after Remove in the hook")
	}
	// Close returns: the connection goroutine has ended.
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung after Remove during a command")
	}
	if err := c.Insert(context.Background(), f.ln.Addr().String()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Insert after Close: %v", err)
	}
}

func TestTouch(t *testing.T) {
	c, _ := New(Config{})
	defer c.Close()
	if _, err := c.GenerateKey(SlotAuthentication, AlgECCP256, PINPolicyNever, TouchPolicyAlways); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(SlotCardAuthentication, AlgECCP256, PINPolicyNever, TouchPolicyCached); err != nil {
		t.Fatal(err)
	}
	touches := 0
	allow := true
	c.SetTouchResponder(func(ctx context.Context, slot byte) error {
		touches++
		if !allow {
			return errors.New("no touch")
		}
		return nil
	})
	var s session
	tx(t, c, &s, selectPIV)
	sign := func(slot string) uint16 {
		_, sw := tx(t, c, &s, "00 87 11 "+slot+" 26 7C 24 82 00 81 20"+strings.Repeat("ab", 32))
		return sw
	}
	if sw := sign("9A"); sw != 0x9000 || touches != 1 {
		t.Fatalf("touch always: %04X after %d touches", sw, touches)
	}
	allow = false
	if sw := sign("9A"); sw != 0x6982 || touches != 2 {
		t.Fatalf("refused touch: %04X after %d touches", sw, touches)
	}
	allow = true
	// A touch is cached for 15 s across slots, as on a YubiKey; a new
	// session starts without one.
	s = session{}
	tx(t, c, &s, selectPIV)
	sign("9E")
	if sw := sign("9E"); sw != 0x9000 || touches != 3 {
		t.Fatalf("cached touch: %04X after %d touches, want 3", sw, touches)
	}
}

func TestInsertCancelled(t *testing.T) {
	c, _ := New(Config{})
	defer c.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A driver that accepts but never asks for the atr.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Insert(ctx, ln.Addr().String()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Insert = %v, want deadline exceeded", err)
	}
	if c.Present() {
		t.Fatal("Present() after a failed Insert")
	}
}
