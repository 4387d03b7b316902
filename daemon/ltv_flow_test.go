package daemon

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/signature/revocation"
	"github.com/tekenid/teken/signature/tsa"
)

// ltvFlow is the flow rig taken to a level with real parts on loopback:
// an official's certificate under a CA hierarchy whose certificates name
// `openssl ocsp` responders and CRLs, and `openssl ts` as the timestamp
// authority, its certificate under the same root.
type ltvFlow struct {
	*flowRig
	chain *testenv.Chain
	roots *x509.CertPool
	tsa   *testenv.TSA
}

func newLTVFlow(t *testing.T, level string) *ltvFlow {
	t.Helper()
	r := newFlowRig(t, device.PINPolicyAlways)
	chain := testenv.NewChain(t)
	key, ok := chain.Leaf.Key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("leaf key %T", chain.Leaf.Key)
	}
	r.card.cert, r.card.key = chain.Leaf.Cert, key
	sum := sha256.Sum256(chain.Leaf.Cert.Raw)
	r.signer = hex.EncodeToString(sum[:])
	roots := x509.NewCertPool()
	roots.AddCert(chain.Root.Cert)

	authority := chain.StartTSA(t, nil)
	client, err := tsa.New(tsa.Config{Authorities: []tsa.Authority{{URL: authority.URL}}, Roots: roots, MaxSkew: 5 * time.Minute, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	checker := revocation.New(revocation.Config{Timeout: 20 * time.Second})
	log := slog.New(slog.DiscardHandler)
	anchors := x509.NewCertPool()
	anchors.AddCert(chain.Root.Cert)
	anchors.AddCert(chain.Intermediate.Cert) // signer_ca_files = [root, issuing CA]
	cas := []*x509.Certificate{chain.Root.Cert, chain.Intermediate.Cert}
	rootsOf := func() (*x509.CertPool, []*x509.Certificate) { return anchors, cas }
	r.flow.certs = certPolicy{roots: anchors, now: r.clock.now, log: log}
	r.flow.signer.parts = &ltvParts{level: level, explicit: true, tsa: client, tsaRoots: roots, revocation: checker}
	r.flow.signer.signerCAs, r.flow.signer.revocationTimeout = rootsOf, 20*time.Second
	r.flow.tapCheck = &tapCheck{checker: checker, timeout: 20 * time.Second, cas: rootsOf, now: r.clock.now, log: log}
	return &ltvFlow{flowRig: r, chain: chain, roots: roots, tsa: authority}
}

// tap puts the token on the reader and waits for its revocation check.
func (l *ltvFlow) tap(t *testing.T) kiosk.View {
	t.Helper()
	l.flow.presence(l.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	l.flow.wait()
	l.flow.mu.Lock()
	defer l.flow.mu.Unlock()
	return l.flow.p.view(20)
}

// A PDF is taken to B-LTA and a cms signature to B-LT after the card
// session: the result says so, and what it carries verifies as such.
func TestLevelsAfterTheCardSession(t *testing.T) {
	l := newLTVFlow(t, api.LevelBLTA)
	pdfs := l.storePAdES(t, 1)
	plain := l.storeJob(t, l.signer, 1)
	if v := l.tap(t); !v.CanSign {
		t.Fatalf("after the tap: %+v", v)
	}
	l.read(t, pdfs, plain)
	if err := l.flow.Sign(l.ctx, []string{pdfs, plain}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	for _, res := range l.results(t) {
		for _, d := range res.Documents {
			switch d.Format {
			case api.FormatPAdES:
				if d.Level != api.LevelBLTA || d.LevelError != "" {
					t.Fatalf("pades document: level %s, level error %q", d.Level, d.LevelError)
				}
				rep, err := pades.Verify(l.ctx, d.Signature, pades.VerifyOptions{Roots: l.roots})
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Signatures) != 2 || rep.Signatures[0].Level != api.LevelBLTA || !rep.Valid() ||
					rep.Signatures[1].Kind != pades.KindDocumentTimestamp {
					t.Errorf("pades.Verify: %+v", rep.Signatures)
				}
			case api.FormatCMS:
				if d.Level != api.LevelBLT || d.LevelError != "" {
					t.Fatalf("cms document: level %s, level error %q", d.Level, d.LevelError)
				}
				certs, crls, ocsps, err := cms.ValidationValues(d.Signature)
				if err != nil || len(certs) < 3 || len(crls)+len(ocsps) < 2 {
					t.Errorf("cms validation values: %d certificates, %d CRLs, %d OCSP, %v", len(certs), len(crls), len(ocsps), err)
				}
				if ts, err := cms.SignatureTimestamps(d.Signature); err != nil || len(ts) != 1 {
					t.Errorf("cms signature timestamps: %d %v", len(ts), err)
				}
			}
		}
	}
}

// With the responders down the signature stops at B-T, and the result says
// why; it is still sent as signed, valid at the level it names.
func TestLevelNotReached(t *testing.T) {
	l := newLTVFlow(t, api.LevelBLTA)
	id := l.storePAdES(t, 1)
	l.tap(t)
	l.chain.IntermediateOCSP.Close()
	l.chain.RootOCSP.Close()
	l.flow.signer.parts.revocation = revocation.New(revocation.Config{Timeout: 20 * time.Second, Responder: l.chain.RootOCSP.URL})
	l.read(t, id)
	if err := l.flow.Sign(l.ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	d := l.onlyResult(t).Documents[0]
	if d.Level != api.LevelBT || !strings.Contains(d.LevelError, "B-LTA not reached") || !strings.Contains(d.LevelError, "revocation") {
		t.Fatalf("document: level %s, level error %q", d.Level, d.LevelError)
	}
	rep, err := pades.Verify(l.ctx, d.Signature, pades.VerifyOptions{Roots: l.roots})
	if err != nil || len(rep.Signatures) != 1 || rep.Signatures[0].Level != api.LevelBT {
		t.Fatalf("pades.Verify: %+v %v", rep, err)
	}
}

// A revoked certificate cannot sign: the official reads why before the
// PIN, and no PIN reaches the card.
func TestRevokedAtTheTap(t *testing.T) {
	l := newLTVFlow(t, api.LevelBT)
	id := l.storeJob(t, l.signer, 1)
	l.chain.IntermediateOCSP.Revoke(l.chain.Leaf.Cert)
	v := l.tap(t)
	if v.CanSign || v.Error == nil || v.Error.Code != kiosk.CodeCertRevoked || v.Error.Params["date"] == "" {
		t.Fatalf("after the tap: %+v", v)
	}
	l.read(t, id)
	err := l.flow.Sign(l.ctx, []string{id}, []byte("123456"), false)
	if ue, ok := err.(*kiosk.UserError); !ok || ue.Message.Code != kiosk.CodeCertRevoked {
		t.Fatalf("sign: %v", err)
	}
	if l.card.verifies != 0 {
		t.Errorf("PIN verified %d times for a revoked certificate", l.card.verifies)
	}
}

// With signing.require_level a letter whose PDF cannot reach the level is
// signed and kept, not sent; once the responders answer again the held
// result is taken to the level and released to the outbox.
func TestRequiredLevelHoldsTheResult(t *testing.T) {
	l := newLTVFlow(t, api.LevelBLTA)
	l.flow.signer.parts.require = true
	up := l.flow.signer.parts.revocation
	l.flow.signer.parts.revocation = revocation.New(revocation.Config{Timeout: 5 * time.Second, Responder: "http://127.0.0.1:1/ocsp"})
	id := l.storePAdES(t, 1)
	l.tap(t)
	l.read(t, id)
	if err := l.flow.Sign(l.ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	if res := l.results(t); len(res) != 0 {
		t.Fatalf("%d results sent below the required level", len(res))
	}
	held, err := l.store.HeldResults(l.ctx, 10)
	if err != nil || len(held) != 1 || held[0].JobID != id {
		t.Fatalf("held: %+v %v", held, err)
	}
	if res, err := api.DecodeResult(held[0].Payload); err != nil || res.Documents[0].LevelError == "" {
		t.Fatalf("held result: %v", err)
	} else {
		t.Logf("held: level %s, %s", res.Documents[0].Level, res.Documents[0].LevelError)
	}
	if s, err := l.intake.SyncState(l.ctx); err != nil || !slices.Contains(s.JobsWaiting, id) || slices.Contains(s.ResultsUndelivered, id) {
		t.Fatalf("sync while held: %+v %v, want the job in jobs_waiting", s, err)
	}
	// Still down: nothing is released.
	if n, err := l.flow.signer.releaseHeld(l.ctx, l.store); err != nil || n != 0 {
		t.Fatalf("release while down: %d %v", n, err)
	}
	l.flow.signer.parts.revocation = up
	if n, err := l.flow.signer.releaseHeld(l.ctx, l.store); err != nil || n != 1 {
		t.Fatalf("release once up: %d %v", n, err)
	}
	d := l.onlyResult(t).Documents[0]
	if d.Level != api.LevelBLTA || d.LevelError != "" {
		t.Fatalf("released document: level %s, level error %q", d.Level, d.LevelError)
	}
	rep, err := pades.Verify(l.ctx, d.Signature, pades.VerifyOptions{Roots: l.roots})
	if err != nil || !rep.Valid() || rep.Signatures[0].Level != api.LevelBLTA {
		t.Fatalf("pades.Verify of the released PDF: %+v %v", rep, err)
	}
}
