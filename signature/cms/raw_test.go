package cms

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRaw(t *testing.T) {
	pki := newPKI(t)
	doc := []byte("Surat Edaran 100/3/2026")
	for _, tc := range []struct {
		name    string
		key     string
		opts    RawOptions
		dgst    string
		sigopts []string
	}{
		{"p256", "p256", RawOptions{}, "-sha256", nil},
		{"p384", "p384", RawOptions{}, "-sha384", nil},
		{"rsa-pkcs1", "rsa", RawOptions{}, "-sha256", nil},
		{"rsa-pss", "rsa", RawOptions{PSS: true}, "-sha256", []string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"}},
		{"rsa-pss-sha512", "rsa", RawOptions{Hash: crypto.SHA512, PSS: true}, "-sha512", []string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:64"}},
		// Pure Ed25519 over the document's SHA-512, as PROTOCOL.md says
		// to check it: openssl pkeyutl -rawin over the digest.
		{"ed25519", "ed25519", RawOptions{}, "-sha512", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, cert := pki.issue(t, tc.key, signingUsage)
			h := tc.opts.Hash
			if h == 0 {
				h, _ = DefaultHash(cert.PublicKey)
			}
			signer := &countingSigner{Signer: key}
			sig, err := SignRaw(t.Context(), digestOf(h, doc), signer, cert, tc.opts)
			if err != nil {
				t.Fatalf("SignRaw: %v", err)
			}
			if len(signer.digests) != 1 {
				t.Errorf("signer called %d times", len(signer.digests))
			}
			if err := VerifyRaw(sig, doc, cert, tc.opts); err != nil {
				t.Fatalf("VerifyRaw: %v", err)
			}
			if err := VerifyRaw(sig, append(doc, '!'), cert, tc.opts); !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyRaw of changed document: %v, want ErrBadSignature", err)
			}
			_, otherCert := pki.issue(t, tc.key, signingUsage)
			if tc.key != "rsa" { // RSA test keys are shared to save time
				if err := VerifyRaw(sig, doc, otherCert, tc.opts); !errors.Is(err, ErrBadSignature) {
					t.Errorf("VerifyRaw with another key: %v, want ErrBadSignature", err)
				}
			}

			dir := t.TempDir()
			pub, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
				"sig.bin": sig,
				"doc.txt": doc,
			}
			for n, b := range files {
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.key == "ed25519" {
				digest := filepath.Join(dir, "doc.sha512")
				if out, err := runOpenSSL(t, "dgst", "-sha512", "-binary", "-out", digest, filepath.Join(dir, "doc.txt")); err != nil {
					t.Fatalf("openssl dgst: %v\n%s", err, out)
				}
				out, err := runOpenSSL(t, "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, "pub.pem"), "-rawin",
					"-in", digest, "-sigfile", filepath.Join(dir, "sig.bin"))
				if err != nil || !strings.Contains(out, "Signature Verified Successfully") {
					t.Fatalf("openssl pkeyutl -verify: %v\n%s", err, out)
				}
				return
			}
			args := append([]string{"dgst", tc.dgst, "-verify", filepath.Join(dir, "pub.pem"),
				"-signature", filepath.Join(dir, "sig.bin")}, tc.sigopts...)
			out, err := runOpenSSL(t, append(args, filepath.Join(dir, "doc.txt"))...)
			if err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("openssl dgst -verify: %v\n%s", err, out)
			}
		})
	}

	t.Run("wrong options", func(t *testing.T) {
		key, cert := pki.issue(t, "rsa", signingUsage)
		sig, err := SignRaw(t.Context(), digestOf(crypto.SHA256, doc), key, cert, RawOptions{PSS: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyRaw(sig, doc, cert, RawOptions{}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("PSS signature checked as PKCS#1 v1.5: %v", err)
		}
		if err := VerifyRaw(sig, doc, nil, RawOptions{}); err == nil || errors.Is(err, ErrInvalid) {
			t.Errorf("nil certificate: %v, want a usage error", err)
		}
		if _, err := SignRaw(t.Context(), []byte{1, 2, 3}, key, cert, RawOptions{}); err == nil {
			t.Error("SignRaw accepted a 3-byte digest")
		}
	})
}
