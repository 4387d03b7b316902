package validation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/signature/revocation"
	"github.com/tekenid/teken/signature/tsa"
)

// letter is a one-page A4 PDF showing text.
func letter(text string) []byte { return testenv.TextPDF(text) }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// ltEnv is a chain whose OCSP responders and CRLs run on loopback
// (openssl ocsp, testenv.NewChain) and a timestamp authority (openssl ts).
type ltEnv struct {
	chain   *testenv.Chain
	tsa     *testenv.TSA
	client  *tsa.Client
	checker *revocation.Checker
}

func newLTEnv(t *testing.T) *ltEnv {
	t.Helper()
	e := &ltEnv{chain: testenv.NewChain(t), tsa: testenv.StartTSA(t, testenv.TSAConfig{})}
	c, err := tsa.New(tsa.Config{Authorities: []tsa.Authority{{URL: e.tsa.URL}}, Roots: pool(e.tsa.Cert)})
	if err != nil {
		t.Fatal(err)
	}
	e.client, e.checker = c, revocation.New(revocation.Config{})
	return e
}

// trust is what the chain's signatures verify against.
func (e *ltEnv) trust() Trust {
	return Trust{Roots: pool(e.chain.Root.Cert), TSARoots: pool(e.tsa.Cert)}
}

func (e *ltEnv) chainDER() [][]byte {
	var out [][]byte
	for _, c := range e.chain.Certs() {
		out = append(out, c.Raw)
	}
	return out
}

// signBT signs doc as the chain's leaf with a signature timestamp and
// returns the PDF and the timestamp's genTime.
func (e *ltEnv) signBT(t *testing.T, doc []byte) ([]byte, time.Time) {
	t.Helper()
	ctx := t.Context()
	s, err := pades.Sign(ctx, doc, e.chain.Leaf.Key, e.chain.Leaf.Cert, pades.Options{
		Chain: []*x509.Certificate{e.chain.Intermediate.Cert}, TSA: &pades.TSAOptions{Client: e.client}})
	if err != nil {
		t.Fatal(err)
	}
	if s, err = pades.Timestamp(ctx, s, pades.TSAOptions{Client: e.client}); err != nil || s.TimestampError != nil {
		t.Fatalf("timestamp: %v %v", err, s.TimestampError)
	}
	rep, err := pades.Verify(ctx, s.PDF, pades.VerifyOptions{Roots: e.trust().Roots, TSARoots: e.trust().TSARoots})
	if err != nil || rep.Signatures[0].TimestampTime.IsZero() {
		t.Fatalf("B-T: %v %+v", err, rep)
	}
	return s.PDF, rep.Signatures[0].TimestampTime
}

// lta makes a B-LTA PDF of a B-T one: the DSS with vd, then a document
// timestamp.
func (e *ltEnv) lta(t *testing.T, bt []byte, vd pades.ValidationData) []byte {
	t.Helper()
	lt, err := pades.AddDSS(t.Context(), bt, vd)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pades.AddDocumentTimestamp(t.Context(), lt, e.client)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// evidence is the validation data of the whole chain, fetched as tekend
// fetches it.
func (e *ltEnv) evidence(t *testing.T, after time.Time) pades.ValidationData {
	t.Helper()
	ev, err := e.checker.Check(t.Context(), e.chain.Certs(), after)
	if err != nil {
		t.Fatal(err)
	}
	vd := pades.ValidationData{Certs: e.chainDER(), OCSPs: ev.OCSPs, CRLs: ev.CRLs}
	for _, c := range ev.Certs {
		vd.Certs = append(vd.Certs, c.Raw)
	}
	return vd
}

// get fetches a URL of the test's servers.
func get(t *testing.T, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// signCMS signs doc detached as the chain's leaf, with a signature
// timestamp when stamp is set.
func (e *ltEnv) signCMS(t *testing.T, doc []byte, stamp bool) ([]byte, time.Time) {
	t.Helper()
	sig, err := cms.Sign(t.Context(), bytes.NewReader(doc), e.chain.Leaf.Key, e.chain.Leaf.Cert, cms.SignOptions{Chain: []*x509.Certificate{e.chain.Intermediate.Cert}})
	if err != nil {
		t.Fatal(err)
	}
	if !stamp {
		return sig, time.Time{}
	}
	s, err := cms.Verify(sig, doc, cms.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.client.Stamp(t.Context(), crypto.SHA256, s.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if sig, err = cms.AddSignatureTimestamp(sig, tok.DER); err != nil {
		t.Fatal(err)
	}
	return sig, tok.GenTime
}

func wantCheck(t *testing.T, sv SignatureVerdict, name string, st Status, detail string) {
	t.Helper()
	c, ok := sv.Check(name)
	if !ok || c.Status != st || !bytes.Contains([]byte(c.Detail), []byte(detail)) {
		t.Errorf("check %s = %+v, want %s with %q (all: %+v)", name, c, st, detail, sv.Checks)
	}
}
