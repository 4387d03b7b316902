package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/tekenid/teken/signature/cms"
)

// TestLongTerm takes a letter through B-T, B-LT and B-LTA, in both kinds
// of cross-reference, and has the result checked by poppler, qpdf and
// openssl as well as by Verify.
func TestLongTerm(t *testing.T) {
	l := newLTPKI(t)
	nss := l.base.nssDB(t)
	for _, tc := range []struct {
		name string
		pdf  func(t *testing.T) []byte
	}{
		{"xref table", func(*testing.T) []byte { return testPDF(2) }},
		{"xref stream", func(t *testing.T) []byte { return xrefStreamPDF(t, 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := VerifyOptions{Roots: l.roots()}
			bt, signer := l.signBT(t, tc.pdf(t), 1)
			rep := verify(t, bt, opts)
			wantStatus(t, rep, Indeterminate)
			wantReason(t, rep.Signatures[0], "no revocation data")
			if rep.Signatures[0].Level != "B-T" {
				t.Fatalf("level %q, want B-T", rep.Signatures[0].Level)
			}

			vd := l.evidence(t, signer)
			lt, err := AddDSS(context.Background(), bt, vd)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(lt, bt) {
				t.Fatal("AddDSS changed the signed bytes")
			}
			rep = verify(t, lt, opts)
			wantStatus(t, rep, Valid)
			if s := rep.Signatures[0]; s.Level != "B-LT" || s.CoversWholeFile {
				t.Fatalf("after AddDSS: level %q, whole %v; want B-LT over a revision before the DSS", s.Level, s.CoversWholeFile)
			}
			checkDSSWithOpenSSL(t, l, lt, vd)

			before := l.stamper.calls.Load()
			lta, err := AddDocumentTimestamp(context.Background(), lt, l.stamper)
			if err != nil {
				t.Fatal(err)
			}
			if n := l.stamper.calls.Load() - before; n != 1 {
				t.Fatalf("stamper called %d times, want 1", n)
			}
			rep = verify(t, lta, opts)
			wantStatus(t, rep, Valid, Valid)
			if s := rep.Signatures[0]; s.Level != "B-LTA" || s.Kind != KindSignature {
				t.Errorf("signature: level %q kind %q, want B-LTA", s.Level, s.Kind)
			}
			dt := rep.Signatures[1]
			if dt.Kind != KindDocumentTimestamp || dt.SubFilter != "ETSI.RFC3161" || !dt.CoversWholeFile || dt.Signer == nil || dt.Signer.Subject.CommonName != "Teken LT TSA" || time.Since(dt.TimestampTime) > time.Hour {
				t.Errorf("document timestamp report %+v", dt)
			}
			qpdfCheck(t, lta)
			checkDocTimestampWithOpenSSL(t, l, lta, dt.ByteRange)
			report := pdfsig(t, nss, lta)
			blocks := signatures(report)
			if len(blocks) != 2 {
				t.Fatalf("pdfsig found %d signatures, want 2:\n%s", len(blocks), report)
			}
			checkPdfsigLTA(t, blocks)

			// Validation data for the document timestamp's authority may
			// follow it (the next round of B-LTA): nothing becomes
			// uncovered.
			after, err := AddDSS(context.Background(), lta, ValidationData{Certs: [][]byte{l.tsaCert.Raw}, CRLs: [][]byte{l.rootCRL(t, time.Now())}})
			if err != nil {
				t.Fatal(err)
			}
			rep = verify(t, after, opts)
			wantStatus(t, rep, Valid, Valid)
			if rep.Signatures[0].Level != "B-LTA" || rep.Signatures[1].CoversWholeFile {
				t.Errorf("after a DSS over the document timestamp: %+v", rep.Signatures)
			}
			qpdfCheck(t, after)
		})
	}
}

// checkDSSWithOpenSSL reads the DSS streams back with qpdf, compares them
// with vd and verifies each OCSP response and CRL with openssl.
func checkDSSWithOpenSSL(t *testing.T, l *ltPKI, pdf []byte, vd ValidationData) {
	t.Helper()
	openssl := need(t, "openssl", "openssl")
	qpdf := need(t, "qpdf", "qpdf")
	d, err := parse(pdf, newBudget(Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	_, cat, err := d.catalog()
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.readDSS(cat)
	if err != nil || s == nil {
		t.Fatalf("readDSS: %v, %v", s, err)
	}
	if len(s.certs) != len(vd.Certs) || len(s.ocsps) != len(vd.OCSPs) || len(s.crls) != len(vd.CRLs) {
		t.Fatalf("DSS holds %d/%d/%d, want %d/%d/%d", len(s.certs), len(s.ocsps), len(s.crls), len(vd.Certs), len(vd.OCSPs), len(vd.CRLs))
	}
	ext, _ := cat["Extensions"].(dict)
	esic, _ := ext["ESIC"].(dict)
	if esic["BaseVersion"] != name("1.7") || esic["ExtensionLevel"] != int64(5) {
		t.Errorf("catalog /Extensions %v", cat["Extensions"])
	}
	file := writeTemp(t, "lt.pdf", pdf)
	raw := func(e dssEntry) string {
		out, err := run(t, qpdf, "--show-object="+strconv.Itoa(e.ref.num), "--raw-stream-data", file)
		if err != nil {
			t.Fatalf("qpdf --show-object: %v: %s", err, out)
		}
		if out != string(e.der) {
			t.Fatalf("qpdf reads object %d differently", e.ref.num)
		}
		return writeTemp(t, "item.der", []byte(out))
	}
	for _, e := range s.ocsps {
		out, err := run(t, openssl, "ocsp", "-respin", raw(e), "-CAfile", l.chainPEM, "-resp_text")
		if err != nil || !strings.Contains(out, "Response verify OK") {
			t.Errorf("openssl ocsp: %v\n%s", err, out)
		}
	}
	for _, e := range s.crls {
		out, err := run(t, openssl, "crl", "-inform", "DER", "-in", raw(e), "-CAfile", l.rootPEM, "-noout")
		if err != nil || !strings.Contains(out, "verify OK") {
			t.Errorf("openssl crl: %v\n%s", err, out)
		}
	}
	for _, e := range s.certs {
		raw(e)
	}
	fields, err := d.signatureFields()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		der, err := trimPadding(f.sig["Contents"].(pdfString))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum(der)
		key := name(strings.ToUpper(hex.EncodeToString(sum[:])))
		if _, ok := s.vri[key].(dict); !ok {
			t.Errorf("no VRI entry %s for %s", key, f.name)
		}
	}
}

// checkDocTimestampWithOpenSSL has openssl verify the document
// timestamp's token over the bytes its range covers.
func checkDocTimestampWithOpenSSL(t *testing.T, l *ltPKI, pdf []byte, br [4]int) {
	t.Helper()
	openssl := need(t, "openssl", "openssl")
	content := append(append([]byte{}, pdf[:br[1]]...), pdf[br[2]:br[2]+br[3]]...)
	der, err := trimPadding(mustHex(t, pdf[br[1]+1:br[2]-1]))
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, openssl, "ts", "-verify", "-data", writeTemp(t, "content.bin", content), "-in", writeTemp(t, "token.der", der), "-token_in", "-CAfile", l.rootPEM)
	if err != nil || !strings.Contains(out, "Verification: OK") {
		t.Errorf("openssl ts -verify: %v\n%s", err, out)
	}
	sum := sha256.Sum256(content)
	ts, err := cms.VerifyTimestampToken(der, cms.VerifyOptions{})
	if err != nil || ts.Hash != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, sum[:]) {
		t.Errorf("token imprint %v %x, want SHA-256 %x (%v)", ts.Hash, ts.HashedMessage, sum, err)
	}
}

func mustHex(t *testing.T, b []byte) []byte {
	t.Helper()
	out := make([]byte, len(b)/2)
	if _, err := hex.Decode(out, b); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEightSignaturesLTA signs a letter eight times, each signature B-T
// with its DSS update after it, then adds the last DSS and a document
// timestamp: all nine stay valid, for poppler and for Verify.
func TestEightSignaturesLTA(t *testing.T) {
	l := newLTPKI(t)
	nss := l.base.nssDB(t)
	pdf := testPDF(1)
	for i := range 8 {
		var signer *x509.Certificate
		pdf, signer = l.signBT(t, pdf, i+1)
		var err error
		if pdf, err = AddDSS(context.Background(), pdf, l.evidence(t, signer)); err != nil {
			t.Fatal(err)
		}
	}
	pdf, err := AddDSS(context.Background(), pdf, ValidationData{CRLs: [][]byte{l.rootCRL(t, time.Now())}})
	if err != nil {
		t.Fatal(err)
	}
	if pdf, err = AddDocumentTimestamp(context.Background(), pdf, l.stamper); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, pdf, VerifyOptions{Roots: l.roots()})
	want := make([]Status, 9)
	for i := range want {
		want[i] = Valid
	}
	wantStatus(t, rep, want...)
	for i, s := range rep.Signatures[:8] {
		if s.Level != "B-LTA" {
			t.Errorf("signature %d level %q, want B-LTA", i+1, s.Level)
		}
	}
	if rep.Signatures[8].Kind != KindDocumentTimestamp {
		t.Errorf("last report is %q, want the document timestamp", rep.Signatures[8].Kind)
	}
	qpdfCheck(t, pdf)
	report := pdfsig(t, nss, pdf)
	blocks := signatures(report)
	if len(blocks) != 9 {
		t.Fatalf("pdfsig found %d signatures, want 9:\n%s", len(blocks), report)
	}
	checkPdfsigLTA(t, blocks)
}

// checkPdfsigLTA wants every signature but the last valid and trusted in
// pdfsig's report, and the last, the document timestamp, covering the
// whole file by the test TSA. Poppler (22.12) does not validate
// ETSI.RFC3161 signatures ("Unable to validate this type of signature");
// openssl ts -verify checks that token instead.
func checkPdfsigLTA(t *testing.T, blocks []string) {
	t.Helper()
	for i, b := range blocks[:len(blocks)-1] {
		for _, want := range []string{"Signature Validation: Signature is Valid.", "Certificate Validation: Certificate is Trusted.", "ETSI.CAdES.detached"} {
			if !strings.Contains(b, want) {
				t.Errorf("pdfsig signature %d lacks %q:\n%s", i+1, want, b)
			}
		}
	}
	last := blocks[len(blocks)-1]
	if !strings.Contains(last, "Common Name: Teken LT TSA") || !strings.Contains(last, "Total document signed") || strings.Contains(last, "Digest Mismatch") {
		t.Errorf("pdfsig's view of the document timestamp:\n%s", last)
	}
}

// Revocation data in the DSS decides: a revoked signer or CA makes the
// signature Invalid, data older than the signature timestamp does not
// make it B-LT, and a DSS without the chain's data leaves it B-T.
func TestDSSRevocation(t *testing.T) {
	l := newLTPKI(t)
	opts := VerifyOptions{Roots: l.roots()}
	bt, signer := l.signBT(t, testPDF(1), 1)
	now := time.Now()
	for _, tc := range []struct {
		name   string
		vd     ValidationData
		status Status
		level  string
		why    string
	}{
		{"good", l.evidence(t, signer), Valid, "B-LT", ""},
		{"signer revoked", ValidationData{
			Certs: [][]byte{l.inter.Raw, l.responder.Raw},
			OCSPs: [][]byte{l.ocspFor(t, signer, ocsp.Revoked, now.Add(-time.Hour), now)},
			CRLs:  [][]byte{l.rootCRL(t, now)},
		}, Invalid, "B-T", "certificate revoked on"},
		{"intermediate revoked", ValidationData{
			OCSPs: [][]byte{l.ocspFor(t, signer, ocsp.Good, time.Time{}, now)},
			CRLs:  [][]byte{l.rootCRL(t, now, x509.RevocationListEntry{SerialNumber: l.inter.SerialNumber, RevocationTime: now.Add(-time.Hour), ReasonCode: 1})},
		}, Invalid, "B-T", "CA certificate"},
		{"stale ocsp", ValidationData{
			Certs: [][]byte{l.inter.Raw},
			OCSPs: [][]byte{l.ocspFor(t, signer, ocsp.Good, time.Time{}, now.Add(-time.Hour))},
			CRLs:  [][]byte{l.rootCRL(t, now)},
		}, Indeterminate, "B-T", "no revocation data"},
		{"no crl for the intermediate", ValidationData{
			OCSPs: [][]byte{l.ocspFor(t, signer, ocsp.Good, time.Time{}, now)},
		}, Valid, "B-T", ""},
		{"ocsp from another responder", ValidationData{
			OCSPs: [][]byte{func() []byte {
				other := newLTPKI(t)
				der, err := ocsp.CreateResponse(l.inter, other.responder, ocsp.Response{Status: ocsp.Good, SerialNumber: signer.SerialNumber, ThisUpdate: now, NextUpdate: now.Add(time.Hour), Certificate: other.responder}, other.rKey)
				if err != nil {
					t.Fatal(err)
				}
				return der
			}()},
			CRLs: [][]byte{l.rootCRL(t, now)},
		}, Indeterminate, "B-T", "no revocation data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AddDSS(context.Background(), bt, tc.vd)
			if err != nil {
				t.Fatal(err)
			}
			rep := verify(t, out, opts)
			wantStatus(t, rep, tc.status)
			wantReason(t, rep.Signatures[0], tc.why)
			if rep.Signatures[0].Level != tc.level {
				t.Errorf("level %q, want %q", rep.Signatures[0].Level, tc.level)
			}
		})
	}
}

// A second AddDSS with the same data adds no stream twice and keeps the
// VRI entries; every signature gets its own.
func TestAddDSSMerge(t *testing.T) {
	l := newLTPKI(t)
	pdf, signer := l.signBT(t, testPDF(1), 1)
	vd := l.evidence(t, signer)
	once, err := AddDSS(context.Background(), pdf, vd)
	if err != nil {
		t.Fatal(err)
	}
	pdf2, signer2 := l.signBT(t, once, 2)
	vd2 := l.evidence(t, signer2)
	vd2.Certs = append(vd2.Certs, vd.Certs...) // the same chain again
	twice, err := AddDSS(context.Background(), pdf2, vd2)
	if err != nil {
		t.Fatal(err)
	}
	again, err := AddDSS(context.Background(), twice, vd2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pdf                []byte
		certs, ocsps, crls int
		vri                int
	}{{once, 3, 1, 1, 1}, {twice, 3, 2, 2, 2}, {again, 3, 2, 2, 2}} {
		d, err := parse(tc.pdf, newBudget(Limits{}))
		if err != nil {
			t.Fatal(err)
		}
		_, cat, _ := d.catalog()
		s, err := d.readDSS(cat)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.certs) != tc.certs || len(s.ocsps) != tc.ocsps || len(s.crls) != tc.crls || len(s.vri) != tc.vri {
			t.Errorf("DSS holds %d certs, %d OCSPs, %d CRLs, %d VRI; want %d, %d, %d, %d",
				len(s.certs), len(s.ocsps), len(s.crls), len(s.vri), tc.certs, tc.ocsps, tc.crls, tc.vri)
		}
		qpdfCheck(t, tc.pdf)
	}
	rep := verify(t, again, VerifyOptions{Roots: l.roots()})
	wantStatus(t, rep, Valid, Valid)
	for i, s := range rep.Signatures {
		if s.Level != "B-LT" {
			t.Errorf("signature %d level %q, want B-LT", i+1, s.Level)
		}
	}

	if _, err := AddDSS(context.Background(), pdf, ValidationData{OCSPs: [][]byte{[]byte("not an OCSP response")}}); err == nil {
		t.Error("AddDSS took an OCSP response that does not parse")
	}
	if _, err := AddDSS(context.Background(), []byte("%PDF-1.7\nnothing"), vd); !errors.Is(err, ErrMalformed) {
		t.Errorf("AddDSS on garbage: %v, want ErrMalformed", err)
	}
}

// Only validation data may follow the last signature: an update that
// changes a page after it makes it Invalid, DSS or not.
func TestDSSUpdateThatChangesContent(t *testing.T) {
	l := newLTPKI(t)
	pdf, signer := l.signBT(t, testPDF(1), 1)
	lt, err := AddDSS(context.Background(), pdf, l.evidence(t, signer))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(u *update, d *document, root ref, cat dict)
	}{
		{"page content", func(u *update, d *document, _ ref, _ dict) {
			u.putStream(5, dict{}, []byte("BT /F1 14 Tf 72 770 Td (Surat palsu) Tj ET"))
		}},
		{"catalog", func(u *update, d *document, root ref, cat dict) {
			nc := clone(cat)
			nc["PageLayout"] = name("TwoColumnLeft")
			u.put(root.num, root.gen, nc)
		}},
		{"dss pointing at the page content", func(u *update, d *document, root ref, cat dict) {
			u.putStream(5, dict{}, []byte("BT /F1 14 Tf 72 770 Td (Surat palsu) Tj ET"))
			s, _ := d.readDSS(cat)
			nd := clone(s.dict)
			nd["Certs"] = append(array{ref{5, 0}}, nd["Certs"].(array)...)
			u.put(s.ref.num, s.ref.gen, nd)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parse(lt, newBudget(Limits{}))
			if err != nil {
				t.Fatal(err)
			}
			root, cat, _ := d.catalog()
			u := newUpdate(d)
			tc.mod(u, d, root, cat)
			rep := verify(t, u.finish(), VerifyOptions{Roots: l.roots()})
			wantStatus(t, rep, Invalid)
			wantReason(t, rep.Signatures[0], "does not cover the whole file")
		})
	}
}

// writeSeed is used once by hand to refresh the committed fuzz seeds:
// PADES_WRITE_SEEDS=1 go test -run TestWriteDSSSeeds.
func TestWriteDSSSeeds(t *testing.T) {
	if os.Getenv("PADES_WRITE_SEEDS") == "" {
		t.Skip("set PADES_WRITE_SEEDS to rewrite testdata/fuzz/FuzzReadDSS")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReadDSS")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range dssSeeds(t) {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed"+strconv.Itoa(i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
