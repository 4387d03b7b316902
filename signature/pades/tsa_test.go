package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/tsa"
)

// oidSignatureTimeStamp is id-aa-signatureTimeStampToken (RFC 3161
// appendix A).
var oidSignatureTimeStamp = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}

// testTSA is an RFC 3161 authority on loopback: `openssl ts -reply` behind
// an HTTP handler, with a certificate from p whose extended key usage is
// timeStamping, critical (RFC 3161 §2.3). calls counts the queries.
type testTSA struct {
	URL   string
	calls atomic.Int64
}

// startTSA runs a testTSA; extra certificates go into every token beside
// the authority's own (openssl ts's certs, sent as the query asks for
// certificates).
func startTSA(t *testing.T, p *pki, extra ...*x509.Certificate) *testTSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Teken Test TSA"}
		c.KeyUsage = x509.KeyUsageDigitalSignature
		c.ExtraExtensions = []pkix.Extension{testenv.TSAExtension(t)}
	})
	certs := p.caPEM
	if len(extra) > 0 {
		bundle, err := os.ReadFile(p.caPEM)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range extra {
			bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		certs = writeTemp(t, "certs.pem", bundle)
	}
	tsa := &testTSA{}
	tsa.URL = testenv.StartTSA(t, testenv.TSAConfig{Cert: cert, Key: key, Certs: certs,
		Answer: func(*http.Request) bool { tsa.calls.Add(1); return true }}).URL
	return tsa
}

// closedURL is a loopback address nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/tsa"
}

// authorityAt is TSAOptions for the one authority at url, each attempt
// within timeout (zero: 30 seconds, room for openssl on a loaded machine).
func authorityAt(t testing.TB, url string, timeout ...time.Duration) *TSAOptions {
	t.Helper()
	cfg := tsa.Config{Authorities: []tsa.Authority{{URL: url}}, Timeout: 30 * time.Second}
	if len(timeout) > 0 {
		cfg.Timeout = timeout[0]
	}
	c, err := tsa.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &TSAOptions{Client: c}
}

// tripwire is an authority that must never be asked: Sign with
// Options.TSA set reserves room but makes no request.
func tripwire(t *testing.T) *TSAOptions {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("Sign asked the timestamp authority")
		http.Error(w, "no", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return authorityAt(t, srv.URL, 5*time.Second)
}

// signReserved signs with room for a timestamp, checks the result is a
// plain B-B that pdfsig accepts, and returns it with a copy of its bytes.
func signReserved(t *testing.T, p *pki, nss string, in []byte, kind string, opts Options) (*Signed, []byte) {
	t.Helper()
	opts.TSA = tripwire(t)
	res, _ := sign(t, p, in, kind, opts)
	if res.Timestamped || res.TimestampError != nil {
		t.Fatalf("Sign: Timestamped %v, TimestampError %v; want neither", res.Timestamped, res.TimestampError)
	}
	if _, der := extract(t, res.PDF); hasTimestamp(der) {
		t.Fatal("Sign wrote a signature-time-stamp")
	}
	validSignatures(t, nss, res.PDF, 1)
	return res, bytes.Clone(res.PDF)
}

// validSignatures checks pdfsig finds n signatures, all valid, the last
// covering the whole document.
func validSignatures(t *testing.T, nss string, pdf []byte, n int) {
	t.Helper()
	report := pdfsig(t, nss, pdf)
	sigs := signatures(report)
	if len(sigs) != n {
		t.Fatalf("pdfsig found %d signatures, want %d:\n%s", len(sigs), n, report)
	}
	for i, s := range sigs {
		if !strings.Contains(s, "Signature Validation: Signature is Valid.") {
			t.Fatalf("pdfsig: signature %d not valid:\n%s", i+1, report)
		}
	}
	if !strings.Contains(sigs[n-1], "Total document signed") {
		t.Fatalf("pdfsig: last signature does not cover the document:\n%s", report)
	}
}

// sameOutsideContents checks that after differs from before only inside
// the /Contents hex string of the last signature, and that the
// SignerInfo's signed attributes and signature value did not change.
func sameOutsideContents(t *testing.T, before, after []byte) {
	t.Helper()
	if len(after) != len(before) {
		t.Fatalf("length changed from %d to %d", len(before), len(after))
	}
	i := bytes.LastIndex(before, []byte("/ByteRange ["))
	var br [4]int
	if _, err := fmt.Sscanf(string(before[i+len("/ByteRange "):]), "[%d %d %d %d]", &br[0], &br[1], &br[2], &br[3]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before[:br[1]+1], after[:br[1]+1]) || !bytes.Equal(before[br[2]-1:], after[br[2]-1:]) {
		t.Fatal("bytes outside the /Contents hex string changed")
	}
	_, oldDER := extract(t, before)
	_, newDER := extract(t, after)
	if !bytes.Equal(signedPart(t, oldDER), signedPart(t, newDER)) {
		t.Fatal("the signed attributes or the signature value changed")
	}
}

// signedPart is the SignerInfo from its version to its signature value:
// everything of it the signer made.
func signedPart(t *testing.T, der []byte) []byte {
	t.Helper()
	var ci, sd, infos, si cryptobyte.String
	s := cryptobyte.String(der)
	ok := s.ReadASN1(&ci, cbasn1.SEQUENCE) && ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) &&
		ci.ReadASN1(&ci, cbasn1.Tag(0).ContextSpecific().Constructed()) && ci.ReadASN1(&sd, cbasn1.SEQUENCE) &&
		sd.SkipASN1(cbasn1.INTEGER) && sd.SkipASN1(cbasn1.SET) && sd.SkipASN1(cbasn1.SEQUENCE) &&
		sd.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) && sd.ReadASN1(&infos, cbasn1.SET) &&
		infos.ReadASN1(&si, cbasn1.SEQUENCE)
	if !ok {
		t.Fatal("no SignerInfo")
	}
	whole := []byte(si)
	ok = si.SkipASN1(cbasn1.INTEGER) && si.SkipASN1(cbasn1.SEQUENCE) && si.SkipASN1(cbasn1.SEQUENCE) &&
		si.SkipASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) && si.SkipASN1(cbasn1.SEQUENCE) && si.SkipASN1(cbasn1.OCTET_STRING)
	if !ok {
		t.Fatal("SignerInfo does not parse")
	}
	return whole[:len(whole)-len(si)]
}

func hasTimestamp(der []byte) bool {
	oid, _ := asn1.Marshal(oidSignatureTimeStamp)
	return bytes.Contains(der, oid)
}

// Sign reserves room and asks no authority; Timestamp then adds the token
// in place: pdfsig accepts the signature before and after, nothing outside
// /Contents moves, and the token stamps the unchanged signature value.
func TestTimestamp(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	tsa := startTSA(t, p)
	for _, key := range []string{"p256", "p384", "rsa"} {
		t.Run(key, func(t *testing.T) {
			res, before := signReserved(t, p, nss, testPDF(1), key, Options{Visible: &Appearance{}})
			calls := tsa.calls.Load()
			got, err := Timestamp(context.Background(), res, *authorityAt(t, tsa.URL))
			if err != nil {
				t.Fatal(err)
			}
			if got != res || !res.Timestamped || res.TimestampError != nil {
				t.Fatalf("not timestamped: %v", res.TimestampError)
			}
			if n := tsa.calls.Load() - calls; n != 1 {
				t.Fatalf("authority asked %d times, want 1", n)
			}
			sameOutsideContents(t, before, res.PDF)
			_, der := extract(t, res.PDF)
			if !hasTimestamp(der) {
				t.Fatal("CMS has no signature-time-stamp attribute")
			}
			sig, token := signatureAndToken(t, der)
			h := crypto.SHA256
			if key == "p384" {
				h = crypto.SHA384
			}
			d := h.New()
			d.Write(sig)
			out, err := run(t, "openssl", "ts", "-verify", "-token_in", "-in", writeTemp(t, "token.der", token),
				"-digest", hex.EncodeToString(d.Sum(nil)), "-CAfile", p.caPEM)
			if err != nil || !strings.Contains(out, "Verification: OK") {
				t.Fatalf("openssl ts -verify: %v\n%s", err, out)
			}
			validSignatures(t, nss, res.PDF, 1)
			qpdfCheck(t, res.PDF)
		})
	}
}

// A signed PDF kept as bytes alone (no Signed from Sign) is stamped too:
// Timestamp finds the signature that covers the whole file from its
// /ByteRange, and a signature before it stays valid.
func TestTimestampFindsTheLastSignature(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	tsa := startTSA(t, p)
	first, _ := signReserved(t, p, nss, testPDF(2), "p256", Options{})
	second, _ := sign(t, p, first.PDF, "rsa", Options{TSA: tripwire(t), Visible: &Appearance{}})
	before := bytes.Clone(second.PDF)
	stored := &Signed{PDF: bytes.Clone(second.PDF)}
	if _, err := Timestamp(context.Background(), stored, *authorityAt(t, tsa.URL)); err != nil {
		t.Fatal(err)
	}
	if !stored.Timestamped {
		t.Fatalf("not timestamped: %v", stored.TimestampError)
	}
	sameOutsideContents(t, before, stored.PDF)
	if !bytes.Equal(stored.PDF[:len(first.PDF)], first.PDF) {
		t.Fatal("the first signed revision changed")
	}
	validSignatures(t, nss, stored.PDF, 2)
	qpdfCheck(t, stored.PDF)
}

// What is not a signed PDF of this package, or no longer the bytes that
// were signed, is refused before the authority is asked.
func TestTimestampRefusesWhatItCannotStamp(t *testing.T) {
	p := newPKI(t)
	tsa := startTSA(t, p)
	signed, _ := sign(t, p, testPDF(1), "p256", Options{TSA: tripwire(t)})
	changed := bytes.Clone(signed.PDF)
	changed[bytes.Index(changed, []byte("halaman 1"))+len("halaman ")] = '9'
	for _, tc := range []struct {
		name string
		s    *Signed
	}{
		{"unsigned", &Signed{PDF: testPDF(1)}},
		{"changed after signing, as found", &Signed{PDF: bytes.Clone(changed)}},
		{"changed after signing, as signed", &Signed{PDF: bytes.Clone(changed), contents: signed.contents}},
		{"appended to after signing", &Signed{PDF: append(bytes.Clone(signed.PDF), "% more\n"...)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := bytes.Clone(tc.s.PDF)
			got, err := Timestamp(context.Background(), tc.s, *authorityAt(t, tsa.URL, 5*time.Second))
			if !errors.Is(err, ErrMalformed) || got != nil {
				t.Fatalf("Timestamp: %v; want ErrMalformed", err)
			}
			if !bytes.Equal(before, tc.s.PDF) || tc.s.Timestamped {
				t.Fatal("a refused PDF was changed")
			}
		})
	}
	if n := tsa.calls.Load(); n != 0 {
		t.Fatalf("authority asked %d times for PDFs that cannot be stamped", n)
	}
}

func TestTimestampUnavailableStaysBB(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(refuse.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("not a timestamp response"))
	}))
	t.Cleanup(garbage.Close)
	for _, tc := range []struct{ name, url string }{
		{"connection refused", closedURL(t)},
		{"http 503", refuse.URL},
		{"garbage answer", garbage.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, before := signReserved(t, p, nss, testPDF(1), "p256", Options{})
			got, err := Timestamp(context.Background(), res, *authorityAt(t, tc.url, 5*time.Second))
			if err != nil || got != res {
				t.Fatalf("Timestamp: %v", err)
			}
			if res.Timestamped || !errors.Is(res.TimestampError, ErrTimestamp) || !errors.Is(res.TimestampError, tsa.ErrTimestamp) {
				t.Fatalf("Timestamped %v, error %v; want false, ErrTimestamp and tsa.ErrTimestamp", res.Timestamped, res.TimestampError)
			}
			if !strings.Contains(res.TimestampError.Error(), tc.url) {
				t.Fatalf("%v: does not name the authority", res.TimestampError)
			}
			if !bytes.Equal(before, res.PDF) {
				t.Fatal("a failed timestamp changed the PDF")
			}
			validSignatures(t, nss, res.PDF, 1)
		})
	}
}

// A token larger than the room Sign reserved is not written: the PDF
// stays the valid B-B it was, and the error says why.
func TestTimestampTooLargeStaysBB(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	filler, err := asn1.Marshal(make([]byte, 2*reserveTSA))
	if err != nil {
		t.Fatal(err)
	}
	// An intermediate the authority sends along, larger than the room.
	bulky := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Teken Test Bulky Intermediate"}
		c.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1}, Value: filler}}
	})
	tsa := startTSA(t, p, bulky)
	res, before := signReserved(t, p, nss, testPDF(1), "p256", Options{})
	got, err := Timestamp(context.Background(), res, *authorityAt(t, tsa.URL))
	if err != nil || got != res {
		t.Fatalf("Timestamp: %v", err)
	}
	if tsa.calls.Load() != 1 {
		t.Fatalf("authority asked %d times, want 1", tsa.calls.Load())
	}
	if res.Timestamped || !errors.Is(res.TimestampError, ErrTimestamp) || !errors.Is(res.TimestampError, ErrTooLarge) {
		t.Fatalf("Timestamped %v, error %v; want ErrTimestamp and ErrTooLarge", res.Timestamped, res.TimestampError)
	}
	t.Log(res.TimestampError)
	if !bytes.Equal(before, res.PDF) {
		t.Fatal("a token that does not fit changed the PDF")
	}
	validSignatures(t, nss, res.PDF, 1)
	qpdfCheck(t, res.PDF)
}

func TestTimestampStopsWithContext(t *testing.T) {
	p := newPKI(t)
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); slow.Close() })
	res, _ := sign(t, p, testPDF(1), "p256", Options{TSA: tripwire(t)})
	if _, err := Timestamp(context.Background(), res, *authorityAt(t, slow.URL, 200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if res.Timestamped || !errors.Is(res.TimestampError, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", res.TimestampError)
	}
}

// signatureAndToken walks the SignedData (RFC 5652 §5) to the signature
// value and the signature-time-stamp token of its only SignerInfo.
func signatureAndToken(t *testing.T, der []byte) ([]byte, []byte) {
	t.Helper()
	var ci, sd, infos, si, sig, unsigned, attr, set, token cryptobyte.String
	s := cryptobyte.String(der)
	ok := s.ReadASN1(&ci, cbasn1.SEQUENCE) && ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) &&
		ci.ReadASN1(&ci, cbasn1.Tag(0).ContextSpecific().Constructed()) && ci.ReadASN1(&sd, cbasn1.SEQUENCE) &&
		sd.SkipASN1(cbasn1.INTEGER) && sd.SkipASN1(cbasn1.SET) && sd.SkipASN1(cbasn1.SEQUENCE) &&
		sd.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) && sd.ReadASN1(&infos, cbasn1.SET) &&
		infos.ReadASN1(&si, cbasn1.SEQUENCE) && si.SkipASN1(cbasn1.INTEGER) && si.SkipASN1(cbasn1.SEQUENCE) &&
		si.SkipASN1(cbasn1.SEQUENCE) && si.SkipASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) &&
		si.SkipASN1(cbasn1.SEQUENCE) && si.ReadASN1(&sig, cbasn1.OCTET_STRING) &&
		si.ReadASN1(&unsigned, cbasn1.Tag(1).ContextSpecific().Constructed()) && unsigned.ReadASN1(&attr, cbasn1.SEQUENCE)
	var oid asn1.ObjectIdentifier
	ok = ok && attr.ReadASN1ObjectIdentifier(&oid) && attr.ReadASN1(&set, cbasn1.SET) && set.ReadASN1Element(&token, cbasn1.SEQUENCE)
	if !ok || !oid.Equal(oidSignatureTimeStamp) {
		t.Fatal("no signature-time-stamp attribute in the SignerInfo")
	}
	return sig, token
}
