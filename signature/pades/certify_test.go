package pades

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
)

// The first signature certifies (DocMDP, P 2, named in the catalog's
// /Perms); a later one that locks does so through its field's /Lock.
// Both keep every signature valid, and a document locked against any
// change refuses another signature.
func TestCertify(t *testing.T) {
	p := newPKI(t)
	pdf := testPDF(1)

	certified, _ := sign(t, p, pdf, "p256", Options{Certify: true, Visible: &Appearance{Name: "Dr. Siti Rahmawati, M.Si."}})
	tail := certified.PDF[len(pdf):]
	if !regexp.MustCompile(`/Reference \[<</Type /SigRef /TransformMethod /DocMDP /TransformParams <</Type /TransformParams /P 2 /V /1\.2>>>>\]`).Match(tail) {
		t.Fatal("the certifying signature has no DocMDP reference")
	}
	if !regexp.MustCompile(`/Perms *<< */DocMDP \d+ 0 R`).Match(tail) {
		t.Fatalf("the catalog names no certification:\n%s", tail[:min(len(tail), 2000)])
	}
	qpdfCheck(t, certified.PDF)
	wantStatus(t, verify(t, certified.PDF, VerifyOptions{Roots: roots(p)}), Valid)
	// Permission 2 takes further signatures.
	again, _ := sign(t, p, certified.PDF, "p256", Options{})
	wantStatus(t, verify(t, again.PDF, VerifyOptions{Roots: roots(p)}), Valid, Valid)

	// After a paraf, the last signer locks by field.
	paraf, _ := sign(t, p, pdf, "p256", Options{Visible: &Appearance{Paraf: true, Name: "Drs. La Ode Budiman"}})
	locked, _ := sign(t, p, paraf.PDF, "p256", Options{Certify: true, Visible: &Appearance{Page: 1, Rect: [4]float64{300, 200, 540, 280}}})
	tail = locked.PDF[len(paraf.PDF):]
	if !bytes.Contains(tail, []byte("/TransformMethod /FieldMDP")) || !regexp.MustCompile(`/Lock *<<[^>]*/P 2`).Match(tail) {
		t.Fatalf("the locking signature has no field lock:\n%s", tail[:min(len(tail), 2000)])
	}
	if bytes.Contains(tail, []byte("/DocMDP")) {
		t.Fatal("a signature after the first claims the certification")
	}
	qpdfCheck(t, locked.PDF)
	wantStatus(t, verify(t, locked.PDF, VerifyOptions{Roots: roots(p)}), Valid, Valid)

	// A field locked against any change (P 1) takes no further signature.
	lock := regexp.MustCompile(`/Lock *<<[^>]*/P 2`)
	at := lock.FindIndex(locked.PDF)
	if at == nil {
		t.Fatal("no lock to change")
	}
	noChanges := bytes.Clone(locked.PDF)
	noChanges[at[1]-1] = '1' // the same length: every offset holds
	signer, cert := p.official(t, "p256")
	if _, err := Sign(t.Context(), noChanges, signer, cert, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("signing a document locked against any change: %v, want ErrLocked", err)
	}
}
