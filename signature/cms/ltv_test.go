package cms

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// validationData makes, for cert under pki, an OCSP response signed by the
// intermediate CA and the intermediate's CRL.
func validationData(t testing.TB, pki *testPKI, cert *x509.Certificate) (ocspDER, crlDER []byte) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	ocspDER, err := ocsp.CreateResponse(pki.inter, pki.inter, ocsp.Response{
		Status: ocsp.Good, SerialNumber: cert.SerialNumber, ThisUpdate: now, NextUpdate: now.Add(time.Hour),
	}, pki.interKey)
	if err != nil {
		t.Fatal(err)
	}
	crlDER, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
	}, pki.inter, pki.interKey)
	if err != nil {
		t.Fatal(err)
	}
	return ocspDER, crlDER
}

// TestAddValidationData: the certificate and revocation values go in as
// CAdES unsigned attributes, read back as they were, and openssl still
// verifies the signature and names both attributes.
func TestAddValidationData(t *testing.T) {
	pki := newPKI(t)
	doc := []byte("Nota Dinas 800/17/2026\n")
	key, cert := pki.issue(t, "p256", signingUsage)
	sig, _ := signOnce(t, doc, &countingSigner{Signer: key}, cert, SignOptions{Chain: []*x509.Certificate{pki.inter}})
	ocspDER, crlDER := validationData(t, pki, cert)

	out, err := AddValidationData(sig, [][]byte{pki.inter.Raw, pki.root.Raw}, [][]byte{crlDER}, [][]byte{ocspDER})
	if err != nil {
		t.Fatal(err)
	}
	certs, crls, basics, err := ValidationValues(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !bytes.Equal(certs[0], pki.inter.Raw) || !bytes.Equal(certs[1], pki.root.Raw) {
		t.Errorf("certificate values: %d", len(certs))
	}
	if len(crls) != 1 || !bytes.Equal(crls[0], crlDER) {
		t.Errorf("CRL values: %d", len(crls))
	}
	if len(basics) != 1 || !bytes.Contains(ocspDER, basics[0]) {
		t.Errorf("OCSP values: %d", len(basics))
	}
	if _, err := Verify(out, doc, VerifyOptions{Roots: pki.roots()}); err != nil {
		t.Fatalf("Verify after adding validation data: %v", err)
	}
	printed := opensslVerify(t, pki, out, doc)
	for _, want := range []string{"id-smime-aa-ets-certValues", "id-smime-aa-ets-revocationValues"} {
		if !strings.Contains(printed, want) {
			t.Errorf("openssl -print lacks %s", want)
		}
	}
	// The CRL inside checks with openssl against its issuer.
	dir := t.TempDir()
	crlFile, caFile := filepath.Join(dir, "crl.der"), filepath.Join(dir, "inter.pem")
	if err := os.WriteFile(crlFile, crls[0], 0o600); err != nil {
		t.Fatal(err)
	}
	writePEM(t, caFile, pki.inter.Raw)
	if o, err := runOpenSSL(t, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", caFile, "-noout", "-verify"); err != nil || !strings.Contains(o, "verify OK") {
		t.Errorf("openssl crl -verify: %v\n%s", err, o)
	}

	// Nothing to add leaves the signature as it was; a failed OCSP
	// response or a non-DER value is refused.
	if same, err := AddValidationData(sig, nil, nil, nil); err != nil || !bytes.Equal(same, sig) {
		t.Errorf("empty validation data: %v", err)
	}
	unauthorized := []byte{0x30, 0x03, 0x0a, 0x01, 0x06}
	if _, err := AddValidationData(sig, nil, nil, [][]byte{unauthorized}); err == nil {
		t.Error("an unsuccessful OCSP response was taken")
	}
	if _, err := AddValidationData(sig, [][]byte{{0x30, 0x80}}, nil, nil); err == nil {
		t.Error("a broken certificate value was taken")
	}
}

func FuzzValidationValues(f *testing.F) {
	pki := newPKI(f)
	key, cert := pki.issue(f, "p256", signingUsage)
	sig, err := Sign(f.Context(), bytes.NewReader([]byte(fuzzDoc)), key, cert, SignOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ocspDER, crlDER := validationData(f, pki, cert)
	withData, err := AddValidationData(sig, [][]byte{pki.inter.Raw}, [][]byte{crlDER}, [][]byte{ocspDER})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withData)
	f.Add(sig)
	f.Fuzz(func(t *testing.T, der []byte) {
		certs, crls, basics, err := ValidationValues(der)
		if err != nil {
			return
		}
		if len(certs)+len(crls)+len(basics) > maxValidationValues {
			t.Fatalf("%d values returned", len(certs)+len(crls)+len(basics))
		}
	})
}
