package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the committed fuzz seeds under testdata/fuzz")

type seed struct {
	name string
	sig  []byte
}

// seedSignatures signs doc with every supported algorithm under pki, and
// once as PAdES does: without signing-time, with a signature-time-stamp.
func seedSignatures(t testing.TB, pki *testPKI, doc []byte) []seed {
	var out []seed
	for _, tc := range signCases {
		key, cert := pki.issue(t, tc.key, signingUsage)
		opts := tc.opts
		opts.Chain = []*x509.Certificate{pki.inter}
		sig, err := SignDigest(t.Context(), digestOf(tc.hash, doc), key, cert, opts)
		if err != nil {
			t.Fatalf("seed %s: %v", tc.name, err)
		}
		out = append(out, seed{tc.name, sig})
	}
	key, cert := pki.issue(t, "p256", signingUsage)
	sig, err := SignDigest(t.Context(), digestOf(crypto.SHA256, doc), key, cert, SignOptions{
		OmitSigningTime: true,
		SignatureTimestamp: func(_ context.Context, sig []byte) ([]byte, error) {
			return fakeToken(sig), nil
		},
	})
	if err != nil {
		t.Fatalf("seed pades: %v", err)
	}
	return append(out, seed{"pades-b-t", sig})
}

const fuzzDoc = "Surat Masuk 001/2026"

// TestWriteFuzzSeeds regenerates the committed seeds when run with
// -write-seeds; otherwise it checks they are still there.
func TestWriteFuzzSeeds(t *testing.T) {
	dirs := []string{filepath.Join("testdata", "fuzz", "FuzzParse"), filepath.Join("testdata", "fuzz", "FuzzVerify")}
	if !*writeSeeds {
		for _, d := range dirs {
			if entries, err := os.ReadDir(d); err != nil || len(entries) < 2 {
				t.Errorf("committed seeds in %s: %d files, %v", d, len(entries), err)
			}
		}
		return
	}
	pki := newPKI(t)
	for _, s := range seedSignatures(t, pki, []byte(fuzzDoc)) {
		write(t, filepath.Join(dirs[0], s.name), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.sig))
		write(t, filepath.Join(dirs[1], s.name), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", s.sig, fuzzDoc))
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	pki := newPKI(f)
	for _, s := range seedSignatures(f, pki, []byte(fuzzDoc)) {
		f.Add(s.sig)
		f.Add(s.sig[:len(s.sig)/2])
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		sd, err := parse(der)
		if err != nil {
			if sd != nil {
				t.Fatal("parse returned data with an error")
			}
			return
		}
		si := sd.signer
		if len(si.attrs) == 0 || si.attrs[0] != 0x31 || si.serial == nil ||
			len(si.messageDigest) != si.alg.hash.Size() || si.essCert.hash == 0 {
			t.Fatalf("parse accepted an incomplete signer info: %+v", si)
		}
	})
}

func FuzzVerify(f *testing.F) {
	pki := newPKI(f)
	for _, s := range seedSignatures(f, pki, []byte(fuzzDoc)) {
		f.Add(s.sig, []byte(fuzzDoc))
		f.Add(s.sig, []byte(fuzzDoc+"."))
	}
	roots := pki.roots()
	now := time.Now()
	f.Fuzz(func(t *testing.T, sig, content []byte) {
		got, err := Verify(sig, content, VerifyOptions{})
		if err != nil {
			if got != nil {
				t.Fatal("Verify returned a result with an error")
			}
			return
		}
		if got.Signer == nil || got.DigestAlgorithm == 0 {
			t.Fatalf("Verify accepted without a signer: %+v", got)
		}
		// Anything that verifies must cover content: a changed document
		// must fail.
		if _, err := Verify(sig, append(bytes.Clone(content), 0), VerifyOptions{}); err == nil {
			t.Fatal("signature verifies for two different contents")
		}
		_, _ = Verify(sig, content, VerifyOptions{Roots: roots, CurrentTime: now})
	})
}
