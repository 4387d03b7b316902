package cms

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

// A timestamp added after signing gives exactly the SignedData that
// asking for it while signing gives: the signed attributes and the
// signature value are those the signer made, and nothing but the unsigned
// attribute and the lengths around it is new.
func TestAddSignatureTimestamp(t *testing.T) {
	pki := newPKI(t)
	doc := []byte("%PDF-1.7\nSurat Edaran 100/56/2026\n")
	for _, key := range []string{"p256", "p384", "rsa"} {
		t.Run(key, func(t *testing.T) {
			k, cert := pki.issue(t, key, signingUsage)
			chain := []*x509.Certificate{pki.inter}
			plain, sd := signOnce(t, doc, &countingSigner{Signer: k}, cert, SignOptions{Chain: chain, OmitSigningTime: true})

			got, err := Verify(plain, doc, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Signature, sd.signer.signature) {
				t.Fatal("Verify does not report the signature value")
			}
			token := fakeToken(got.Signature)
			stamped, err := AddSignatureTimestamp(plain, token)
			if err != nil {
				t.Fatal(err)
			}
			attr, err := tokenAttribute(token)
			if err != nil {
				t.Fatal(err)
			}
			want, err := encodeSignedData(cert, chain, sd.signer.alg, sd.signer.attrs, sd.signer.signature, attr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stamped, want) {
				t.Fatal("stamped SignedData differs from one stamped while signing")
			}
			printed := opensslVerify(t, pki, stamped, doc)
			if !strings.Contains(printed, "id-smime-aa-timeStampToken") {
				t.Errorf("openssl sees no signature-time-stamp:\n%s", printed)
			}
			if _, err := Verify(stamped, doc, VerifyOptions{Roots: pki.roots()}); err != nil {
				t.Errorf("Verify stamped: %v", err)
			}

			// A second stamp (RFC 5126 §5.11.4 allows several) keeps the
			// first, in DER order.
			second := fakeToken(append(bytes.Clone(got.Signature), 1))
			twice, err := AddSignatureTimestamp(stamped, second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(twice, token) || !bytes.Contains(twice, second) {
				t.Error("second stamp lost a token")
			}
			if _, err := Verify(twice, doc, VerifyOptions{}); err != nil {
				t.Errorf("Verify twice stamped: %v", err)
			}
		})
	}
}

func TestAddSignatureTimestampRefuses(t *testing.T) {
	pki := newPKI(t)
	k, cert := pki.issue(t, "p256", signingUsage)
	plain, _ := signOnce(t, []byte("x"), &countingSigner{Signer: k}, cert, SignOptions{})
	token := fakeToken([]byte("x"))
	for _, tc := range []struct {
		name       string
		der, token []byte
		is         error
	}{
		{"token not DER", plain, []byte("token"), nil},
		{"token with trailing data", plain, append(bytes.Clone(token), 0), nil},
		{"signature not DER", []byte("not a signature"), token, ErrMalformed},
		{"signature truncated", plain[:len(plain)-1], token, ErrMalformed},
		{"signature with trailing data", append(bytes.Clone(plain), 0), token, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AddSignatureTimestamp(tc.der, tc.token)
			if err == nil || out != nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("AddSignatureTimestamp: %v, %d bytes; want a failure matching %v", err, len(out), tc.is)
			}
		})
	}
}
