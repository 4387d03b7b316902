package device

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/testenv"
)

func TestPresenceEvents(t *testing.T) {
	e := newEnv(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readers, err := e.tokens.Readers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(readers, e.pcscd.Readers) {
		t.Fatalf("readers %q, want %q", readers, e.pcscd.Readers)
	}
	card0, _ := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	card1, _ := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	for round := range 3 {
		in := e.insert(t, card0, 0)
		in1 := e.insert(t, card1, 1)
		present, err := e.tokens.Present(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(present, e.pcscd.Readers) {
			t.Fatalf("present %q, want both readers", present)
		}
		out := e.remove(t, card0, 0)
		out1 := e.remove(t, card1, 1)
		t.Logf("round %d: arrival %v / %v, removal %v / %v (insert or remove call to event)", round, in, in1, out, out1)
	}
	// A tap: in and out again.
	ctxTap, cancelTap := context.WithTimeout(ctx, 10*time.Second)
	defer cancelTap()
	if err := card0.Tap(ctxTap, e.pcscd.VPCDAddr(0), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ev := e.next(t, ctxTap); ev.Kind != Arrived {
		t.Fatalf("tap: first event %v, want arrived", ev.Kind)
	}
	if ev := e.next(t, ctxTap); ev.Kind != Left {
		t.Fatalf("tap: second event %v, want left", ev.Kind)
	}
}

func TestInfo(t *testing.T) {
	e := newEnv(t, Options{})
	card, cert := newCard(t, pivsim.AlgECCP384, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := e.tokens.Info(ctx, e.pcscd.Readers[0])
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != 4242 || info.Version != "5.7.1" || info.PINRetries != 3 {
		t.Errorf("info serial %d version %s retries %d, want 4242 5.7.1 3", info.Serial, info.Version, info.PINRetries)
	}
	if info.SignCert == nil || !info.SignCert.Equal(cert) {
		t.Errorf("sign certificate does not match the one stored")
	}
	if info.AuthCert == nil || info.AuthCert.Subject.CommonName != "auth" {
		t.Errorf("auth certificate %v", info.AuthCert)
	}
	if _, err := e.tokens.Info(ctx, e.pcscd.Readers[1]); !errors.Is(err, ErrNoToken) {
		t.Errorf("info of empty reader: %v, want ErrNoToken", err)
	}
	if _, err := e.tokens.Info(ctx, "No Such Reader 00 00"); !errors.Is(err, ErrNoReader) {
		t.Errorf("info of unknown reader: %v, want ErrNoReader", err)
	}
}

func TestSignAlgorithms(t *testing.T) {
	e := newEnv(t, Options{})
	sum256 := sha256.Sum256([]byte("surat keluar 001"))
	sum384 := sha512.Sum384([]byte("surat keluar 001"))
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	tests := []struct {
		name   string
		alg    pivsim.Algorithm
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"ecc-p256", pivsim.AlgECCP256, sum256[:], crypto.SHA256},
		{"ecc-p384", pivsim.AlgECCP384, sum384[:], crypto.SHA384},
		{"rsa2048-pkcs1v15", pivsim.AlgRSA2048, sum256[:], crypto.SHA256},
		{"rsa2048-pss", pivsim.AlgRSA2048, sum256[:], pss},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card, cert := newCard(t, tt.alg, pivsim.PINPolicyOnce)
			e.insert(t, card, 0)
			defer e.remove(t, card, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var sigs [][]byte
			err := e.tokens.Session(ctx, e.pcscd.Readers[0], func(s *Session) error {
				if err := s.VerifyPIN([]byte(testPIN), false); err != nil {
					return err
				}
				sig, err := s.Sign(ctx, SlotSignature, tt.digest, tt.opts)
				if err != nil {
					return err
				}
				signer, err := s.Signer(SlotSignature)
				if err != nil {
					return err
				}
				sig2, err := signer.Sign(nil, tt.digest, tt.opts)
				if err != nil {
					return err
				}
				sigs = [][]byte{sig, sig2}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, sig := range sigs {
				if err := verify(cert, tt.digest, sig, tt.opts); err != nil {
					t.Errorf("signature %d does not verify: %v", i, err)
				}
			}
		})
	}
}

func verify(cert *x509.Certificate, digest, sig []byte, opts crypto.SignerOpts) error {
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("ecdsa verify failed")
		}
		return nil
	case *rsa.PublicKey:
		if p, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(pub, opts.HashFunc(), digest, sig, p)
		}
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
	}
	return errors.New("unexpected key type")
}

func TestSignErrors(t *testing.T) {
	e := newEnv(t, Options{})
	card, _ := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum := sha256.Sum256([]byte("x"))
	var leaked crypto.Signer
	err := e.tokens.Session(ctx, e.pcscd.Readers[0], func(s *Session) error {
		if _, err := s.Sign(ctx, SlotSignature, sum[:], crypto.SHA256); !errors.Is(err, ErrPINRequired) {
			t.Errorf("sign before VerifyPIN: %v, want ErrPINRequired", err)
		}
		if _, err := s.Sign(ctx, Slot(0x9d), sum[:], crypto.SHA256); !errors.Is(err, ErrUnsupported) {
			t.Errorf("sign with slot 9d: %v, want ErrUnsupported", err)
		}
		if _, err := s.Sign(ctx, SlotSignature, sum[:20], crypto.SHA256); !errors.Is(err, ErrUnsupported) {
			t.Errorf("sign with a short digest: %v, want ErrUnsupported", err)
		}
		p, err := s.SlotPINPolicy(SlotSignature)
		if err != nil || p != PINPolicyOnce {
			t.Errorf("pin policy %v, %v; want once", p, err)
		}
		leaked, err = s.Signer(SlotSignature)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaked.Sign(nil, sum[:], crypto.SHA256); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("signer after session: %v, want ErrSessionClosed", err)
	}

	empty, err := pivsim.New(pivsim.Config{Serial: 1, Version: [3]byte{5, 7, 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	e.remove(t, card, 0)
	e.insert(t, empty, 0)
	err = e.tokens.Session(ctx, e.pcscd.Readers[0], func(s *Session) error {
		_, err := s.Sign(ctx, SlotSignature, sum[:], crypto.SHA256)
		return err
	})
	if !errors.Is(err, ErrSlotEmpty) {
		t.Errorf("sign with an empty slot: %v, want ErrSlotEmpty", err)
	}
}

// TestPINClearedAfterSession shows that a PIN verified in one session does
// not let the next session sign, and that without the reset it would.
func TestPINClearedAfterSession(t *testing.T) {
	e := newEnv(t, Options{})
	card, _ := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum := sha256.Sum256([]byte("x"))
	reader := e.pcscd.Readers[0]
	signWithoutPIN := func() error {
		return e.tokens.Session(ctx, reader, func(s *Session) error {
			_, err := s.Sign(ctx, SlotSignature, sum[:], crypto.SHA256)
			return err
		})
	}
	for _, reset := range []bool{true, false} {
		e.tokens.resetOnClose = reset
		if _, err := signSession(ctx, e.tokens, reader, sum[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		err := signWithoutPIN()
		switch {
		case reset && !errors.Is(err, ErrPINRequired):
			t.Errorf("with reset: next session signed without a PIN (err %v)", err)
		case !reset && err != nil:
			t.Errorf("without reset the card should keep the PIN state, got %v; the test cannot tell", err)
		}
	}
	e.tokens.resetOnClose = true
}

func TestPINRetriesAndUnblock(t *testing.T) {
	e := newEnv(t, Options{})
	card, _ := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reader := e.pcscd.Readers[0]
	verify := func(pin string, confirmed bool) error {
		return e.tokens.Session(ctx, reader, func(s *Session) error {
			return s.VerifyPIN([]byte(pin), confirmed)
		})
	}
	var pe *PINError
	if err := verify("000000", false); !errors.As(err, &pe) || pe.Retries != 2 {
		t.Fatalf("first wrong pin: %v, want PINError with 2 retries", err)
	}
	if err := verify("000000", false); !errors.As(err, &pe) || pe.Retries != 1 {
		t.Fatalf("second wrong pin: %v, want PINError with 1 retry", err)
	}
	// One attempt left: refused without touching the counter, even for
	// the right PIN.
	for _, pin := range []string{"000000", testPIN} {
		if err := verify(pin, false); !errors.Is(err, ErrLastAttempt) {
			t.Fatalf("last attempt unconfirmed: %v, want ErrLastAttempt", err)
		}
		if n := card.PINRetries(); n != 1 {
			t.Fatalf("card retries %d after refusal, want 1", n)
		}
	}
	if err := verify("000000", true); !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("confirmed wrong last attempt: %v, want ErrPINBlocked", err)
	}
	if err := verify(testPIN, true); !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("right pin on a blocked card: %v, want ErrPINBlocked", err)
	}
	info, err := e.tokens.Info(ctx, reader)
	if err != nil || info.PINRetries != 0 {
		t.Fatalf("info of blocked card: %d retries, %v", info.PINRetries, err)
	}

	if err := e.tokens.Unblock(ctx, reader, []byte("87654321"), []byte("654321")); !errors.As(err, &pe) || !pe.PUK || pe.Retries != 2 {
		t.Fatalf("unblock with wrong puk: %v, want PUK PINError with 2 retries", err)
	}
	if err := e.tokens.Unblock(ctx, reader, []byte(testPUK), []byte("654321")); err != nil {
		t.Fatalf("unblock: %v", err)
	}
	if err := verify("654321", false); err != nil {
		t.Fatalf("new pin after unblock: %v", err)
	}
	if n := card.PINRetries(); n != 3 {
		t.Errorf("retries after unblock and verify %d, want 3", n)
	}
}

func TestRemovedDuringSign(t *testing.T) {
	e := newEnv(t, Options{})
	card, _ := newCard(t, pivsim.AlgRSA2048, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	var once sync.Once
	card.OnCommand(func(ins byte) {
		if ins == 0x87 {
			once.Do(func() { _ = card.Remove() })
		}
	})
	sum := sha256.Sum256([]byte("x"))
	start := time.Now()
	_, err := signSession(ctx, e.tokens, e.pcscd.Readers[0], sum[:], crypto.SHA256)
	if !errors.Is(err, ErrTokenRemoved) {
		t.Fatalf("sign with removal: %v, want ErrTokenRemoved", err)
	}
	t.Logf("removal during sign reported after %v: %v", time.Since(start), err)
	if ev := e.next(t, ctx); ev.Kind != Left {
		t.Errorf("event %v, want left", ev.Kind)
	}
	waitGoroutines(t, before)
}

func TestSerialized(t *testing.T) {
	e := newEnv(t, Options{})
	card, cert := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Go(func() {
			sum := sha256.Sum256([]byte{byte(i)})
			err := e.tokens.Session(ctx, e.pcscd.Readers[0], func(s *Session) error {
				n := inside.Add(1)
				defer inside.Add(-1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				if err := s.VerifyPIN([]byte(testPIN), false); err != nil {
					return err
				}
				sig, err := s.Sign(ctx, SlotSignature, sum[:], crypto.SHA256)
				if err != nil {
					return err
				}
				return verify(cert, sum[:], sig, crypto.SHA256)
			})
			errs <- err
		})
		wg.Go(func() {
			_, err := e.tokens.Info(ctx, e.pcscd.Readers[0])
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if most.Load() != 1 {
		t.Errorf("%d sessions ran at once, want 1", most.Load())
	}
}

func TestCardBusy(t *testing.T) {
	var retried atomic.Bool
	e := newEnv(t, Options{BusyWait: 300 * time.Millisecond})
	card, _ := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	reader := e.pcscd.Readers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	hold := func() (release func()) {
		c, err := establish()
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.connectExclusive(reader)
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			_ = h.disconnect(false)
			_ = c.release()
		}
	}
	release := hold()
	start := time.Now()
	if _, err := e.tokens.Info(ctx, reader); !errors.Is(err, ErrCardBusy) {
		t.Fatalf("info while another application holds the card: %v, want ErrCardBusy", err)
	}
	t.Logf("busy reported after %v", time.Since(start))
	release()

	// Released while the operation retries: it then succeeds.
	e.tokens.busyWait = 10 * time.Second
	e.tokens.log = slogFunc(func(msg string) {
		if msg == "card busy, retrying" {
			retried.Store(true)
		}
	})
	release = hold()
	done := make(chan error, 1)
	go func() {
		_, err := e.tokens.Info(ctx, reader)
		done <- err
	}()
	waitFor(t, retried.Load)
	release()
	if err := <-done; err != nil {
		t.Fatalf("info after the other application let go: %v", err)
	}
}

func TestErrorsWithoutToken(t *testing.T) {
	e := newEnv(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.tokens.Session(ctx, e.pcscd.Readers[0], func(*Session) error { return nil })
	if !errors.Is(err, ErrNoToken) {
		t.Errorf("session on an empty reader: %v, want ErrNoToken", err)
	}
	if p, err := e.tokens.Present(ctx); err != nil || len(p) != 0 {
		t.Errorf("present %q, %v; want none", p, err)
	}
	if err := e.tokens.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.Info(ctx, e.pcscd.Readers[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("info after close: %v, want ErrClosed", err)
	}
	if _, ok := <-e.tokens.Events(); ok {
		t.Error("events still open after close")
	}
}

func TestPCSCDRestart(t *testing.T) {
	e := newEnv(t, Options{BusyWait: 200 * time.Millisecond})
	card, cert := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(t, card, 0)
	reader := e.pcscd.Readers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	e.pcscd.Kill()
	if ev := e.next(t, ctx); ev.Kind != Left || ev.Reader != reader {
		t.Fatalf("after pcscd died: %v %q, want left %q", ev.Kind, ev.Reader, reader)
	}
	if _, err := e.tokens.Info(ctx, reader); !errors.Is(err, ErrPCSCUnavailable) {
		t.Errorf("info while pcscd is down: %v, want ErrPCSCUnavailable", err)
	}
	if _, err := e.tokens.Readers(ctx); !errors.Is(err, ErrPCSCUnavailable) {
		t.Errorf("readers while pcscd is down: %v, want ErrPCSCUnavailable", err)
	}
	sum := sha256.Sum256([]byte("x"))
	if _, err := signSession(ctx, e.tokens, reader, sum[:], crypto.SHA256); !errors.Is(err, ErrPCSCUnavailable) {
		t.Errorf("sign while pcscd is down: %v, want ErrPCSCUnavailable", err)
	}

	if err := e.pcscd.Restart(); err != nil {
		t.Fatal(err)
	}
	// The software token dials vpcd again, as a token stays in its reader.
	_ = card.Remove()
	e.insert(t, card, 0)
	sig, err := signSession(ctx, e.tokens, reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("sign after pcscd restart: %v", err)
	}
	if err := verify(cert, sum[:], sig, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	e.remove(t, card, 0)
}

// TestPINPolicyAlways verifies again before each signature, as the daemon
// does for a key whose policy is 'always'.
func TestPINPolicyAlways(t *testing.T) {
	e := newEnv(t, Options{})
	card, cert := newCard(t, pivsim.AlgECCP256, pivsim.PINPolicyAlways)
	e.insert(t, card, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.tokens.Session(ctx, e.pcscd.Readers[0], func(s *Session) error {
		p, err := s.SlotPINPolicy(SlotSignature)
		if err != nil || p != PINPolicyAlways {
			t.Fatalf("pin policy %v, %v; want always", p, err)
		}
		pin := []byte(testPIN)
		defer clear(pin)
		for i := range 3 {
			sum := sha256.Sum256([]byte{byte(i)})
			if err := s.VerifyPIN(pin, false); err != nil {
				return err
			}
			sig, err := s.Sign(ctx, SlotSignature, sum[:], crypto.SHA256)
			if err != nil {
				return err
			}
			if err := verify(cert, sum[:], sig, crypto.SHA256); err != nil {
				return err
			}
			if _, err := s.Sign(ctx, SlotSignature, sum[:], crypto.SHA256); !errors.Is(err, ErrPINRequired) {
				t.Errorf("second signature on one verify: %v, want ErrPINRequired", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsWatcher(t *testing.T) {
	d := testenv.StartPCSCD(t)
	before := runtime.NumGoroutine()
	for _, down := range []bool{false, true} {
		tk, err := Open(context.Background(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if down {
			d.Stop()
		}
		// Let the watcher reach its wait (or its backoff) before closing.
		if _, err := tk.Readers(context.Background()); err != nil && !down {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := tk.Close(ctx); err != nil {
			t.Fatalf("close (pcscd down %v): %v", down, err)
		}
		cancel()
		waitGoroutines(t, before)
	}
}
