package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
)

// The page state machine, driven event by event without pcscd, a broker or
// a store: each case is a sequence of steps and what the official must see
// after it.
func TestPageStateMachine(t *testing.T) {
	cert, _ := testCert(t)
	info := device.Info{Serial: 1, SignCert: cert, PINRetries: 3}
	const r1, r2 = "Reader 0", "Reader 1"

	arrive := func(reader string) step {
		return func(t *testing.T, p *page) {
			if _, ok := p.arrive(reader); !ok {
				t.Fatalf("arrive %s: refused", reader)
			}
		}
	}
	read := func(reader string, r tokenRead) step {
		return func(t *testing.T, p *page) {
			if !p.read(p.gen, reader, r) {
				t.Fatalf("read %s: not taken", reader)
			}
		}
	}
	tap := func(reader string) []step { return []step{arrive(reader), read(reader, tokenRead{info: info})} }
	leave := func(reader string) step { return func(_ *testing.T, p *page) { p.leave(reader) } }
	claim := func(t *testing.T, p *page) {
		if _, err := p.claim(true); err != nil {
			t.Fatalf("claim: %v", err)
		}
	}
	refusedClaim := func(code string) step {
		return func(t *testing.T, p *page) {
			_, err := p.claim(true)
			var ue *kiosk.UserError
			if !errors.As(err, &ue) || ue.Message.Code != code {
				t.Fatalf("claim: %v, want a refusal %s", err, code)
			}
		}
	}
	signing := func(done, total int) step { return func(_ *testing.T, p *page) { p.signing(done, total) } }
	batchDone := func(signed, total int, err error) step {
		return func(_ *testing.T, p *page) { p.batchDone(signed, total, err) }
	}
	release := func(_ *testing.T, p *page) { p.release() }
	dismiss := func(_ *testing.T, p *page) { p.dismiss() }
	seq := func(parts ...any) []step {
		var out []step
		for _, x := range parts {
			switch x := x.(type) {
			case step:
				out = append(out, x)
			case []step:
				out = append(out, x...)
			default:
				panic(fmt.Sprintf("not a step: %T", x))
			}
		}
		return out
	}
	blocked := kiosk.Message{Code: kiosk.CodePINBlocked}
	expired := &kiosk.Message{Code: kiosk.CodeCertExpired}

	for _, c := range []struct {
		name   string
		steps  []step
		screen screen
		check  func(t *testing.T, v kiosk.View)
	}{
		{"starts idle", nil, screenIdle, func(t *testing.T, v kiosk.View) {
			if v.Signer != nil || v.CanSign || v.TriesLeft != nil {
				t.Errorf("idle view %+v", v)
			}
		}},
		{"tap reads the token", seq(arrive(r1)), screenReading, nil},
		{"token read shows the signer", tap(r1), screenToken, func(t *testing.T, v kiosk.View) {
			if v.Signer == nil || v.Signer.Name != "Siti Rahmawati" || !v.CanSign || v.TriesLeft == nil || *v.TriesLeft != 3 {
				t.Errorf("token view %+v", v)
			}
		}},
		{"unreadable token is a problem", seq(arrive(r1), read(r1, tokenRead{err: device.ErrSlotEmpty})), screenProblem, func(t *testing.T, v kiosk.View) {
			if v.CanSign || v.Error == nil || v.Error.Code != kiosk.CodeSlotEmpty {
				t.Errorf("view %+v", v)
			}
		}},
		{"expired certificate is a problem", seq(arrive(r1), read(r1, tokenRead{info: info, certProblem: expired})), screenProblem, func(t *testing.T, v kiosk.View) {
			if v.CanSign || v.Error == nil || v.Error.Code != kiosk.CodeCertExpired || v.Signer == nil {
				t.Errorf("view %+v", v)
			}
		}},
		{"no tries left is a problem", seq(arrive(r1), read(r1, tokenRead{info: device.Info{SignCert: cert, PINRetries: 0}})), screenProblem, func(t *testing.T, v kiosk.View) {
			if v.Error == nil || v.Error.Code != kiosk.CodePINBlocked {
				t.Errorf("view %+v", v)
			}
		}},
		{"a problem refuses to sign", seq(arrive(r1), read(r1, tokenRead{info: info, certProblem: expired}), refusedClaim(kiosk.CodeCertExpired)), screenProblem, nil},
		{"removal goes idle", seq(tap(r1), leave(r1)), screenIdle, nil},
		{"removal of another reader changes nothing", seq(tap(r1), leave(r2)), screenToken, nil},
		{"a read for a token gone since is dropped", seq(arrive(r1), func(t *testing.T, p *page) {
			gen := p.gen
			p.leave(r1)
			if p.read(gen, r1, tokenRead{info: info}) {
				t.Fatal("stale read taken")
			}
		}), screenIdle, nil},
		{"a read for an older tap is dropped", seq(arrive(r1), func(t *testing.T, p *page) {
			old := p.gen
			p.arrive(r1)
			if p.read(old, r1, tokenRead{info: info}) {
				t.Fatal("stale read taken")
			}
		}), screenReading, nil},
		{"no token refuses to sign", seq(refusedClaim(kiosk.CodeNoToken)), screenIdle, nil},
		// Revocation at the tap: no signing until the status is in.
		{"checking the certificate's status", seq(arrive(r1), read(r1, tokenRead{info: info, checking: true}), refusedClaim(kiosk.CodeCertChecking)), screenToken, func(t *testing.T, v kiosk.View) {
			if v.CanSign || v.Notice == nil || v.Notice.Code != kiosk.CodeCertChecking || v.Signer == nil {
				t.Errorf("view %+v", v)
			}
		}},
		{"a good status lets the official sign", seq(arrive(r1), read(r1, tokenRead{info: info, checking: true}), func(t *testing.T, p *page) {
			if !p.revocationChecked(p.gen, r1, nil) {
				t.Fatal("status not taken")
			}
		}, claim), screenToken, func(t *testing.T, v kiosk.View) {
			if v.Notice != nil {
				t.Errorf("notice %+v after the check", v.Notice)
			}
		}},
		{"a revoked certificate cannot sign", seq(arrive(r1), read(r1, tokenRead{info: info, checking: true}), func(t *testing.T, p *page) {
			p.revocationChecked(p.gen, r1, &kiosk.Message{Code: kiosk.CodeCertRevoked, Params: map[string]string{"date": "2026-11-30"}})
		}, refusedClaim(kiosk.CodeCertRevoked)), screenProblem, func(t *testing.T, v kiosk.View) {
			if v.CanSign || v.Error == nil || v.Error.Params["date"] != "2026-11-30" {
				t.Errorf("view %+v", v)
			}
		}},
		{"a status for a token gone since is dropped", seq(arrive(r1), read(r1, tokenRead{info: info, checking: true}), func(t *testing.T, p *page) {
			gen := p.gen
			p.leave(r1)
			p.arrive(r1)
			p.read(p.gen, r1, tokenRead{info: info})
			if p.revocationChecked(gen, r1, &kiosk.Message{Code: kiosk.CodeCertRevoked}) {
				t.Fatal("stale status taken")
			}
		}, claim), screenToken, nil},
		{"one action at a time", seq(tap(r1), claim, refusedClaim(kiosk.CodeCardBusy)), screenToken, nil},
		{"signing shows progress", seq(tap(r1), claim, signing(1, 3)), screenSigning, func(t *testing.T, v kiosk.View) {
			if v.Progress == nil || v.Progress.Done != 1 || v.Progress.Total != 3 || v.CanSign {
				t.Errorf("view %+v", v)
			}
		}},
		{"batch done", seq(tap(r1), claim, signing(0, 2), batchDone(2, 2, nil), release), screenDone, func(t *testing.T, v kiosk.View) {
			if v.Result == nil || v.Result.Signed != 2 || v.Result.Left != 0 || v.Progress != nil {
				t.Errorf("view %+v", v)
			}
		}},
		{"dismiss goes back to the letters", seq(tap(r1), claim, batchDone(1, 1, nil), release, dismiss), screenToken, func(t *testing.T, v kiosk.View) {
			if v.Result != nil || !v.CanSign {
				t.Errorf("view %+v", v)
			}
		}},
		{"dismiss after the token left goes idle", seq(tap(r1), claim, batchDone(1, 1, nil), release, leave(r1), dismiss), screenIdle, nil},
		{"dismiss elsewhere changes nothing", seq(tap(r1), dismiss), screenToken, nil},
		{"wrong PIN says the tries left", seq(tap(r1), claim, batchDone(0, 1, &device.PINError{Retries: 2}), release), screenToken, func(t *testing.T, v kiosk.View) {
			if v.TriesLeft == nil || *v.TriesLeft != 2 || !v.CanSign {
				t.Errorf("view %+v", v)
			}
		}},
		{"the last wrong PIN blocks", seq(tap(r1), claim, batchDone(0, 1, &device.PINError{Retries: 0}), release), screenProblem, func(t *testing.T, v kiosk.View) {
			if v.Error == nil || v.Error.Code != blocked.Code || v.CanSign {
				t.Errorf("view %+v", v)
			}
		}},
		{"the last try needs confirming", seq(tap(r1), claim, batchDone(0, 1, device.ErrLastAttempt), release), screenToken, func(t *testing.T, v kiosk.View) {
			if !v.CanSign {
				t.Errorf("view %+v", v)
			}
		}},
		{"removed mid-batch keeps what was signed", seq(tap(r1), claim, signing(1, 3), leave(r1), batchDone(1, 3, device.ErrTokenRemoved), release), screenDone, func(t *testing.T, v kiosk.View) {
			if v.Result == nil || v.Result.Signed != 1 || v.Result.Left != 2 || v.Error == nil || v.Error.Code != kiosk.CodeTokenRemoved {
				t.Errorf("view %+v", v)
			}
		}},
		{"removed before any signature goes idle", seq(tap(r1), claim, leave(r1), batchDone(0, 2, device.ErrTokenRemoved), release), screenIdle, nil},
		{"a failure the official cannot act on", seq(tap(r1), claim, batchDone(0, 1, errors.New("disk on fire")), release), screenToken, func(t *testing.T, v kiosk.View) {
			if v.Error == nil || v.Error.Code != kiosk.CodeInternal {
				t.Errorf("view %+v", v)
			}
		}},
		{"a tap during a batch waits for its end", seq(tap(r1), claim, func(t *testing.T, p *page) {
			if _, ok := p.arrive(r2); ok {
				t.Fatal("arrival taken while busy")
			}
			p.batchDone(1, 1, nil)
			if got := p.release(); got != r2 {
				t.Fatalf("release returned %q, want %q to read now", got, r2)
			}
		}), screenDone, nil},
		{"a token that came and went during a batch is forgotten", seq(tap(r1), claim, func(t *testing.T, p *page) {
			p.arrive(r2)
			p.leave(r2)
			p.batchDone(1, 1, nil)
			if got := p.release(); got != "" {
				t.Fatalf("release returned %q", got)
			}
		}), screenDone, nil},
		{"the next official starts in the terminal's language", seq(tap(r1), func(_ *testing.T, p *page) { p.lang = "en" }, leave(r1)), screenIdle, func(t *testing.T, v kiosk.View) {
			if v.Lang != "id" {
				t.Errorf("lang %q", v.Lang)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPage("id")
			for _, s := range c.steps {
				s(t, &p)
			}
			if got := p.screen(); got != c.screen {
				t.Errorf("screen %s, want %s", got, c.screen)
			}
			if c.check != nil {
				c.check(t, p.view(20))
			}
		})
	}
}

type step = func(t *testing.T, p *page)

// testCert makes an official's certificate and its key, as on a token.
func testCert(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3001),
		Subject:      pkix.Name{CommonName: "Siti Rahmawati", SerialNumber: "198703152010012003"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
