package pades

import (
	"strings"
	"testing"
)

func TestInitialsOf(t *testing.T) {
	for name, want := range map[string]string{
		"Dr. Siti Rahmawati, M.Si.":   "SR",
		"Drs. La Ode Budiman, M.Si.":  "LOB",
		"Nguyễn Văn Thành":            "NVT",
		"Ir. H. Muhammad Yusuf, S.H.": "MY",
		"محمد بن عبدالله":             "مبع",
		"":                            "",
	} {
		if got := initialsOf(name); got != want {
			t.Errorf("initialsOf(%q) = %q, want %q", name, got, want)
		}
	}
}

// A ttd with the signer's jabatan under the name, and a paraf with
// initials and the date in its small default block, read back by poppler.
func TestSignJabatanAndParaf(t *testing.T) {
	pdftotext := need(t, "pdftotext", "poppler-utils")
	p := newPKI(t)
	pdf := testPDF(2)
	res, _ := sign(t, p, pdf, "p256", Options{Visible: &Appearance{Page: 1, Name: "Drs. La Ode Budiman, M.Si.", Paraf: true}})
	res, _ = sign(t, p, res.PDF, "p256", Options{Visible: &Appearance{Page: 2, Name: "Dr. Siti Rahmawati, M.Si.",
		NIP: "198703152010012003", Jabatan: "Sekretaris Daerah Provinsi Sulawesi Tenggara"}})
	qpdfCheck(t, res.PDF)
	wantStatus(t, verify(t, res.PDF, VerifyOptions{Roots: roots(p)}), Valid, Valid)
	text, err := run(t, pdftotext, "-enc", "UTF-8", writeTemp(t, "signed.pdf", res.PDF), "-")
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	for _, want := range []string{"Paraf\n", "LOB\n", "Sekretaris Daerah Provinsi Sulawesi Tenggara\n", "NIP. 198703152010012003\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Drs. La Ode Budiman") {
		t.Errorf("the paraf shows the full name:\n%s", text)
	}
}
