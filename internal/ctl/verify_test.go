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
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

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

func TestVerifyPAdESResult(t *testing.T) {
	ca := newTestCA(t)
	key, cert := ca.official(t, "Siti Rahmawati")
	letter := testLetter("Undangan Rapat")
	signed, err := pades.Sign(t.Context(), letter, key, cert, pades.Options{Visible: &pades.Appearance{}})
	if err != nil {
		t.Fatal(err)
	}
	d := api.SignedDocument{ID: "surat", SHA256: sha(letter), Format: api.FormatPAdES, Signature: signed.PDF, Level: api.LevelBB}
	trust := Trust{Roots: ca.pool}

	v := VerifyDocument(t.Context(), d, letter, cert, trust)
	if !v.Valid() || len(v.Signatures) != 1 || v.Signatures[0].Signer != "Siti Rahmawati" || v.Signatures[0].Level != "B-B" || v.DocumentID != "surat" {
		t.Fatalf("verdict %+v", v)
	}

	_, otherCert := ca.official(t, "Another Official")
	other := testLetter("Nota Dinas")
	for name, tc := range map[string]struct {
		content []byte
		signer  *x509.Certificate
		want    string
	}{
		"another document": {other, cert, "does not begin with the document as dispatched"},
		"another signer":   {letter, otherCert, "not by the result's signer certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			v := VerifyDocument(t.Context(), d, tc.content, tc.signer, trust)
			if v.Status != StatusInvalid || !strings.Contains(v.Reason, tc.want) {
				t.Fatalf("verdict %+v, want INVALID with %q", v, tc.want)
			}
		})
	}
	// The unsigned letter as its own "signed PDF" adds no signature.
	if v := VerifyDocument(t.Context(), api.SignedDocument{ID: "surat", Format: api.FormatPAdES, Signature: letter}, letter, cert, trust); v.Status != StatusInvalid {
		t.Errorf("an unsigned PDF: %+v", v)
	}
	if v := VerifyPDF(t.Context(), signed.PDF, Trust{Roots: newTestCA(t).pool}); v.Status != StatusIndeterminate || !strings.Contains(v.Signatures[0].Reason, "unknown CA") {
		t.Errorf("another CA: %+v", v)
	}
}

func TestVerifyCMSVerdicts(t *testing.T) {
	ca := newTestCA(t)
	key, cert := ca.official(t, "Siti Rahmawati")
	doc := []byte("%PDF-1.7\nSurat\n")
	sig, err := cms.Sign(t.Context(), bytes.NewReader(doc), key, cert, cms.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		content []byte
		trust   Trust
		want    Status
	}{
		"valid":       {doc, Trust{Roots: ca.pool}, StatusValid},
		"no bundle":   {doc, Trust{}, StatusIndeterminate},
		"another CA":  {doc, Trust{Roots: newTestCA(t).pool}, StatusIndeterminate},
		"expired now": {doc, Trust{Roots: ca.pool, Now: time.Now().Add(2 * time.Hour)}, StatusIndeterminate},
		"changed":     {append(bytes.Clone(doc), ' '), Trust{Roots: ca.pool}, StatusInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			if v := VerifyCMS(sig, tc.content, tc.trust); v.Status != tc.want || (tc.want != StatusValid && v.Signatures[0].Reason == "") {
				t.Fatalf("verdict %+v, want %s", v, tc.want)
			}
		})
	}
}

func TestWriteVerdicts(t *testing.T) {
	yes := true
	when := time.Date(2026, 11, 26, 6, 5, 0, 0, time.UTC)
	vs := []Verdict{{Document: "signed/x.pdf", Format: api.FormatPAdES, Status: StatusInvalid, Signatures: []SignatureVerdict{
		{Field: "Signature1", Kind: "signature", Status: StatusValid, Signer: "Siti\x1b[2J Rahmawati", NIP: "1987", SigningTime: &when, Level: "B-B", ByteRange: []int{0, 10, 20, 30}, CoversWholeFile: &yes},
		{Field: "Signature2\u202e", Kind: "signature", Status: StatusInvalid, Reason: "does not cover the whole file"},
	}}}
	var text bytes.Buffer
	if err := WriteVerdicts(&text, vs, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"signed/x.pdf (pades)", "verdict: INVALID", "signature 1, field Signature1: VALID", `Siti\u001b[2J Rahmawati (NIP 1987)`,
		"level:     B-B", "the whole file (50 bytes)", `field Signature2\u202e: INVALID: does not cover the whole file`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := WriteVerdicts(&js, vs, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	sigs, _ := got["signatures"].([]any)
	first, _ := sigs[0].(map[string]any)
	if got["status"] != "INVALID" || got["file"] != "signed/x.pdf" || got["format"] != "pades" || len(sigs) != 2 ||
		first["signing_time"] != "2026-11-26T06:05:00Z" || first["covers_whole_file"] != true || first["nip"] != "1987" {
		t.Errorf("JSON %s", js.String())
	}
}
