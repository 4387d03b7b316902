package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TSAConfig configures StartTSA; every field may be left zero.
type TSAConfig struct {
	// Cert and Key are the authority's; nil makes a self-signed pair
	// (see TSACertificate).
	Cert *x509.Certificate
	Key  crypto.Signer
	// Certs is a PEM file of certificates every token carries beside the
	// authority's own (openssl ts's certs), when the query asks for them.
	Certs string
	// Answer, when set, sees each well-formed query before it is
	// answered, and may block (the request's context ends with the
	// client); false answers 503.
	Answer func(r *http.Request) bool
}

// TSA is an RFC 3161 timestamp authority on 127.0.0.1: `openssl ts
// -reply` behind an HTTP handler, stopped when the test ends.
type TSA struct {
	URL  string
	Cert *x509.Certificate
}

// oidTimeStamping is id-kp-timeStamping (RFC 3161 §2.3).
var oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// TSAExtension is the extended key usage an authority's certificate must
// carry: timeStamping alone, critical (RFC 3161 §2.3).
func TSAExtension(t testing.TB) pkix.Extension {
	t.Helper()
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStamping})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}
}

// StartTSA runs an authority for the test.
func StartTSA(t testing.TB, cfg TSAConfig) *TSA {
	t.Helper()
	openssl := LookPath(t, "openssl")
	if cfg.Cert == nil {
		cfg.Cert, cfg.Key = selfSignedTSA(t)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(cfg.Key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPath := write("tsa.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Cert.Raw}))
	keyPath := write("tsa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	serial := write("serial", []byte("01\n"))
	var certs string
	if cfg.Certs != "" {
		certs = "certs = " + cfg.Certs + "\n"
	}
	conf := write("ts.cnf", fmt.Appendf(nil, `[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = %s
crypto_device = builtin
signer_cert = %s
%ssigner_key = %s
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`, serial, certPath, certs, keyPath))
	var mu sync.Mutex // openssl bumps the serial file
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read first: the server notices a client that went away, and
		// ends r.Context(), only once the body is read.
		q, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil || r.Header.Get("Content-Type") != "application/timestamp-query" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		if cfg.Answer != nil && !cfg.Answer(r) {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		qp, rp := filepath.Join(dir, "q.tsq"), filepath.Join(dir, "r.tsr")
		opensslAnswer(w, r, openssl, q, qp, rp, []string{"ts", "-reply", "-config", conf, "-queryfile", qp, "-out", rp}, "application/timestamp-reply")
	}))
	t.Cleanup(srv.Close)
	return &TSA{URL: srv.URL + "/tsa", Cert: cfg.Cert}
}

// selfSignedTSA makes an authority's key and self-signed certificate.
func selfSignedTSA(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Teken Test TSA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{TSAExtension(t)},
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
