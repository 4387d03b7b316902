package validation

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

// official issues a signer that names no CRL or OCSP responder, as the
// e2e test's CA does: its status is not published, so nothing is needed.
func official(t *testing.T, ca *testenv.PKICert, name string) *testenv.PKICert {
	t.Helper()
	return ca.Issue(t, name, testenv.IssueOptions{})
}

func TestVerifyPAdESResult(t *testing.T) {
	ca := testenv.NewRootPKI(t, "Teken Test CA")
	signer := official(t, ca, "Siti Rahmawati")
	doc := letter("Undangan Rapat")
	signed, err := pades.Sign(t.Context(), doc, signer.Key, signer.Cert, pades.Options{Visible: &pades.Appearance{}})
	if err != nil {
		t.Fatal(err)
	}
	d := api.SignedDocument{ID: "surat", SHA256: sha(doc), Format: api.FormatPAdES, Signature: signed.PDF, Level: api.LevelBB}
	trust := Trust{Roots: pool(ca.Cert)}

	v := VerifyDocument(t.Context(), d, doc, signer.Cert, trust)
	if !v.Valid() || len(v.Signatures) != 1 || v.Signatures[0].Signer != "Siti Rahmawati" || v.Signatures[0].Level != "B-B" || v.DocumentID != "surat" {
		t.Fatalf("verdict %+v", v)
	}
	s := v.Signatures[0]
	wantCheck(t, s, CheckChain, StatusValid, "the claimed signing time /M")
	wantCheck(t, s, CheckRevocation, StatusValid, "not published")
	wantCheck(t, s, CheckTimestamp, StatusValid, "none")
	wantCheck(t, s, CheckLevel, StatusValid, "B-B")

	other := official(t, ca, "Another Official")
	for name, tc := range map[string]struct {
		content []byte
		signer  *x509.Certificate
		want    string
	}{
		"another document": {letter("Nota Dinas"), signer.Cert, "does not begin with the document as dispatched"},
		"another signer":   {doc, other.Cert, "not by the result's signer certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			v := VerifyDocument(t.Context(), d, tc.content, tc.signer, trust)
			if v.Status != StatusInvalid || !strings.Contains(v.Reason, tc.want) {
				t.Fatalf("verdict %+v, want INVALID with %q", v, tc.want)
			}
		})
	}
	if v := VerifyDocument(t.Context(), api.SignedDocument{ID: "surat", Format: api.FormatPAdES, Signature: doc}, doc, signer.Cert, trust); v.Status != StatusInvalid {
		t.Errorf("an unsigned PDF: %+v", v)
	}
	if v := VerifyPDF(t.Context(), signed.PDF, Trust{Roots: pool(testenv.NewRootPKI(t, "Another CA").Cert)}); v.Status != StatusIndeterminate || !strings.HasPrefix(v.Signatures[0].Reason, "unknown CA") {
		t.Errorf("another CA: %+v", v)
	}
	changed := bytes.Replace(signed.PDF, []byte("Undangan"), []byte("Undangen"), 1)
	if v := VerifyPDF(t.Context(), changed, trust); v.Status != StatusInvalid || len(v.Signatures[0].Checks) != 1 || v.Signatures[0].Checks[0].Status != StatusInvalid {
		t.Errorf("a changed PDF: %+v", v)
	}
}

func TestVerifyCMSVerdicts(t *testing.T) {
	ca := testenv.NewRootPKI(t, "Teken Test CA")
	signer := official(t, ca, "Siti Rahmawati")
	doc := []byte("%PDF-1.7\nSurat\n")
	sig, err := cms.Sign(t.Context(), bytes.NewReader(doc), signer.Key, signer.Cert, cms.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		content []byte
		trust   Trust
		want    Status
		check   string
	}{
		"valid":       {doc, Trust{Roots: pool(ca.Cert)}, StatusValid, ""},
		"no bundle":   {doc, Trust{}, StatusIndeterminate, CheckChain},
		"another CA":  {doc, Trust{Roots: pool(testenv.NewRootPKI(t, "Another CA").Cert)}, StatusIndeterminate, CheckChain},
		"expired now": {doc, Trust{Roots: pool(ca.Cert), Now: time.Now().Add(48 * time.Hour)}, StatusIndeterminate, CheckChain},
		"changed":     {append(bytes.Clone(doc), ' '), Trust{Roots: pool(ca.Cert)}, StatusInvalid, CheckIntegrity},
	} {
		t.Run(name, func(t *testing.T) {
			v := VerifyCMS(t.Context(), sig, tc.content, tc.trust)
			if v.Status != tc.want || (tc.want != StatusValid && v.Signatures[0].Reason == "") {
				t.Fatalf("verdict %+v, want %s", v, tc.want)
			}
			t.Log(text(t, v))
			if tc.check != "" {
				wantCheck(t, v.Signatures[0], tc.check, tc.want, "")
			} else if v.Signatures[0].Level != "B-B" {
				t.Errorf("level %q", v.Signatures[0].Level)
			}
		})
	}
}

// TestCRLFiles: a --crl file decides a signer the signature carries no
// data for, and says so.
func TestCRLFiles(t *testing.T) {
	e := newLTEnv(t)
	doc := []byte("Surat Undangan")
	sig, _ := e.signCMS(t, doc, false)
	crl, err := x509.ParseRevocationList(get(t, e.chain.IntermediateCRL))
	if err != nil {
		t.Fatal(err)
	}
	tr := e.trust()
	tr.CRLs = []*x509.RevocationList{crl}
	v := VerifyCMS(t.Context(), sig, doc, tr)
	if !v.Valid() {
		t.Fatalf("verdict %+v", v)
	}
	wantCheck(t, v.Signatures[0], CheckRevocation, StatusValid, "good (CRL from a --crl file, this update ")

	// A raw signature carries nothing but itself: the bundle gives the
	// intermediate, the --crl file the signer's status.
	d := api.SignedDocument{Format: api.FormatRaw, SignedAt: time.Now()}
	digest, err := cms.Digest(t.Context(), bytes.NewReader(doc), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if d.Signature, err = cms.SignRaw(t.Context(), digest, e.chain.Leaf.Key, e.chain.Leaf.Cert, cms.RawOptions{}); err != nil {
		t.Fatal(err)
	}
	tr.Roots = pool(e.chain.Root.Cert, e.chain.Intermediate.Cert)
	raw := VerifyDocument(t.Context(), d, doc, e.chain.Leaf.Cert, tr)
	if !raw.Valid() {
		t.Fatalf("raw: %+v", raw)
	}
	wantCheck(t, raw.Signatures[0], CheckRevocation, StatusValid, "good (CRL from a --crl file")
	tr.CRLs = nil
	if raw := VerifyDocument(t.Context(), d, doc, e.chain.Leaf.Cert, tr); raw.Status != StatusIndeterminate {
		t.Errorf("raw without a CRL: %+v", raw)
	}
}

func TestWriteVerdicts(t *testing.T) {
	yes := true
	when := time.Date(2026, 11, 26, 6, 5, 0, 0, time.UTC)
	vs := []Verdict{{Document: "signed/x.pdf", Format: api.FormatPAdES, Status: StatusInvalid, Signatures: []SignatureVerdict{
		{Field: "Signature1", Kind: "signature", Status: StatusValid, Signer: "Siti\x1b[2J Rahmawati", NIP: "1987", SigningTime: &when, Level: "B-B", ByteRange: []int{0, 10, 20, 30}, CoversWholeFile: &yes,
			Checks: []Check{{CheckIntegrity, StatusValid, ""}, {CheckRevocation, StatusValid, "good (OCSP from the DSS, produced 2026-12-02 06:10:00Z)"}, {CheckLevel, StatusValid, "B-B"}}},
		{Field: "Signature2\u202e", Kind: "signature", Status: StatusInvalid, Reason: "does not cover the whole file",
			Checks: []Check{{CheckIntegrity, StatusInvalid, "does not cover the whole file\x1b"}}},
	}}}
	// Settled by hand to VALID over an INDETERMINATE check: never
	// printed VALID.
	lie := Verdict{Document: "x.p7s", Format: api.FormatCMS, Status: StatusValid, Signatures: []SignatureVerdict{{Kind: "signature", Status: StatusValid,
		Checks: []Check{{CheckIntegrity, StatusValid, ""}, {CheckRevocation, StatusIndeterminate, "no data"}}}}}
	var lied bytes.Buffer
	if err := WriteVerdicts(&lied, []Verdict{lie}, false); err != nil || strings.Contains(lied.String(), "verdict: VALID") || !strings.Contains(lied.String(), "verdict: INDETERMINATE") {
		t.Errorf("a VALID over an INDETERMINATE check prints:\n%s", lied.String())
	}
	lied.Reset()
	if err := WriteVerdicts(&lied, []Verdict{lie}, true); err != nil || !strings.Contains(lied.String(), `"status":"INDETERMINATE"`) || strings.Contains(lied.String(), `"status":"VALID","signatures"`) {
		t.Errorf("JSON: %s", lied.String())
	}

	var text bytes.Buffer
	if err := WriteVerdicts(&text, vs, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"signed/x.pdf (pades)", "verdict: INVALID", "signature 1, field Signature1: VALID", `Siti\u001b[2J Rahmawati (NIP 1987)`,
		"level:     B-B", "the whole file (50 bytes)", `field Signature2\u202e: INVALID: does not cover the whole file`,
		"\n      integrity:  VALID\n", "\n      revocation: VALID good (OCSP from the DSS, produced 2026-12-02 06:10:00Z)\n", "\n      level:      B-B\n",
		`integrity:  INVALID: does not cover the whole file\u001b`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := WriteVerdicts(&js, vs, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	sigs, _ := got["signatures"].([]any)
	first, _ := sigs[0].(map[string]any)
	checks, _ := first["checks"].([]any)
	if got["status"] != "INVALID" || got["file"] != "signed/x.pdf" || got["format"] != "pades" || len(sigs) != 2 ||
		first["signing_time"] != "2026-11-26T06:05:00Z" || first["covers_whole_file"] != true || first["nip"] != "1987" || len(checks) != 3 {
		t.Errorf("JSON %s", js.String())
	}
}
