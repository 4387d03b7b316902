package pades

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/signature/cms"
)

// appendRevision adds an incremental update to pdf, whose newest
// cross-reference section is a table, that replaces the given objects:
// what anyone can do to a signed file without a key.
func appendRevision(t *testing.T, pdf []byte, objects map[int]string) []byte {
	t.Helper()
	d, err := parse(pdf, newBudget(Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	size, _ := d.trailer["Size"].(int64)
	root, _ := d.trailer["Root"].(ref)
	nums := make([]int, 0, len(objects))
	for n := range objects {
		nums = append(nums, n)
		size = max(size, int64(n+1))
	}
	slices.Sort(nums)
	b := bytes.NewBuffer(bytes.Clone(pdf))
	offs := map[int]int{}
	for _, n := range nums {
		offs[n] = b.Len()
		fmt.Fprintf(b, "%d 0 obj\n%s\nendobj\n", n, objects[n])
	}
	xref := b.Len()
	b.WriteString("xref\n")
	for _, n := range nums {
		fmt.Fprintf(b, "%d 1\n%010d 00000 n \n", n, offs[n])
	}
	fmt.Fprintf(b, "trailer\n<< /Size %d /Root %d %d R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n", size, root.num, root.gen, d.startxref, xref)
	return b.Bytes()
}

// rewriteByteRange changes the numbers of the last /ByteRange in place,
// in the fixed width Sign writes them, so no offset moves.
func rewriteByteRange(t *testing.T, pdf []byte, change func(*[4]int)) []byte {
	t.Helper()
	i := bytes.LastIndex(pdf, []byte("/ByteRange ["))
	var br [4]int
	if _, err := fmt.Sscanf(string(pdf[i+len("/ByteRange "):]), "[%d %d %d %d]", &br[0], &br[1], &br[2], &br[3]); err != nil {
		t.Fatal(err)
	}
	change(&br)
	out := bytes.Clone(pdf)
	copy(out[i+len("/ByteRange "):], fmt.Sprintf("[%d %010d %010d %010d]", br[0], br[1], br[2], br[3]))
	return out
}

func verify(t *testing.T, pdf []byte, opts VerifyOptions) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), pdf, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for i, s := range rep.Signatures {
		t.Logf("signature %d: %s %s %q level %s range %v whole %v: %s", i+1, s.Field, s.Status, signerName(s), s.Level, s.ByteRange, s.CoversWholeFile, s.Reason)
	}
	return rep
}

func signerName(s SignatureReport) string {
	if s.Signer == nil {
		return ""
	}
	return s.Signer.Subject.CommonName
}

func wantStatus(t *testing.T, rep *Report, want ...Status) {
	t.Helper()
	if len(rep.Signatures) != len(want) {
		t.Fatalf("%d signatures, want %d", len(rep.Signatures), len(want))
	}
	for i, w := range want {
		if s := rep.Signatures[i]; s.Status != w {
			t.Errorf("signature %d: %s (%s), want %s", i+1, s.Status, s.Reason, w)
		}
	}
}

func wantReason(t *testing.T, s SignatureReport, text string) {
	t.Helper()
	if !strings.Contains(s.Reason, text) {
		t.Errorf("reason %q lacks %q", s.Reason, text)
	}
}

func roots(p *pki) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

func TestVerifyOneSignature(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	wita := time.FixedZone("WITA", 8*3600)
	when := time.Now().Add(-time.Minute).Truncate(time.Second)
	for _, tc := range []struct {
		name, key string
		pdf       func(t *testing.T) []byte
		visible   *Appearance
	}{
		{"p256 invisible", "p256", func(*testing.T) []byte { return testPDF(1) }, nil},
		{"p384 visible", "p384", func(*testing.T) []byte { return testPDF(2) }, &Appearance{Page: 2, VerifyURL: "https://tte.example.go.id/v/01JGZ8"}},
		{"rsa xref stream", "rsa", func(t *testing.T) []byte { return xrefStreamPDF(t, 2) }, &Appearance{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := sign(t, p, tc.pdf(t), tc.key, Options{Time: when, Location: wita, Visible: tc.visible})
			rep := verify(t, res.PDF, VerifyOptions{Roots: roots(p)})
			wantStatus(t, rep, Valid)
			s := rep.Signatures[0]
			if !rep.Valid() || s.Field != "Signature1" || s.Kind != KindSignature || s.SubFilter != "ETSI.CAdES.detached" ||
				s.Level != "B-B" || !s.CoversWholeFile || !s.SigningTime.Equal(when) || !s.TimestampTime.IsZero() ||
				s.Signer.Subject.SerialNumber != "198001012005011001" || rep.Size != len(res.PDF) {
				t.Errorf("report %+v", s)
			}
			sigs := signatures(pdfsig(t, nss, res.PDF))
			if len(sigs) != 1 || !strings.Contains(sigs[0], "Signature is Valid.") || !strings.Contains(sigs[0], "Total document signed") {
				t.Errorf("pdfsig disagrees: %q", sigs)
			}
		})
	}
}

func TestVerifySecondSignature(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	first, _ := sign(t, p, testPDF(2), "p256", Options{Visible: &Appearance{Page: 1}})
	second, _ := sign(t, p, first.PDF, "rsa", Options{Visible: &Appearance{}})
	rep := verify(t, second.PDF, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Valid, Valid)
	a, b := rep.Signatures[0], rep.Signatures[1]
	if a.Field != "Signature1" || b.Field != "Signature2" || a.CoversWholeFile || !b.CoversWholeFile ||
		a.ByteRange[2]+a.ByteRange[3] != len(first.PDF) || !strings.Contains(signerName(b), "(rsa)") {
		t.Errorf("reports %+v\n%+v", a, b)
	}
	sigs := signatures(pdfsig(t, nss, second.PDF))
	if len(sigs) != 2 || strings.Count(strings.Join(sigs, ""), "Signature is Valid.") != 2 || !strings.Contains(sigs[1], "Total document signed") {
		t.Errorf("pdfsig disagrees: %q", sigs)
	}
}

func TestVerifyChangedByte(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	i := bytes.Index(res.PDF, []byte("halaman 1"))
	changed := bytes.Clone(res.PDF)
	changed[i+len("halaman ")] = '9'
	rep := verify(t, changed, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Invalid)
	wantReason(t, rep.Signatures[0], "message digest does not match")
	if rep.Valid() {
		t.Error("Report.Valid of a changed file")
	}
	if report := pdfsig(t, nss, changed); !strings.Contains(report, "Digest Mismatch") {
		t.Errorf("pdfsig disagrees:\n%s", report)
	}
}

func TestVerifyByteRange(t *testing.T) {
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	for _, tc := range []struct {
		name   string
		change func(*[4]int)
		want   string
	}{
		// The range is signed too: changing it breaks the signature.
		{"short of the end", func(b *[4]int) { b[3] -= 10 }, "message digest does not match"},
		{"past the end", func(b *[4]int) { b[3] += 10 }, "runs past"},
		{"hole wider than contents", func(b *[4]int) { b[1]-- }, "leaves out bytes"},
		{"hole narrower than contents", func(b *[4]int) { b[2]--; b[3]++ }, "leaves out bytes"},
		{"not from the start", func(b *[4]int) { b[0] = 1 }, "does not start the file"},
		{"overlap", func(b *[4]int) { b[1], b[2] = b[2], b[1] }, "overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := verify(t, rewriteByteRange(t, res.PDF, tc.change), VerifyOptions{Roots: roots(p)})
			wantStatus(t, rep, Invalid)
			wantReason(t, rep.Signatures[0], tc.want)
			if rep.Signatures[0].CoversWholeFile {
				t.Error("a changed range reported as covering the file")
			}
		})
	}
}

// A revision appended after the signature that changes what the page
// shows keeps the signature intact over its bytes; what must be said is
// that it does not cover the file.
func TestVerifyWrappingAttack(t *testing.T) {
	p := newPKI(t)
	nss := p.nssDB(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	forged := "BT /F1 14 Tf 72 770 Td (Surat Keputusan Gubernur - PALSU) Tj ET"
	wrapped := appendRevision(t, res.PDF, map[int]string{5: fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(forged), forged)})
	qpdfCheck(t, wrapped)
	rep := verify(t, wrapped, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Invalid)
	s := rep.Signatures[0]
	wantReason(t, s, fmt.Sprintf("does not cover the whole file: %d bytes after byte %d", len(wrapped)-len(res.PDF), len(res.PDF)))
	if s.CoversWholeFile || s.Signer == nil || s.Level != "B-B" {
		t.Errorf("report %+v", s)
	}
	report := pdfsig(t, nss, wrapped)
	if !strings.Contains(report, "Signature is Valid.") || strings.Contains(report, "Total document signed") {
		t.Errorf("pdfsig disagrees:\n%s", report)
	}
}

// A signature dictionary that no field names any longer is reported,
// not counted: viewers do not show it.
func TestVerifyUnreferencedSignature(t *testing.T) {
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	orphaned := appendRevision(t, res.PDF, map[int]string{1: "<< /Type /Catalog /Pages 2 0 R >>"})
	rep := verify(t, orphaned, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Invalid)
	wantReason(t, rep.Signatures[0], "value of no signature field")
	if rep.Signatures[0].Field != "" {
		t.Errorf("field %q", rep.Signatures[0].Field)
	}
}

func TestVerifyTrust(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	for _, tc := range []struct {
		name string
		opts VerifyOptions
		want Status
		why  string
	}{
		{"no roots", VerifyOptions{}, Indeterminate, "no CA bundle"},
		{"another CA", VerifyOptions{Roots: roots(other)}, Indeterminate, "unknown CA"},
		{"expired now", VerifyOptions{Roots: roots(p), Now: time.Now().Add(48 * time.Hour)}, Indeterminate, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := verify(t, res.PDF, tc.opts)
			wantStatus(t, rep, tc.want)
			wantReason(t, rep.Signatures[0], tc.why)
		})
	}
	if report := pdfsig(t, other.nssDB(t), res.PDF); !strings.Contains(report, "Signature is Valid.") || strings.Contains(report, "Certificate is Trusted") {
		t.Errorf("pdfsig with another CA:\n%s", report)
	}
}

func TestVerifyKeyUsage(t *testing.T) {
	p := newPKI(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Kunci Enkripsi"}
		c.KeyUsage = x509.KeyUsageKeyEncipherment
	})
	res, err := Sign(context.Background(), testPDF(1), key, cert, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := verify(t, res.PDF, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Invalid)
	wantReason(t, rep.Signatures[0], "key usage")
}

// shortLived signs with a certificate that expires in an hour, so that a
// verification two hours on finds it expired.
func shortLived(t *testing.T, p *pki, opts Options) *Signed {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Pejabat Sementara", SerialNumber: "199001012015011001"}
		c.NotAfter = time.Now().Add(time.Hour)
	})
	res, err := Sign(context.Background(), testPDF(1), key, cert, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestVerifyTimestamp(t *testing.T) {
	p := newPKI(t)
	tsa := startTSA(t, p)
	later := time.Now().Add(2 * time.Hour)

	res := shortLived(t, p, Options{TSA: authorityAt(t, tsa.URL)})
	res, err := Timestamp(context.Background(), res, *authorityAt(t, tsa.URL))
	if err != nil || !res.Timestamped {
		t.Fatalf("Timestamp: %v %v", err, res.TimestampError)
	}
	rep := verify(t, res.PDF, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Valid)
	s := rep.Signatures[0]
	if s.Level != "B-T" || time.Since(s.TimestampTime) > time.Hour || s.TimestampTime.IsZero() {
		t.Errorf("report %+v", s)
	}
	// The timestamp proves the signature older than the certificate's
	// expiry; without one the same verification cannot tell.
	wantStatus(t, verify(t, res.PDF, VerifyOptions{Roots: roots(p), Now: later}), Valid)
	plain := shortLived(t, p, Options{})
	rep = verify(t, plain.PDF, VerifyOptions{Roots: roots(p), Now: later})
	wantStatus(t, rep, Indeterminate)
	wantReason(t, rep.Signatures[0], "no trusted signature timestamp")

	// An authority nobody trusts makes the level B-T unproven.
	rep = verify(t, res.PDF, VerifyOptions{Roots: roots(p), TSARoots: roots(newPKI(t))})
	wantStatus(t, rep, Indeterminate)
	wantReason(t, rep.Signatures[0], "timestamp authority")

	// A token moved to another signature stamps something else.
	other := shortLived(t, p, Options{TSA: authorityAt(t, tsa.URL)})
	_, der := extract(t, res.PDF)
	sig, err := readSignature(context.Background(), other.PDF, lastContents(t, other.PDF))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := cms.SignatureTimestamps(der)
	if err != nil || len(tokens) != 1 {
		t.Fatalf("SignatureTimestamps: %d, %v", len(tokens), err)
	}
	if err := sig.stamp(other.PDF, tokens[0]); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, other.PDF, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Invalid)
	wantReason(t, rep.Signatures[0], "does not stamp this signature")
}

// lastContents is the hole of the last /ByteRange.
func lastContents(t *testing.T, pdf []byte) [2]int {
	t.Helper()
	c, ok := wholeFileRange(pdf, bytes.LastIndex(pdf, []byte("/ByteRange"))+len("/ByteRange"))
	if !ok {
		t.Fatal("no byte range over the whole file")
	}
	return c
}

func TestVerifyRevocation(t *testing.T) {
	p := newPKI(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Dr. Andi Wijaya, M.Si.", SerialNumber: "198001012005011001"}
		c.CRLDistributionPoints = []string{"http://crl.example.go.id/ca.crl"}
	})
	res, err := Sign(context.Background(), testPDF(1), key, cert, Options{Time: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	crl := func(revoked ...x509.RevocationListEntry) *x509.RevocationList {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: time.Now().Add(-time.Second), NextUpdate: time.Now().Add(time.Hour),
			RevokedCertificateEntries: revoked,
		}, p.ca, p.caKey)
		if err != nil {
			t.Fatal(err)
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, tc := range []struct {
		name string
		crls []*x509.RevocationList
		want Status
		why  string
	}{
		{"no crl", nil, Indeterminate, "no revocation data"},
		{"crl of another ca", []*x509.RevocationList{crlOf(t, newPKI(t))}, Indeterminate, "no revocation data"},
		{"not revoked", []*x509.RevocationList{crl()}, Valid, ""},
		{"revoked before signing", []*x509.RevocationList{crl(x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: time.Now().Add(-time.Hour)})}, Invalid, "revoked"},
		{"revoked after, unproven", []*x509.RevocationList{crl(x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: time.Now().Add(-time.Second)})}, Indeterminate, "revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := verify(t, res.PDF, VerifyOptions{Roots: roots(p), CRLs: tc.crls})
			wantStatus(t, rep, tc.want)
			wantReason(t, rep.Signatures[0], tc.why)
		})
	}
}

func crlOf(t testing.TB, p *pki) *x509.RevocationList {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Second), NextUpdate: time.Now().Add(time.Hour)}, p.ca, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestVerifyRefuses(t *testing.T) {
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	twoContents := replace(t, res.PDF, "/Filter /Adobe.PPKLite", "/Contents <00>        ")
	for _, tc := range []struct {
		name string
		pdf  []byte
		is   error
		why  string
	}{
		{"unsigned", testPDF(1), ErrNotSigned, ""},
		{"not a pdf", []byte("surat"), ErrMalformed, ""},
		{"two contents", twoContents, nil, "2 /Contents"},
		{"other subfilter", replace(t, res.PDF, "/ETSI.CAdES.detached", "/adbe.x509.rsa_sha1 "), nil, "SubFilter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Verify(context.Background(), tc.pdf, VerifyOptions{Roots: roots(p)})
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("Verify: %v, want %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, rep, Invalid)
			wantReason(t, rep.Signatures[0], tc.why)
		})
	}
}

func TestVerifyStopsWithContext(t *testing.T) {
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, res.PDF, VerifyOptions{Roots: roots(p)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with an ended context: %v", err)
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"D:20261126140500+08'00'": "2026-11-26T14:05:00+08:00",
		"D:20261126140500+08'00":  "2026-11-26T14:05:00+08:00",
		"D:20261126140500Z":       "2026-11-26T14:05:00Z",
		"D:20261126140500Z00'00'": "2026-11-26T14:05:00Z",
		"D:20261126140500-05'30'": "2026-11-26T14:05:00-05:30",
		"D:2026":                  "2026-01-01T00:00:00Z",
		"20261126":                "2026-11-26T00:00:00Z",
	} {
		got, ok := parseDate(in)
		if !ok || got.Format(time.RFC3339) != want {
			t.Errorf("parseDate(%q) = %v %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "D:", "D:20261326", "D:2026112614050X", "D:20261126140500+0", "D:20261126140500+25'00'", "D:+0261126"} {
		if got, ok := parseDate(bad); ok {
			t.Errorf("parseDate(%q) = %v, want a refusal", bad, got)
		}
	}
}

func TestPrintable(t *testing.T) {
	if got := printable("Siti\x1b[2J\u202eRahma"); got != `Siti\u001b[2J\u202eRahma` {
		t.Errorf("printable: %q", got)
	}
	for _, s := range []Status{Invalid, Indeterminate, Valid} {
		b, _ := s.MarshalText()
		if string(b) != s.String() || strconv.Quote(s.String()) == `""` {
			t.Errorf("status %d: %q", s, b)
		}
	}
}

// A signature in an algorithm signature/cms does not accept was not
// checked: it is Indeterminate, not a forgery.
func TestVerifyUnsupportedAlgorithm(t *testing.T) {
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{})
	// SHA-256 (2.16.840.1.101.3.4.2.1) becomes 2.16.840.1.101.3.4.2.127
	// in the hole, which the signature does not cover.
	changed := replace(t, res.PDF, "0609608648016503040201", "060960864801650304027f")
	rep := verify(t, changed, VerifyOptions{Roots: roots(p)})
	wantStatus(t, rep, Indeterminate)
	wantReason(t, rep.Signatures[0], "unsupported")
}
