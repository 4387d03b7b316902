package ctl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/pades"
)

// The verification itself is tested in package validation; these tests
// keep ctl's names (internal/demo's) working.

// testCA issues signer certificates for the verify tests.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Teken Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) official(t *testing.T, name string) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name, SerialNumber: "198703152010012003"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestVerifyAliases(t *testing.T) {
	ca := newTestCA(t)
	key, cert := ca.official(t, "Siti Rahmawati")
	letter := testLetter("Undangan Rapat")
	signed, err := pades.Sign(t.Context(), letter, key, cert, pades.Options{Visible: &pades.Appearance{}})
	if err != nil {
		t.Fatal(err)
	}
	d := api.SignedDocument{ID: "surat", SHA256: sha(letter), Format: api.FormatPAdES, Signature: signed.PDF, Level: api.LevelBB}
	v := VerifyDocument(t.Context(), d, letter, cert, Trust{Roots: ca.pool})
	if !v.Valid() || len(v.Signatures) != 1 || v.Signatures[0].Level != "B-B" || len(v.Signatures[0].Checks) != 5 {
		t.Fatalf("verdict %+v", v)
	}
	if v := VerifyPDF(t.Context(), signed.PDF, Trust{Roots: newTestCA(t).pool}); v.Status != StatusIndeterminate || !strings.Contains(v.Signatures[0].Reason, "unknown CA") {
		t.Errorf("another CA: %+v", v)
	}
	var text bytes.Buffer
	if err := WriteVerdicts(&text, []Verdict{v}, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verdict: VALID", "signature 1, field Signature1: VALID", "level:     B-B", "the whole file", "  integrity:  VALID"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}
