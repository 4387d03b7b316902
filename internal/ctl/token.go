package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"

	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/sandbox"
)

// DefaultVPCDAddr is where the system vpcd driver listens for its first
// reader (vsmartcard's default port 35963; the second reader is 35964).
const DefaultVPCDAddr = "127.0.0.1:35963"

// TokenOptions configure RunToken.
type TokenOptions struct {
	// State is the directory that keeps the token between runs.
	State string
	// Official is whom a new token is made for; unused once State holds one.
	Official pivsim.Official
	// ReaderAddr is the vpcd reader to insert the token into.
	ReaderAddr string
	// PCSCD starts a private pcscd (root only) instead of using the
	// system's vpcd at ReaderAddr.
	PCSCD bool
	// In takes the operator's keys: each line (Enter) taps or removes the
	// token. Nil means the token stays inserted until ctx ends.
	In  io.Reader
	Out io.Writer
}

// RunToken provisions (on first run) or loads a software token, prints
// what an integrator needs to know about it, inserts it into the reader and
// toggles it on every line of input until ctx ends.
func RunToken(ctx context.Context, o TokenOptions) error {
	if o.State == "" {
		return errors.New("no state directory (--state)")
	}
	demo, err := pivsim.ProvisionDemo(o.State, o.Official)
	if err != nil {
		return err
	}
	defer demo.Card.Close()
	addr := o.ReaderAddr
	if addr == "" {
		addr = DefaultVPCDAddr
	}
	reader := ReaderName(addr)
	if o.PCSCD {
		d, err := sandbox.StartPCSCD(sandbox.PCSCDOptions{RunDir: filepath.Join(o.State, "pcscd-run"), Dir: filepath.Join(o.State, "pcscd")})
		if err != nil {
			return fmt.Errorf("private pcscd: %w", err)
		}
		defer d.Stop()
		addr, reader = d.VPCDAddr(0), d.Readers[0]
		fmt.Fprintf(o.Out, "pcscd:        private; point clients at it with  export %s=%s\n", sandbox.SocketEnv, d.Socket)
	}
	fmt.Fprintf(o.Out, `Software token
  reader:       %s (vpcd %s)
  serial:       %d
  cert SHA-256: %s
  PIN:          %s
  certificate:  %s
  CA:           %s
  state:        %s
`, reader, addr, demo.Card.Serial(), demo.CertSHA256, pivsim.DefaultPIN, demo.CertPath, demo.CACertPath, demo.StatePath)

	if err := demo.Card.Insert(ctx, addr); err != nil {
		return fmt.Errorf("%w (is pcscd running with the vpcd driver? try --pcscd)", err)
	}
	if o.In == nil {
		fmt.Fprintln(o.Out, "Token on the reader. Ctrl-C stops.")
		<-ctx.Done()
		return nil
	}
	fmt.Fprintln(o.Out, "Token on the reader. Enter removes it, Enter again taps it. Ctrl-C stops.")
	lines := make(chan struct{})
	// The reader goroutine ends when In is closed (end of input); a
	// terminal's stdin is closed by the process exit.
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(o.In)
		for sc.Scan() {
			select {
			case lines <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-lines:
			if !ok {
				<-ctx.Done()
				return nil
			}
			if demo.Card.Present() {
				if err := demo.Card.Remove(); err != nil {
					fmt.Fprintln(o.Out, "remove token:", err)
					continue
				}
				fmt.Fprintln(o.Out, "Token removed.")
				continue
			}
			if err := demo.Card.Insert(ctx, addr); err != nil {
				fmt.Fprintln(o.Out, "tap token:", err)
				continue
			}
			fmt.Fprintln(o.Out, "Token on the reader.")
		}
	}
}

// ReaderName is the name pcscd gives the vpcd reader on addr's port, when
// it is one of the system vpcd's default ports.
func ReaderName(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "unknown reader"
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "unknown reader"
	}
	if n := port - 35963; n >= 0 && n < sandbox.VPCDReaders {
		return fmt.Sprintf("Virtual PCD 00 %02d", n)
	}
	return "the vpcd reader on port " + p
}
