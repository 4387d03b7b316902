package pades

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func TestSignVerifiedByPdfsig(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	wita := time.FixedZone("WITA", 8*3600)
	cases := []struct {
		name    string
		key     string
		pdf     func(t *testing.T) []byte
		visible *Appearance
	}{
		{"p256 minimal invisible", "p256", func(*testing.T) []byte { return testPDF(1) }, nil},
		{"p384 multipage visible page 2", "p384", func(*testing.T) []byte { return testPDF(3) }, &Appearance{Page: 2, VerifyURL: "https://tte.example.go.id/v/01JDXYZ"}},
		{"rsa xref stream default block", "rsa", func(t *testing.T) []byte { return xrefStreamPDF(t, 2) }, &Appearance{VerifyURL: "https://tte.example.go.id/v/01JDXYZ"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.pdf(t)
			signer, cert := p.official(t, tc.key)
			res, err := Sign(context.Background(), in, signer, cert, Options{
				Time: time.Date(2026, 11, 26, 14, 5, 0, 0, wita), Location: wita,
				Reason: "Persetujuan surat", Visible: tc.visible,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(res.PDF, in) {
				t.Fatal("the original bytes were not kept at the start")
			}
			if n := signer.calls(); n != 1 {
				t.Fatalf("signer called %d times, want 1", n)
			}
			report := pdfsig(t, nss, res.PDF)
			t.Log(report)
			sigs := signatures(report)
			if len(sigs) != 1 {
				t.Fatalf("pdfsig found %d signatures, want 1:\n%s", len(sigs), report)
			}
			for _, want := range []string{"Signature Validation: Signature is Valid.", "Total document signed", "Certificate Validation: Certificate is Trusted.", "ETSI.CAdES.detached"} {
				if !strings.Contains(sigs[0], want) {
					t.Errorf("pdfsig report lacks %q:\n%s", want, report)
				}
			}
			qpdfCheck(t, res.PDF)
		})
	}
}

// sign signs in with a fresh official of the given key kind.
func sign(t *testing.T, p *pki, in []byte, kind string, opts Options) (*Signed, *countingSigner) {
	t.Helper()
	signer, cert := p.official(t, kind)
	res, err := Sign(context.Background(), in, signer, cert, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := signer.calls(); n != 1 {
		t.Fatalf("signer called %d times, want 1", n)
	}
	return res, signer
}

func TestSignerGetsOneDigest(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		key  string
		hash crypto.Hash
		want crypto.Hash
	}{
		{"p256", 0, crypto.SHA256},
		{"p384", 0, crypto.SHA384},
		{"rsa", 0, crypto.SHA256},
		{"p256", crypto.SHA384, crypto.SHA384},
		{"rsa", crypto.SHA512, crypto.SHA512},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.key, tc.want), func(t *testing.T) {
			_, signer := sign(t, p, testPDF(1), tc.key, Options{Hash: tc.hash})
			if got := len(signer.digests[0]); got != tc.want.Size() {
				t.Errorf("signer got %d bytes, want a %v digest", got, tc.want)
			}
			if signer.opts[0].HashFunc() != tc.want {
				t.Errorf("signer opts hash %v, want %v", signer.opts[0].HashFunc(), tc.want)
			}
		})
	}
}

func TestSecondSignatureKeepsFirstValid(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	for _, tc := range []struct {
		name string
		pdf  func(t *testing.T) []byte
	}{
		{"xref table", func(*testing.T) []byte { return testPDF(2) }},
		{"xref stream", func(t *testing.T) []byte { return xrefStreamPDF(t, 2) }},
		// Word processors write the AcroForm as its own object, with a
		// default appearance that must survive.
		{"indirect acroform", func(*testing.T) []byte {
			return testPDFWith(2, "/AcroForm 8 0 R", "", "<< /Fields [] /DA (/Helv 0 Tf 0 g) >>")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, _ := sign(t, p, tc.pdf(t), "p256", Options{Visible: &Appearance{Page: 1}})
			second, _ := sign(t, p, first.PDF, "rsa", Options{Visible: &Appearance{}})
			if !bytes.HasPrefix(second.PDF, first.PDF) {
				t.Fatal("the first signed revision was rewritten")
			}
			report := pdfsig(t, nss, second.PDF)
			t.Log(report)
			sigs := signatures(report)
			if len(sigs) != 2 {
				t.Fatalf("pdfsig found %d signatures, want 2:\n%s", len(sigs), report)
			}
			for i, s := range sigs {
				if !strings.Contains(s, "Signature Validation: Signature is Valid.") {
					t.Errorf("signature %d not valid:\n%s", i+1, report)
				}
			}
			if !strings.Contains(sigs[0], "Signature Field Name: Signature1") || !strings.Contains(sigs[1], "Signature Field Name: Signature2") {
				t.Errorf("field names not Signature1, Signature2:\n%s", report)
			}
			// The first signature covers its own revision only; the last
			// covers the whole file.
			if !strings.Contains(sigs[1], "Total document signed") {
				t.Errorf("second signature does not cover the document:\n%s", report)
			}
			qpdfCheck(t, second.PDF)
			d, err := parse(second.PDF, newBudget(Limits{}))
			if err != nil {
				t.Fatal(err)
			}
			_, cat, err := d.catalog()
			if err != nil {
				t.Fatal(err)
			}
			af, err := d.dictOf(cat["AcroForm"], "AcroForm")
			if err != nil {
				t.Fatal(err)
			}
			fields, err := d.arrayOf(af["Fields"], "fields")
			if err != nil || len(fields) != 2 || af["SigFlags"] != int64(3) {
				t.Fatalf("AcroForm %v: want two fields and SigFlags 3", af)
			}
			da, _ := af["DA"].(pdfString)
			if _, indirect := cat["AcroForm"].(ref); indirect && string(da) != "/Helv 0 Tf 0 g" {
				t.Fatalf("AcroForm lost its /DA: %v", af)
			}
		})
	}
}

func TestChangeAfterSigningIsReported(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	i := bytes.Index(res.PDF, []byte("halaman 1"))
	if i < 0 {
		t.Fatal("test document text not found")
	}
	changed := bytes.Clone(res.PDF)
	changed[i+len("halaman ")] = '9'
	report := pdfsig(t, nss, changed)
	if strings.Contains(report, "Signature is Valid.") || !strings.Contains(report, "Digest Mismatch") {
		t.Fatalf("pdfsig did not report the change:\n%s", report)
	}
}

func TestCrossCheckWithOpenSSL(t *testing.T) {
	tool := need(t, "openssl", "openssl")
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	content, der := extract(t, res.PDF)
	out, err := run(t, tool, "cms", "-verify", "-binary", "-inform", "DER", "-in", writeTemp(t, "sig.der", der),
		"-content", writeTemp(t, "content", content), "-CAfile", p.caPEM, "-purpose", "any", "-out", os.DevNull)
	if err != nil || !strings.Contains(out, "Verification successful") {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	attrs, err := run(t, tool, "cms", "-cmsout", "-print", "-inform", "DER", "-in", writeTemp(t, "sig.der", der))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(attrs, "signingTime") {
		t.Error("CMS carries a signing-time attribute, forbidden in PAdES baseline")
	}
	if !strings.Contains(attrs, "id-smime-aa-signingCertificateV2") {
		t.Errorf("CMS lacks signing-certificate-v2:\n%s", attrs)
	}
}

// TestEd25519 signs with an Ed25519 key (RFC 8419 inside PAdES) and has the
// CMS checked by GnuTLS: poppler with the NSS of Debian 12 and OpenSSL 3
// cannot check Ed25519 CMS with signed attributes, so pdfsig's verdict is
// only logged.
func TestEd25519(t *testing.T) {
	tool := need(t, "certtool", "gnutls-bin")
	p := newPKI(t)
	in := testPDF(2)
	res, _ := sign(t, p, in, "ed25519", Options{Visible: &Appearance{Page: 2, VerifyURL: "https://tte.example.go.id/v/01JDXYZ"}})
	wantStatus(t, verify(t, res.PDF, VerifyOptions{Roots: roots(p)}), Valid)
	content, der := extract(t, res.PDF)
	verifyCMS := func(content []byte) (string, error) {
		return run(t, tool, "--p7-verify", "--inder", "--infile", writeTemp(t, "sig.der", der),
			"--load-data", writeTemp(t, "content", content), "--load-ca-certificate", p.caPEM)
	}
	if out, err := verifyCMS(content); err != nil || !strings.Contains(out, "Signature status: ok") || !strings.Contains(out, "EdDSA-Ed25519") {
		t.Fatalf("certtool --p7-verify: %v\n%s", err, out)
	}
	if out, err := verifyCMS(append(content, ' ')); err == nil {
		t.Errorf("certtool accepted changed content:\n%s", out)
	}
	qpdfCheck(t, res.PDF)
	t.Logf("pdfsig, for the record:\n%s", pdfsig(t, p.nssDB(t), res.PDF))
}

// extract returns the signed bytes and the CMS of the last signature.
func extract(t *testing.T, pdf []byte) ([]byte, []byte) {
	t.Helper()
	i := bytes.LastIndex(pdf, []byte("/ByteRange ["))
	var br [4]int
	if _, err := fmt.Sscanf(string(pdf[i+len("/ByteRange "):]), "[%d %d %d %d]", &br[0], &br[1], &br[2], &br[3]); err != nil {
		t.Fatal(err)
	}
	content := append(bytes.Clone(pdf[br[0]:br[1]]), pdf[br[2]:br[2]+br[3]]...)
	hexDER := bytes.TrimRight(pdf[br[1]+1:br[2]-1], "0")
	if len(hexDER)%2 == 1 {
		hexDER = hexDER[:len(hexDER)+1]
	}
	der, err := hex.DecodeString(string(hexDER))
	if err != nil {
		t.Fatal(err)
	}
	// Trailing zero bytes of the DER itself were trimmed with the padding;
	// cryptobyte tells the real length.
	s := cryptobyte.String(append(der, make([]byte, 8)...))
	var whole cryptobyte.String
	if !s.ReadASN1Element(&whole, cbasn1.SEQUENCE) {
		t.Fatal("contents are not a DER SEQUENCE")
	}
	return content, whole
}
