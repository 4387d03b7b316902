package pades

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// verifyAllocBound is the most Verify may allocate for an input of n
// bytes under lim: what reading it may take (allocBound), and per byte of
// the signatures in it a constant share for the CMS, its certificates
// (parsed once for the signature, once for the chain, once for the
// timestamps) and the timestamp tokens, with 16 MiB of fixed cost.
func verifyAllocBound(n int, lim Limits) uint64 {
	return allocBound(n, lim) + 64*uint64(n) + 16<<20
}

// FuzzVerify feeds arbitrary bytes to Verify: it must answer with a
// report or one of its documented errors, never panic, never allocate
// more than verifyAllocBound, and never call a signature Valid against an
// empty CA pool. The seeds under testdata/fuzz/FuzzVerify are real signed
// PDFs (TestWriteVerifyFuzzSeeds), tampered with in the ways the tests
// check.
func FuzzVerify(f *testing.F) {
	f.Add(testPDF(1))
	p := newPKI(f)
	signer, cert := p.official(f, "p256")
	res, err := Sign(context.Background(), testPDF(1), signer, cert, Options{Visible: &Appearance{VerifyURL: "https://tte.example.go.id/v/1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(res.PDF)
	// The same with a DSS after it, as B-LT appends one.
	lt, err := AddDSS(context.Background(), res.PDF, ValidationData{Certs: [][]byte{p.ca.Raw}, CRLs: [][]byte{crlOf(f, p).Raw}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(lt)
	empty := x509.NewCertPool()
	f.Fuzz(func(t *testing.T, b []byte) {
		var rep *Report
		var err error
		n := totalAlloc(func() {
			rep, err = Verify(context.Background(), b, VerifyOptions{Roots: empty, Limits: fuzzLimits})
		})
		if max := verifyAllocBound(len(b), fuzzLimits); n > max {
			t.Fatalf("Verify of %d bytes allocated %d, more than %d", len(b), n, max)
		}
		if err != nil {
			for _, want := range []error{ErrMalformed, ErrEncrypted, ErrTooComplex, ErrNotSigned} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Verify: undocumented error %v", err)
		}
		if len(rep.Signatures) == 0 || rep.Valid() {
			t.Fatalf("report of %d signatures, valid %v", len(rep.Signatures), rep.Valid())
		}
		for _, s := range rep.Signatures {
			if s.Status == Valid {
				t.Fatalf("a signature is valid against an empty CA pool: %+v", s)
			}
			if s.Status != Invalid && s.Reason == "" {
				t.Fatalf("%s without a reason", s.Status)
			}
			if end := s.ByteRange[2] + s.ByteRange[3]; s.CoversWholeFile && end != len(b) {
				t.Fatalf("covers the whole file with range %v of %d bytes", s.ByteRange, len(b))
			}
		}
	})
}

// TestWriteVerifyFuzzSeeds writes signed PDFs made by Sign, and the ways
// they are attacked in verify_test.go, into testdata/fuzz/FuzzVerify when
// PADES_WRITE_SEEDS is set.
func TestWriteVerifyFuzzSeeds(t *testing.T) {
	if os.Getenv("PADES_WRITE_SEEDS") == "" {
		t.Skip("set PADES_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzVerify")
	}
	p := newPKI(t)
	one, _ := sign(t, p, testPDF(1), "p256", Options{})
	visible, _ := sign(t, p, xrefStreamPDF(t, 2), "rsa", Options{Visible: &Appearance{Page: 2, VerifyURL: "https://tte.example.go.id/v/01JGZ8"}})
	twice, _ := sign(t, p, one.PDF, "p384", Options{Visible: &Appearance{}})
	tsa := startTSA(t, p)
	stamped, _ := sign(t, p, testPDF(1), "p256", Options{TSA: authorityAt(t, tsa.URL)})
	stamped, err := Timestamp(context.Background(), stamped, *authorityAt(t, tsa.URL))
	if err != nil || !stamped.Timestamped {
		t.Fatalf("Timestamp: %v %v", err, stamped.TimestampError)
	}
	forged := "BT /F1 14 Tf 72 770 Td (PALSU) Tj ET"
	tampered := append([]byte(nil), one.PDF...)
	tampered[len(tampered)/3] ^= 1
	seeds := map[string][]byte{
		"signed":         one.PDF,
		"signed-visible": visible.PDF,
		"signed-twice":   twice.PDF,
		"timestamped":    stamped.PDF,
		"tampered":       tampered,
		"wrapped":        appendRevision(t, one.PDF, map[int]string{5: fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(forged), forged)}),
		"orphaned":       appendRevision(t, one.PDF, map[int]string{1: "<< /Type /Catalog /Pages 2 0 R >>"}),
		"range-short":    rewriteByteRange(t, one.PDF, func(b *[4]int) { b[3] -= 10 }),
		"two-contents":   replace(t, one.PDF, "/Filter /Adobe.PPKLite", "/Contents <00>        "),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
