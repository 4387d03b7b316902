package validation

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/signature/revocation"
)

func text(t *testing.T, v Verdict) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteVerdicts(&b, []Verdict{v}, false); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPAdESLTA: a B-LTA PDF built as tekend builds it, with evidence
// from openssl OCSP responders, is VALID at B-LTA with the signer good;
// against another CA it is INDETERMINATE, and never reads VALID.
func TestPAdESLTA(t *testing.T) {
	e := newLTEnv(t)
	bt, genTime := e.signBT(t, letter("Undangan Rapat"))
	pdf := e.lta(t, bt, e.evidence(t, genTime))

	v := VerifyPDF(t.Context(), pdf, e.trust())
	if !v.Valid() || len(v.Signatures) != 2 {
		t.Fatalf("verdict %+v\n%s", v, text(t, v))
	}
	s := v.Signatures[0]
	if s.Level != "B-LTA" || s.Status != StatusValid {
		t.Fatalf("signature %+v", s)
	}
	wantCheck(t, s, CheckIntegrity, StatusValid, "byte range")
	wantCheck(t, s, CheckChain, StatusValid, "the signature timestamp's genTime")
	wantCheck(t, s, CheckRevocation, StatusValid, "good (OCSP or CRL from the DSS, issued after the timestamp)")
	wantCheck(t, s, CheckTimestamp, StatusValid, "(trusted)")
	wantCheck(t, s, CheckLevel, StatusValid, "B-LTA")
	if names := checkNames(s); names != "integrity chain revocation timestamp level" {
		t.Errorf("checks in order %q", names)
	}
	dt := v.Signatures[1]
	if dt.Kind != string(pades.KindDocumentTimestamp) || dt.Status != StatusValid {
		t.Errorf("document timestamp %+v", dt)
	}
	wantCheck(t, dt, CheckTimestamp, StatusValid, "(trusted)")
	out := text(t, v)
	for _, want := range []string{"verdict: VALID\n", "signature 1, field Signature1: VALID\n", "level:     B-LTA\n",
		"      revocation: VALID good (", "      integrity:  VALID ", "      level:      B-LTA\n", "(document-timestamp)"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}

	// As a result's document: the terminal's signature is the newest of
	// a signer, the document timestamp after it the authority's.
	doc := letter("Undangan Rapat")
	d := api.SignedDocument{ID: "surat", Format: api.FormatPAdES, Signature: pdf, Level: api.LevelBB}
	if r := VerifyDocument(t.Context(), d, doc, e.chain.Leaf.Cert, e.trust()); !r.Valid() {
		t.Errorf("as a result: %+v", r)
	}

	other := VerifyPDF(t.Context(), pdf, Trust{Roots: pool(testenv.NewRootPKI(t, "Another Root").Cert), TSARoots: e.trust().TSARoots})
	if other.Status != StatusIndeterminate || other.Signatures[0].Status != StatusIndeterminate {
		t.Fatalf("another CA: %+v", other)
	}
	wantCheck(t, other.Signatures[0], CheckChain, StatusIndeterminate, "unknown CA")
	wantCheck(t, other.Signatures[0], CheckRevocation, StatusIndeterminate, "not checked")
	out = text(t, other)
	if !strings.Contains(out, "verdict: INDETERMINATE\n") || strings.Contains(out, "verdict: VALID") || strings.Contains(out, "Signature1: VALID") {
		t.Errorf("another CA reads:\n%s", out)
	}
}

func checkNames(s SignatureVerdict) string {
	var n []string
	for _, c := range s.Checks {
		n = append(n, c.Name)
	}
	return strings.Join(n, " ")
}

// TestPAdESRevoked: a signer revoked before it signed, as the DSS's CRL
// says, is INVALID with the revocation as the reason.
func TestPAdESRevoked(t *testing.T) {
	e := newLTEnv(t)
	e.chain.IntermediateOCSP.Revoke(e.chain.Leaf.Cert)
	bt, genTime := e.signBT(t, letter("Nota Dinas"))
	// The checker refuses to hand out evidence for a revoked certificate;
	// the CRL says so as well, and is what goes into the DSS.
	if _, err := e.checker.Check(t.Context(), e.chain.Certs(), genTime); err == nil {
		t.Fatal("the checker found the revoked signer good")
	}
	upper, err := e.checker.Check(t.Context(), e.chain.Certs()[1:], genTime)
	if err != nil {
		t.Fatal(err)
	}
	vd := pades.ValidationData{Certs: e.chainDER(), OCSPs: upper.OCSPs, CRLs: append(upper.CRLs, get(t, e.chain.IntermediateCRL))}
	pdf := e.lta(t, bt, vd)

	v := VerifyPDF(t.Context(), pdf, e.trust())
	s := v.Signatures[0]
	if v.Status != StatusInvalid || s.Status != StatusInvalid || !strings.Contains(s.Reason, "revoked") {
		t.Fatalf("verdict %+v", v)
	}
	t.Log(text(t, v))
	wantCheck(t, s, CheckRevocation, StatusInvalid, "before the signing time")
	wantCheck(t, s, CheckIntegrity, StatusValid, "")
	if out := text(t, v); !strings.Contains(out, "verdict: INVALID") || !strings.Contains(out, "revocation: INVALID: certificate revoked on") {
		t.Errorf("text:\n%s", out)
	}
}

// TestPAdESOnline: a B-T signature without validation data is
// INDETERMINATE (no data) offline, VALID with --online, INVALID online
// once the signer is revoked before the timestamp.
func TestPAdESOnline(t *testing.T) {
	e := newLTEnv(t)
	bt, _ := e.signBT(t, letter("Surat Edaran"))
	off := VerifyPDF(t.Context(), bt, e.trust())
	if off.Status != StatusIndeterminate {
		t.Fatalf("offline: %+v", off)
	}
	wantCheck(t, off.Signatures[0], CheckRevocation, StatusIndeterminate, "no revocation data")
	wantCheck(t, off.Signatures[0], CheckLevel, StatusValid, "B-T")

	tr := e.trust()
	tr.Online = revocation.New(revocation.Config{})
	on := VerifyPDF(t.Context(), bt, tr)
	if !on.Valid() {
		t.Fatalf("online: %+v\n%s", on, text(t, on))
	}
	t.Log(text(t, on))
	wantCheck(t, on.Signatures[0], CheckRevocation, StatusValid, "good (OCSP from an online fetch")
}

// TestCMSLT: a CMS signature with a timestamp is B-T, and INDETERMINATE
// without revocation data; with CAdES validation data fetched after the
// timestamp it is B-LT and VALID, the signer good by the embedded OCSP.
func TestCMSLT(t *testing.T) {
	e := newLTEnv(t)
	doc := []byte("Surat Keputusan 12/2026")
	bt, genTime := e.signCMS(t, doc, true)
	v := VerifyCMS(t.Context(), bt, doc, e.trust())
	if s := v.Signatures[0]; v.Status != StatusIndeterminate || s.Level != "B-T" || s.TimestampTime == nil {
		t.Fatalf("B-T: %+v", v)
	}
	wantCheck(t, v.Signatures[0], CheckRevocation, StatusIndeterminate, "no data")
	if out := text(t, v); !strings.Contains(out, "verdict: INDETERMINATE: ") {
		t.Errorf("text:\n%s", out)
	}

	online := e.trust()
	online.Online = revocation.New(revocation.Config{})
	if v := VerifyCMS(t.Context(), bt, doc, online); !v.Valid() || v.Signatures[0].Level != "B-T" {
		t.Errorf("B-T online: %+v", v)
	} else {
		wantCheck(t, v.Signatures[0], CheckRevocation, StatusValid, "good (OCSP from an online fetch")
	}

	ev, err := e.checker.Check(t.Context(), e.chain.Certs(), genTime)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := cms.AddValidationData(bt, e.chainDER(), ev.CRLs, ev.OCSPs)
	if err != nil {
		t.Fatal(err)
	}
	v = VerifyCMS(t.Context(), lt, doc, e.trust())
	s := v.Signatures[0]
	if !v.Valid() || s.Level != "B-LT" {
		t.Fatalf("B-LT: %+v\n%s", v, text(t, v))
	}
	t.Log(text(t, v))
	wantCheck(t, s, CheckRevocation, StatusValid, "good (OCSP from the CAdES revocation-values, produced ")
	wantCheck(t, s, CheckTimestamp, StatusValid, "(trusted)")
	wantCheck(t, s, CheckLevel, StatusValid, "B-LT")

	// The same data does not make B-LT of a signature without a
	// timestamp: it proves no time the data is after.
	plain, _ := e.signCMS(t, doc, false)
	plainLT, err := cms.AddValidationData(plain, e.chainDER(), ev.CRLs, ev.OCSPs)
	if err != nil {
		t.Fatal(err)
	}
	if v := VerifyCMS(t.Context(), plainLT, doc, e.trust()); v.Signatures[0].Level != "B-B" {
		t.Errorf("without a timestamp: %+v", v)
	}

	// A signer revoked before it signed: INVALID by the CAdES CRL.
	e.chain.IntermediateOCSP.Revoke(e.chain.Leaf.Cert)
	rbt, _ := e.signCMS(t, doc, true)
	rlt, err := cms.AddValidationData(rbt, e.chainDER(), [][]byte{get(t, e.chain.IntermediateCRL)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := VerifyCMS(t.Context(), rlt, doc, e.trust()); v.Status != StatusInvalid {
		t.Errorf("revoked: %+v", v)
	} else {
		wantCheck(t, v.Signatures[0], CheckRevocation, StatusInvalid, "CRL from the CAdES revocation-values")
	}
	// A checker of its own: the first one's cached "good" is as new as
	// this timestamp, to the second.
	online.Online = revocation.New(revocation.Config{})
	if v := VerifyCMS(t.Context(), rbt, doc, online); v.Status != StatusInvalid {
		t.Errorf("revoked, online: %+v", v)
	} else {
		wantCheck(t, v.Signatures[0], CheckRevocation, StatusInvalid, "from an online fetch")
	}
}

// TestJSONRoundTrip: what --json prints decodes to the same verdict, with
// the checks under their documented names.
func TestJSONRoundTrip(t *testing.T) {
	e := newLTEnv(t)
	doc := []byte("Surat Tugas")
	bt, genTime := e.signCMS(t, doc, true)
	ev, err := e.checker.Check(t.Context(), e.chain.Certs(), genTime)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := cms.AddValidationData(bt, e.chainDER(), ev.CRLs, ev.OCSPs)
	if err != nil {
		t.Fatal(err)
	}
	vs := []Verdict{VerifyDocument(t.Context(), api.SignedDocument{ID: "surat", Format: api.FormatCMS, Signature: lt}, doc, nil, e.trust())}
	var first bytes.Buffer
	if err := WriteVerdicts(&first, vs, true); err != nil {
		t.Fatal(err)
	}
	var back Verdict
	if err := json.Unmarshal(first.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	if err := WriteVerdicts(&second, []Verdict{back}, true); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("round trip:\n%s\n%s", first.String(), second.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(first.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	sig := raw["signatures"].([]any)[0].(map[string]any)
	checks, _ := sig["checks"].([]any)
	c0, _ := checks[0].(map[string]any)
	if raw["status"] != "VALID" || raw["document_id"] != "surat" || sig["level"] != "B-LT" || len(checks) != 5 ||
		c0["name"] != "integrity" || c0["status"] != "VALID" || c0["detail"] == "" {
		t.Errorf("JSON %s", first.String())
	}
}
