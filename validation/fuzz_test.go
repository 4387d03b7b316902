package validation

import (
	"bytes"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

var writeSeeds = flag.Bool("write-seeds", false, "regenerate the committed fuzz seeds under testdata/fuzz")

const fuzzDoc = "Surat Keputusan 12/2026"

// fuzzTrust trusts no CA, at a time the seeds' certificates are valid.
func fuzzTrust() Trust {
	return Trust{Roots: pool(), Now: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)}
}

// FuzzVerifyCMS feeds VerifyCMS hostile signatures: the CMS, its
// timestamp, its CAdES certificate-values and revocation-values (the
// BasicOCSPResponses wrapped and parsed, the CRLs).
func FuzzVerifyCMS(f *testing.F) {
	f.Add([]byte{0x30, 0x00}, []byte(fuzzDoc))
	f.Fuzz(func(t *testing.T, sig, content []byte) {
		v := VerifyCMS(t.Context(), sig, content, fuzzTrust())
		if v.Status == StatusValid {
			t.Fatalf("VALID against an empty bundle: %+v", v)
		}
		_ = WriteVerdicts(discard{}, []Verdict{v}, false)
		// Trusting the roots the input carries reaches the revocation
		// data: the chain must hold for it to be read.
		tr := fuzzTrust()
		certs, _, _, _ := cms.ValidationValues(sig)
		for _, der := range certs {
			if c, err := x509.ParseCertificate(der); err == nil && bytes.Equal(c.RawIssuer, c.RawSubject) {
				tr.Roots.AddCert(c)
			}
		}
		_ = WriteVerdicts(discard{}, []Verdict{VerifyCMS(t.Context(), sig, content, tr)}, true)
	})
}

// FuzzVerifyPDF feeds VerifyPDF hostile PDFs: what pades.Verify reports,
// sorted into checks, and the /Contents read again for the timestamp and
// the chain.
func FuzzVerifyPDF(f *testing.F) {
	f.Add([]byte("%PDF-1.4\n%%EOF\n"))
	f.Fuzz(func(t *testing.T, pdf []byte) {
		v := VerifyPDF(t.Context(), pdf, fuzzTrust())
		if v.Status == StatusValid {
			t.Fatalf("VALID against an empty bundle: %+v", v)
		}
		_ = WriteVerdicts(discard{}, []Verdict{v}, true)
	})
}

// FuzzContentsDER checks that any byte range reads /Contents, or nil,
// without running off the file.
func FuzzContentsDER(f *testing.F) {
	f.Add([]byte("%PDF <3000> x"), 0, 5, 11, 2)
	f.Fuzz(func(t *testing.T, pdf []byte, a, b, c, d int) {
		_ = contentsDER(pdf, [4]int{a, b, c, d})
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestWriteFuzzSeeds regenerates the committed seeds when run with
// -write-seeds (it needs openssl for the responders and the authority);
// otherwise it checks they are still there.
func TestWriteFuzzSeeds(t *testing.T) {
	cmsDir, pdfDir := filepath.Join("testdata", "fuzz", "FuzzVerifyCMS"), filepath.Join("testdata", "fuzz", "FuzzVerifyPDF")
	if !*writeSeeds {
		for _, d := range []string{cmsDir, pdfDir} {
			if entries, err := os.ReadDir(d); err != nil || len(entries) < 2 {
				t.Errorf("committed seeds in %s: %d files, %v", d, len(entries), err)
			}
		}
		return
	}
	e := newLTEnv(t)
	doc := []byte(fuzzDoc)
	bt, genTime := e.signCMS(t, doc, true)
	ev, err := e.checker.Check(t.Context(), e.chain.Certs(), genTime)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := cms.AddValidationData(bt, e.chainDER(), append(ev.CRLs, get(t, e.chain.IntermediateCRL)), ev.OCSPs)
	if err != nil {
		t.Fatal(err)
	}
	writeSeed(t, filepath.Join(cmsDir, "cms-b-t"), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", bt, doc))
	writeSeed(t, filepath.Join(cmsDir, "cms-b-lt"), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", lt, doc))

	pbt, genTime := e.signBT(t, letter("Seed"))
	writeSeed(t, filepath.Join(pdfDir, "pades-b-t"), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", pbt))
	lta := e.lta(t, pbt, e.evidence(t, genTime))
	if _, err := pades.Verify(t.Context(), lta, pades.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	writeSeed(t, filepath.Join(pdfDir, "pades-b-lta"), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", lta))
}

func writeSeed(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestContentsDER(t *testing.T) {
	pdf := []byte("%PDF-1.7 <300302010100> %EOF")
	if got := contentsDER(pdf, [4]int{0, 9, 23, 5}); !bytes.Equal(got, []byte{0x30, 0x03, 0x02, 0x01, 0x01}) {
		t.Errorf("contentsDER = %x, want the SEQUENCE without its padding", got)
	}
	for _, br := range [][4]int{{0, 10, 23, 5}, {0, -1, 23, 5}, {0, 9, 99, 0}, {0, 23, 9, 0}} {
		if got := contentsDER(pdf, br); got != nil {
			t.Errorf("contentsDER(%v) = %x, want nil", br, got)
		}
	}
}
