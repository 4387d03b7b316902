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
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// oidSignatureTimeStamp is id-aa-signatureTimeStampToken (RFC 3161
// appendix A).
var oidSignatureTimeStamp = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}

// startTSA runs an RFC 3161 authority on loopback: `openssl ts -reply`
// behind an HTTP handler, with a certificate from p whose extended key
// usage is timeStamping, critical (RFC 3161 §2.3).
func startTSA(t *testing.T, p *pki) string {
	t.Helper()
	openssl := need(t, "openssl", "openssl")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	cert := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Teken Test TSA"}
		c.KeyUsage = x509.KeyUsageDigitalSignature
		c.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}}
	})
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath := writePEM(t, "tsa.key", "PRIVATE KEY", pkcs8)
	certPath := writePEM(t, "tsa.pem", "CERTIFICATE", cert.Raw)
	serial := filepath.Join(dir, "serial")
	if err := os.WriteFile(serial, []byte("01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ts.cnf")
	conf := fmt.Sprintf(`[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = %s
crypto_device = builtin
signer_cert = %s
certs = %s
signer_key = %s
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`, serial, certPath, p.caPEM, keyPath)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // openssl bumps the serial file
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		q, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil || r.Header.Get("Content-Type") != "application/timestamp-query" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		qd := t.TempDir()
		qp, rp := filepath.Join(qd, "q.tsq"), filepath.Join(qd, "r.tsr")
		if err := os.WriteFile(qp, q, 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out, err := exec.CommandContext(r.Context(), openssl, "ts", "-reply", "-config", cfg, "-queryfile", qp, "-out", rp).CombinedOutput()
		if err != nil {
			http.Error(w, string(out), http.StatusInternalServerError)
			return
		}
		resp, err := os.ReadFile(rp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
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

func TestTimestamp(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	url := startTSA(t, p)
	for _, key := range []string{"p256", "p384", "rsa"} {
		t.Run(key, func(t *testing.T) {
			res, _ := sign(t, p, testPDF(1), key, Options{TSA: &TSAOptions{URL: url, Timeout: 30 * time.Second}, Visible: &Appearance{}})
			if !res.Timestamped || res.TimestampError != nil {
				t.Fatalf("not timestamped: %v", res.TimestampError)
			}
			_, der := extract(t, res.PDF)
			oid, _ := asn1.Marshal(oidSignatureTimeStamp)
			if !bytes.Contains(der, oid) {
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
			report := pdfsig(t, nss, res.PDF)
			sigs := signatures(report)
			if len(sigs) != 1 || !strings.Contains(sigs[0], "Signature Validation: Signature is Valid.") || !strings.Contains(sigs[0], "Total document signed") {
				t.Fatalf("pdfsig:\n%s", report)
			}
			qpdfCheck(t, res.PDF)
		})
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
			res, _ := sign(t, p, testPDF(1), "p256", Options{TSA: &TSAOptions{URL: tc.url, Timeout: 5 * time.Second}})
			if res.Timestamped || !errors.Is(res.TimestampError, ErrTimestamp) {
				t.Fatalf("Timestamped %v, error %v; want false and ErrTimestamp", res.Timestamped, res.TimestampError)
			}
			report := pdfsig(t, nss, res.PDF)
			if !strings.Contains(report, "Signature Validation: Signature is Valid.") {
				t.Fatalf("pdfsig:\n%s", report)
			}
		})
	}
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
	res, _ := sign(t, p, testPDF(1), "p256", Options{TSA: &TSAOptions{URL: slow.URL, Timeout: 200 * time.Millisecond}})
	if res.Timestamped || !errors.Is(res.TimestampError, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", res.TimestampError)
	}
}
