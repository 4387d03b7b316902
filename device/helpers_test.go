package device

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/testenv"
)

const (
	testPIN = "123456"
	testPUK = "12345678"
)

// env is a private pcscd with a Tokens watching it.
type env struct {
	pcscd  *testenv.PCSCD
	tokens *Tokens
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	d := testenv.StartPCSCD(t)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tk, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tk.Close(ctx); err != nil {
			t.Errorf("close tokens: %v", err)
		}
	})
	return &env{pcscd: d, tokens: tk}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// newCard makes a software token with a key in slot 9c (and a P-256 key in
// 9a), each with a certificate from a throwaway CA.
func newCard(t testing.TB, alg pivsim.Algorithm, pp pivsim.PINPolicy) (*pivsim.Card, *x509.Certificate) {
	t.Helper()
	card, err := pivsim.New(pivsim.Config{Serial: 4242, Version: [3]byte{5, 7, 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(slot byte, alg pivsim.Algorithm, pp pivsim.PINPolicy, cn string) *x509.Certificate {
		pub, err := card.GenerateKey(slot, alg, pp, pivsim.TouchPolicyNever)
		if err != nil {
			t.Fatalf("generate key in %02x: %v", slot, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(slot)), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := card.SetCertificate(slot, der); err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	cert := issue(pivsim.SlotSignature, alg, pp, "signer")
	issue(pivsim.SlotAuthentication, pivsim.AlgECCP256, pivsim.PINPolicyOnce, "auth")
	return card, cert
}

// insert puts card into virtual reader i and waits for the Arrived event.
func (e *env) insert(t testing.TB, card *pivsim.Card, i int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := card.Insert(ctx, e.pcscd.VPCDAddr(i)); err != nil {
		t.Fatalf("insert card: %v", err)
	}
	ev := e.next(t, ctx)
	if ev.Kind != Arrived || ev.Reader != e.pcscd.Readers[i] {
		t.Fatalf("event %v %q, want arrived %q", ev.Kind, ev.Reader, e.pcscd.Readers[i])
	}
	return ev.At.Sub(start)
}

// remove takes card out and waits for the Left event.
func (e *env) remove(t testing.TB, card *pivsim.Card, i int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := card.Remove(); err != nil {
		t.Fatalf("remove card: %v", err)
	}
	ev := e.next(t, ctx)
	if ev.Kind != Left || ev.Reader != e.pcscd.Readers[i] {
		t.Fatalf("event %v %q, want left %q", ev.Kind, ev.Reader, e.pcscd.Readers[i])
	}
	return ev.At.Sub(start)
}

func (e *env) next(t testing.TB, ctx context.Context) Event {
	t.Helper()
	select {
	case ev, ok := <-e.tokens.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-ctx.Done():
		t.Fatalf("no presence event: %v", ctx.Err())
	}
	return Event{}
}

// signSession verifies the PIN and signs digest in one session.
func signSession(ctx context.Context, tk *Tokens, reader string, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var sig []byte
	err := tk.Session(ctx, reader, func(s *Session) error {
		if err := s.VerifyPIN([]byte(testPIN), false); err != nil {
			return err
		}
		var err error
		sig, err = s.Sign(ctx, SlotSignature, digest, opts)
		return err
	})
	return sig, err
}

// waitGoroutines waits until no more goroutines run than before.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), 5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return errGoroutines(n - before)
		}
		return nil
	})
	if err != nil {
		buf := make([]byte, 1<<16)
		t.Fatalf("%v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}

type errGoroutines int

func (e errGoroutines) Error() string { return "goroutines left: " + big.NewInt(int64(e)).String() }

// slogFunc is a logger that hands each message to f.
func slogFunc(f func(msg string)) *slog.Logger { return slog.New(funcHandler(f)) }

type funcHandler func(msg string)

func (h funcHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h funcHandler) Handle(_ context.Context, r slog.Record) error {
	h(r.Message)
	return nil
}
func (h funcHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h funcHandler) WithGroup(string) slog.Handler      { return h }

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		if !cond() {
			return errors.New("condition not met")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
