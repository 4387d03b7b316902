package revocation

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// fuzzPKI is the root and leaf the seeds under testdata/fuzz answer for.
func fuzzPKI(f *testing.F) (root, leaf *x509.Certificate) { return fuzzPKIFile(f) }

func fuzzPKIFile(f testing.TB) (root, leaf *x509.Certificate) {
	f.Helper()
	b, err := os.ReadFile("testdata/fuzz-pki.pem")
	if err != nil {
		f.Fatal(err)
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			f.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		f.Fatalf("testdata/fuzz-pki.pem holds %d certificates, want root and leaf", len(certs))
	}
	return certs[0], certs[1]
}

// FuzzCheckOCSP feeds checkOCSP, the parser of what a responder sends,
// with arbitrary bytes; the seeds are openssl's answers good, revoked,
// unknown and by a delegated responder.
func FuzzCheckOCSP(f *testing.F) {
	root, leaf := fuzzPKI(f)
	f.Fuzz(func(t *testing.T, der []byte) {
		for _, nonce := range [][]byte{nil, {0x04, 0x01, 0x00}} {
			r, err := checkOCSP(der, leaf, root, nonce)
			if err != nil {
				continue
			}
			if r.status != ocsp.Good && r.status != ocsp.Revoked && r.status != ocsp.Unknown {
				t.Fatalf("status %d", r.status)
			}
			if r.delegate != nil && !hasOCSPSigning(r.delegate) {
				t.Fatal("accepted a delegated responder without id-kp-OCSPSigning")
			}
		}
	})
}

// FuzzCheckCRL feeds checkCRL with arbitrary bytes as a CRL of the fuzz
// root; the seeds are CRLs ServeCRL made, empty and listing the leaf.
func FuzzCheckCRL(f *testing.F) {
	root, leaf := fuzzPKI(f)
	f.Fuzz(func(t *testing.T, der []byte) {
		e, err := checkCRL(der, root, time.Hour)
		if err != nil {
			return
		}
		_ = e.lookup(leaf)
	})
}

// TestFuzzSeedsPass keeps the seeds worth fuzzing from: each openssl answer
// must pass the checks, so the fuzzer starts deep inside them.
func TestFuzzSeedsPass(t *testing.T) {
	root, leaf := fuzzPKIFile(t)
	for seed, want := range map[string]int{"seed1": ocsp.Unknown, "seed2": ocsp.Good, "seed3": ocsp.Revoked, "seed4": ocsp.Good} {
		r, err := checkOCSP(readSeed(t, "FuzzCheckOCSP/"+seed), leaf, root, nil)
		if err != nil || r.status != want {
			t.Errorf("%s: %+v, %v; want status %d", seed, r, err, want)
		}
	}
	for _, seed := range []string{"seed7", "seed8"} {
		e, err := checkCRL(readSeed(t, "FuzzCheckCRL/"+seed), root, time.Hour)
		if err != nil {
			t.Errorf("%s: %v", seed, err)
		} else if revoked := e.lookup(leaf) != nil; revoked != (seed == "seed8") {
			t.Errorf("%s: leaf revoked %v", seed, revoked)
		}
	}
}

func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz/" + name)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[1])
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}
