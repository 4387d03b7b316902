package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// replaceOnce replaces the single occurrence of old in b, failing the test
// if there is not exactly one, so a mutation cannot silently miss.
func replaceOnce(t *testing.T, b, old, repl []byte) []byte {
	t.Helper()
	if n := bytes.Count(b, old); n != 1 {
		t.Fatalf("pattern % x occurs %d times, want 1", old, n)
	}
	return bytes.Replace(b, old, repl, 1)
}

func TestVerifyRejects(t *testing.T) {
	pki := newPKI(t)
	other := newPKI(t)
	doc := []byte("Nota Dinas 005/77/2026")
	signingTime := time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)
	signDoc := func(t *testing.T, alg string, usage x509.KeyUsage, opts SignOptions) ([]byte, *x509.Certificate) {
		t.Helper()
		key, cert := pki.issue(t, alg, usage)
		opts.SigningTime = signingTime
		if opts.Chain == nil {
			opts.Chain = []*x509.Certificate{pki.inter}
		}
		h := opts.Hash
		if h == 0 {
			h, _ = DefaultHash(cert.PublicKey)
		}
		sig, err := SignDigest(t.Context(), digestOf(h, doc), key, cert, opts)
		if err != nil {
			t.Fatal(err)
		}
		return sig, cert
	}
	trusted := VerifyOptions{Roots: pki.roots()}

	for _, tc := range []struct {
		name string
		make func(t *testing.T) (sig, content []byte)
		opts VerifyOptions
		want error // nil means the signature must verify
	}{
		{"valid", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig, doc
		}, trusted, nil},
		{"valid without chain check", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig, doc
		}, VerifyOptions{}, nil},
		{"intermediate given by caller", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p384", signingUsage, SignOptions{Chain: []*x509.Certificate{}})
			return sig, doc
		}, VerifyOptions{Roots: pki.roots(), Intermediates: poolOf(pki.inter)}, nil},
		{"intermediate missing", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p384", signingUsage, SignOptions{Chain: []*x509.Certificate{}})
			return sig, doc
		}, trusted, ErrUntrusted},
		{"changed document", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig, append(bytes.Clone(doc), '.')
		}, VerifyOptions{}, ErrDigestMismatch},
		{"changed signature value", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "rsa", signingUsage, SignOptions{})
			sig[len(sig)-1] ^= 1
			return sig, doc
		}, VerifyOptions{}, ErrBadSignature},
		{"changed signing time", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return replaceOnce(t, sig, []byte("261126010203Z"), []byte("261126010204Z")), doc
		}, VerifyOptions{}, ErrBadSignature},
		{"changed PSS salt length", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "rsa", signingUsage, SignOptions{PSS: true})
			return replaceOnce(t, sig, []byte{0xa2, 3, 2, 1, 0x20}, []byte{0xa2, 3, 2, 1, 0x1f}), doc
		}, VerifyOptions{}, ErrBadSignature},
		{"PSS salt length zero", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "rsa", signingUsage, SignOptions{PSS: true})
			return replaceOnce(t, sig, []byte{0xa2, 3, 2, 1, 0x20}, []byte{0xa2, 3, 2, 1, 0}), doc
		}, VerifyOptions{}, ErrUnsupported},
		{"signing certificate names another certificate", func(t *testing.T) ([]byte, []byte) {
			key, cert := pki.issue(t, "p256", signingUsage)
			_, otherCert := pki.issue(t, "p256", signingUsage)
			return handSigned(t, key, cert, otherCert, cert, doc, signingTime), doc
		}, VerifyOptions{}, ErrSignerMismatch},
		{"signer certificate not included", func(t *testing.T) ([]byte, []byte) {
			key, cert := pki.issue(t, "p256", signingUsage)
			// The SignerInfo names cert, but only the CA is embedded.
			stripped := *cert
			stripped.Raw = pki.inter.Raw
			return handSigned(t, key, cert, cert, &stripped, doc, signingTime), doc
		}, VerifyOptions{}, ErrMalformed},
		{"untrusted root", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig, doc
		}, VerifyOptions{Roots: other.roots()}, ErrUntrusted},
		{"expired at verification time", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig, doc
		}, VerifyOptions{Roots: pki.roots(), CurrentTime: time.Now().Add(48 * time.Hour)}, ErrUntrusted},
		{"key not for signing", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "rsa", x509.KeyUsageKeyEncipherment, SignOptions{})
			return sig, doc
		}, trusted, ErrUntrusted},
		{"no extended key usage allows any", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig, doc
		}, VerifyOptions{Roots: pki.roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}, nil},
		{"truncated", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return sig[:len(sig)-1], doc
		}, VerifyOptions{}, ErrMalformed},
		{"trailing data", func(t *testing.T) ([]byte, []byte) {
			sig, _ := signDoc(t, "p256", signingUsage, SignOptions{})
			return append(sig, 0), doc
		}, VerifyOptions{}, ErrMalformed},
		{"empty", func(t *testing.T) ([]byte, []byte) { return nil, doc }, VerifyOptions{}, ErrMalformed},
		{"PEM instead of DER", func(t *testing.T) ([]byte, []byte) {
			return []byte("-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n"), doc
		}, VerifyOptions{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, content := tc.make(t)
			got, err := Verify(sig, content, tc.opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !got.SigningTime.Equal(signingTime) {
					t.Errorf("signing time %v, want %v", got.SigningTime, signingTime)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify error %v, want %v (and ErrInvalid)", err, tc.want)
			}
			if got != nil {
				t.Errorf("Verify returned %+v with an error", got)
			}
			t.Logf("error: %v", err)
		})
	}
}

func digestOf(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// handSigned makes a P-256 SignedData that Sign would refuse to make: its
// signing-certificate-v2 names essCert, and embedded supplies the
// certificate bytes and signer identifier, while key and cert sign.
func handSigned(t *testing.T, key crypto.Signer, cert, essCert, embedded *x509.Certificate, doc []byte, when time.Time) []byte {
	t.Helper()
	alg := algorithm{kind: keyEC, hash: crypto.SHA256}
	attrs, err := signedAttributes(digestOf(alg.hash, doc), when, essCert)
	if err != nil {
		t.Fatal(err)
	}
	h := alg.hash.New()
	h.Write(attrs)
	sig, err := sign(t.Context(), h.Sum(nil), key, cert, alg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := encodeSignedData(embedded, nil, alg, attrs, sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
