package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// countingSigner is a software key standing in for a PIV token: it
// records every call so tests can check it is asked once, with a digest.
type countingSigner struct {
	crypto.Signer
	mu      sync.Mutex
	digests [][]byte
	opts    []crypto.SignerOpts
}

func (s *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	s.digests = append(s.digests, bytes.Clone(digest))
	s.opts = append(s.opts, opts)
	s.mu.Unlock()
	return s.Signer.Sign(r, digest, opts)
}

func (s *countingSigner) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.digests)
}

// pki is a test CA with helpers to issue signer and TSA certificates.
type pki struct {
	caKey  *ecdsa.PrivateKey
	ca     *x509.Certificate
	caPEM  string // path
	serial int64
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Teken Test Root CA", Organization: []string{"Pemerintah Provinsi Uji"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{caKey: key, ca: ca, serial: 1}
	p.caPEM = writePEM(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func writePEM(t testing.TB, file, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a certificate for key; mod adjusts the template.
func (p *pki) issue(t testing.TB, pub crypto.PublicKey, mod func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	mod(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, pub, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// official issues a signer certificate with a name and NIP like the
// province's, for a fresh key of the given kind.
func (p *pki) official(t testing.TB, kind string) (*countingSigner, *x509.Certificate) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	cert := p.issue(t, key.Public(), func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "Dr. Andi Wijaya, M.Si. (" + kind + ")", SerialNumber: "198001012005011001"}
	})
	return &countingSigner{Signer: key}, cert
}

// testPDF writes a small PDF with a classic cross-reference table and n
// A4 pages, each showing its number.
func testPDF(n int) []byte { return testPDFWith(n, "", "") }

// testPDFWith is testPDF with extra entries in the catalog and the root
// of the page tree, and extra objects numbered from 4+2n on.
func testPDFWith(n int, catalog, pages string, extra ...string) []byte {
	return testPDFPages(n, catalog, pages, "", extra...)
}

// letterWith is a one-page letter with extra entries in the catalog and in
// the page itself (object 4), and extra objects numbered from 6 on.
func letterWith(catalog, page string, extra ...string) []byte {
	return testPDFPages(1, catalog, "", page, extra...)
}

// testPDFPages is testPDFWith with extra entries in every page as well.
func testPDFPages(n int, catalog, pages, leaf string, extra ...string) []byte {
	var b bytes.Buffer
	var offs []int
	obj := func(body string) {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offs), body)
	}
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	kids := make([]string, n)
	for i := range n {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R " + catalog + " >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 595 842] %s >>", strings.Join(kids, " "), n, pages))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	for i := range n {
		content := fmt.Sprintf("BT /F1 14 Tf 72 770 Td (Surat Keputusan Gubernur - halaman %d) Tj ET", i+1)
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R %s >>", 5+2*i, leaf))
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	}
	for _, e := range extra {
		obj(e)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R /ID [<0123456789ABCDEF0123456789ABCDEF> <0123456789ABCDEF0123456789ABCDEF>] >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	return b.Bytes()
}

// need finds a tool or reports it unavailable (a failure under CI).
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		testenv.Unavailable(t, "%s (Debian %s)", tool, pkg)
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func writeTemp(t *testing.T, file string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// xrefStreamPDF converts testPDF(n) with qpdf to cross-reference and
// object streams.
func xrefStreamPDF(t *testing.T, n int) []byte {
	t.Helper()
	qpdf := need(t, "qpdf", "qpdf")
	in := writeTemp(t, "in.pdf", testPDF(n))
	out := filepath.Join(t.TempDir(), "out.pdf")
	if msg, err := run(t, qpdf, "--object-streams=generate", in, out); err != nil {
		t.Fatalf("qpdf: %v: %s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("/XRef")) || !bytes.Contains(b, []byte("/ObjStm")) {
		t.Fatal("qpdf did not write cross-reference and object streams")
	}
	return b
}

// nssDB makes a throwaway NSS database trusting the test CA, so that
// pdfsig checks the certificate as well as the signature.
func (p *pki) nssDB(t *testing.T) string {
	t.Helper()
	certutil := need(t, "certutil", "libnss3-tools")
	dir := t.TempDir()
	if msg, err := run(t, certutil, "-N", "-d", "sql:"+dir, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v: %s", err, msg)
	}
	if msg, err := run(t, certutil, "-A", "-d", "sql:"+dir, "-n", "ca", "-t", "CT,C,C", "-i", p.caPEM); err != nil {
		t.Fatalf("certutil -A: %v: %s", err, msg)
	}
	return dir
}

// pdfsig runs poppler's verifier and returns its report.
func pdfsig(t *testing.T, nss string, pdf []byte) string {
	t.Helper()
	tool := need(t, "pdfsig", "poppler-utils")
	out, _ := run(t, tool, "-nssdir", "sql:"+nss, writeTemp(t, "signed.pdf", pdf))
	return out
}

// signatures splits a pdfsig report into one block per signature.
func signatures(report string) []string {
	parts := strings.Split(report, "\nSignature #")
	return parts[1:]
}

func qpdfCheck(t *testing.T, pdf []byte) {
	t.Helper()
	tool := need(t, "qpdf", "qpdf")
	if msg, err := run(t, tool, "--check", writeTemp(t, "check.pdf", pdf)); err != nil || !strings.Contains(msg, "No syntax or stream encoding errors found") {
		t.Fatalf("qpdf --check: %v\n%s", err, msg)
	}
}

// check is Inspect without an appearance and with the default limits,
// for the tests that only ask whether a PDF can be signed.
func check(pdf []byte) error {
	_, err := Inspect(pdf, nil, Limits{})
	return err
}

// inspectBlock is the page and rectangle Inspect gives for a.
func inspectBlock(pdf []byte, a Appearance) (int, [4]float64, error) {
	in, err := Inspect(pdf, &a, Limits{})
	if err != nil {
		return 0, [4]float64{}, err
	}
	return in.Block.Page, in.Block.Rect, nil
}
