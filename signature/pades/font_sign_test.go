package pades

import (
	"regexp"
	"strings"
	"testing"
)

// TestSignEmbeddedFonts signs a letter once for each test name, each
// block on its own page, and reads the result back with the package's
// verifier, qpdf and poppler.
func TestSignEmbeddedFonts(t *testing.T) {
	pdftotext := need(t, "pdftotext", "poppler-utils")
	pdffonts := need(t, "pdffonts", "poppler-utils")
	p := newPKI(t)
	pdf := testPDF(len(fontNames))
	for i, n := range fontNames {
		a := &Appearance{Page: i + 1, Name: n, NIP: "198001012005011001", VerifyURL: "https://tte.example.go.id/verifikasi/01JDXYZ4Q7"}
		res, _ := sign(t, p, pdf, "p256", Options{Visible: a})
		pdf = res.PDF
	}
	qpdfCheck(t, pdf)
	wantStatus(t, verify(t, pdf, VerifyOptions{Roots: roots(p)}), Valid, Valid, Valid, Valid)
	path := writeTemp(t, "signed.pdf", pdf)
	fonts, err := run(t, pdffonts, path)
	if err != nil {
		t.Fatalf("pdffonts: %v\n%s", err, fonts)
	}
	row := regexp.MustCompile(`(?m)^[A-Z]{6}\+DejaVuSans-Bold +CID TrueType +Identity-H +yes +yes +yes `)
	if n := len(row.FindAllString(fonts, -1)); n != 3 {
		t.Errorf("pdffonts lists %d embedded subsets, want 3:\n%s", n, fonts)
	}
	text, err := run(t, pdftotext, "-enc", "UTF-8", path, "-")
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	plain := strings.NewReplacer("\u202b", "", "\u202c", "").Replace(text)
	for _, n := range fontNames {
		if !strings.Contains(plain, n+"\n") {
			t.Errorf("pdftotext lacks the line %q:\n%s", n, text)
		}
	}
	if strings.Contains(text, "?") {
		t.Errorf("pdftotext shows '?':\n%s", text)
	}
}
