package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// countingSigner records every call, standing in for a PIV token that must
// be asked once per document.
type countingSigner struct {
	crypto.Signer
	digests [][]byte
	opts    []crypto.SignerOpts
}

func (c *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.digests = append(c.digests, bytes.Clone(digest))
	c.opts = append(c.opts, opts)
	return c.Signer.Sign(r, digest, opts)
}

var signCases = []struct {
	name    string
	key     string
	opts    SignOptions
	hash    crypto.Hash
	sigAlg  string // as openssl -print names it
	salt    int
	printed []string
}{
	{name: "p256", key: "p256", hash: crypto.SHA256, sigAlg: "ecdsa-with-SHA256"},
	{name: "p384", key: "p384", hash: crypto.SHA384, sigAlg: "ecdsa-with-SHA384"},
	{name: "p256-sha384", key: "p256", opts: SignOptions{Hash: crypto.SHA384}, hash: crypto.SHA384, sigAlg: "ecdsa-with-SHA384"},
	{name: "p521", key: "p521", hash: crypto.SHA512, sigAlg: "ecdsa-with-SHA512"},
	{name: "rsa-pkcs1", key: "rsa", hash: crypto.SHA256, sigAlg: "sha256WithRSAEncryption"},
	// RFC 8419: SHA-512 for the content, pure Ed25519 over the attributes.
	{name: "ed25519", key: "ed25519", hash: crypto.SHA512, sigAlg: "ED25519"},
	{name: "rsa-pss", key: "rsa", opts: SignOptions{PSS: true}, hash: crypto.SHA256, sigAlg: "rsassaPss", salt: 32,
		printed: []string{"cont [ 0 ] SEQUENCE OBJECT :sha256 NULL", "OBJECT :mgf1 SEQUENCE OBJECT :sha256 NULL", "cont [ 2 ] INTEGER :20"}},
}

var asn1parseHeader = regexp.MustCompile(`\d+:d=\d+\s+hl=\d+\s+l=\s*\d+\s+(cons|prim):`)

func runOpenSSL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := testenv.LookPath(t, "openssl")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func TestSignVerifiesWithOpenSSL(t *testing.T) {
	pki := newPKI(t)
	doc := []byte("%PDF-1.7\nSurat Keputusan Gubernur nomor 800/123/2026\n")
	for _, tc := range signCases {
		t.Run(tc.name, func(t *testing.T) {
			key, cert := pki.issue(t, tc.key, signingUsage)
			signer := &countingSigner{Signer: key}
			opts := tc.opts
			opts.Chain = []*x509.Certificate{pki.inter}
			opts.SigningTime = time.Date(2026, 11, 26, 8, 30, 15, 999, time.FixedZone("WITA", 8*3600))
			sig, sd := signOnce(t, doc, signer, cert, opts)
			// One call, over the digest of exactly the signed attributes
			// (Ed25519: over the attributes themselves, with no hash).
			h := tc.hash.New()
			h.Write(sd.signer.attrs)
			want := h.Sum(nil)
			if tc.key == "ed25519" {
				want = sd.signer.attrs
				if signer.opts[0].HashFunc() != 0 {
					t.Errorf("Ed25519 signer asked with hash %v", signer.opts[0].HashFunc())
				}
			}
			if !bytes.Equal(want, signer.digests[0]) {
				t.Errorf("signer was not given the digest of the signed attributes")
			}
			if pss, ok := signer.opts[0].(*rsa.PSSOptions); ok != opts.PSS || ok && pss.SaltLength != tc.salt {
				t.Errorf("signer opts %#v, want PSS=%v salt %d", signer.opts[0], opts.PSS, tc.salt)
			}

			printed := opensslVerify(t, pki, sig, doc)
			// Drop asn1parse offsets so nested parameters read as one line.
			flat := strings.Join(strings.Fields(asn1parseHeader.ReplaceAllString(printed, "")), " ")
			for _, want := range append([]string{
				"object: contentType", "object: messageDigest", "object: signingTime",
				"object: id-smime-aa-signingCertificateV2", "UTCTIME:Nov 26 00:30:15 2026 GMT",
				"algorithm: " + tc.sigAlg, "version: 1", "eContent: <ABSENT>",
			}, tc.printed...) {
				if !strings.Contains(flat, strings.Join(strings.Fields(want), " ")) {
					t.Errorf("openssl -print lacks %q:\n%s", want, printed)
				}
			}

			got, err := Verify(sig, doc, VerifyOptions{Roots: pki.roots()})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !got.Signer.Equal(cert) || got.DigestAlgorithm != tc.hash ||
				!got.SigningTime.Equal(opts.SigningTime.Truncate(time.Second)) || len(got.Chain) != 3 {
				t.Errorf("Verify = %+v", got)
			}
		})
	}
}

// signOnce signs doc, checks the signer was asked exactly once and
// returns the signature and its parse.
func signOnce(t *testing.T, doc []byte, signer *countingSigner, cert *x509.Certificate, opts SignOptions) ([]byte, *signedData) {
	t.Helper()
	sig, err := Sign(t.Context(), bytes.NewReader(doc), signer, cert, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if len(signer.digests) != 1 {
		t.Fatalf("signer called %d times, want 1", len(signer.digests))
	}
	sd, err := parse(sig)
	if err != nil {
		t.Fatalf("parse own output: %v", err)
	}
	return sig, sd
}

// opensslVerify checks sig over doc with `openssl cms -verify`, checks
// that the same command fails for a changed document (or the success
// proves nothing), and returns `openssl cms -cmsout -print` of sig.
// OpenSSL cannot check Ed25519 with signed attributes (openssl/openssl
// issue 32248: it asks the EdDSA provider for a digest), so an Ed25519
// signature is checked with GnuTLS's certtool instead.
func opensslVerify(t *testing.T, pki *testPKI, sig, doc []byte) string {
	t.Helper()
	dir := t.TempDir()
	sigFile, docFile, changedFile := filepath.Join(dir, "sig.p7s"), filepath.Join(dir, "doc"), filepath.Join(dir, "changed")
	for f, b := range map[string][]byte{sigFile: sig, docFile: doc, changedFile: append(bytes.Clone(doc), ' ')} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(content string) (string, error) {
		return runOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigFile,
			"-content", content, "-CAfile", pki.caFile(), "-purpose", "any")
	}
	ok := "Verification successful"
	if sd, err := parse(sig); err == nil && sd.signer.alg.kind == keyEd25519 {
		certtool := testenv.LookPath(t, "certtool")
		verify = func(content string) (string, error) {
			out, err := exec.CommandContext(t.Context(), certtool, "--p7-verify", "--inder", "--infile", sigFile,
				"--load-data", content, "--load-ca-certificate", pki.caFile()).CombinedOutput()
			return string(out), err
		}
		ok = "Signature status: ok"
	}
	if out, err := verify(docFile); err != nil || !strings.Contains(out, ok) {
		t.Fatalf("cms -verify: %v\n%s", err, out)
	}
	if out, err := verify(changedFile); err == nil {
		t.Errorf("a changed document was accepted:\n%s", out)
	}
	printed, err := runOpenSSL(t, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sigFile)
	if err != nil {
		t.Fatalf("openssl cms -print: %v\n%s", err, printed)
	}
	return printed
}

// TestVerifyOpenSSLSignature checks interoperability the other way: a
// CAdES signature made by openssl itself verifies here.
func TestVerifyOpenSSLSignature(t *testing.T) {
	pki := newPKI(t)
	key, cert := pki.issue(t, "p256", signingUsage)
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"key.der": keyDER, "doc.txt": []byte("surat keluar\n")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePEM(t, filepath.Join(dir, "cert.pem"), cert.Raw)
	writePEM(t, filepath.Join(dir, "inter.pem"), pki.inter.Raw)
	sigFile := filepath.Join(dir, "sig.der")
	out, err := runOpenSSL(t, "cms", "-sign", "-binary", "-cades", "-nosmimecap", "-md", "sha256",
		"-in", filepath.Join(dir, "doc.txt"), "-signer", filepath.Join(dir, "cert.pem"),
		"-inkey", filepath.Join(dir, "key.der"), "-keyform", "DER", "-certfile", filepath.Join(dir, "inter.pem"),
		"-outform", "DER", "-out", sigFile)
	if err != nil {
		t.Fatalf("openssl cms -sign: %v\n%s", err, out)
	}
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(sig, files["doc.txt"], VerifyOptions{Roots: pki.roots()})
	if err != nil {
		t.Fatalf("Verify openssl signature: %v", err)
	}
	if !got.Signer.Equal(cert) {
		t.Errorf("signer %v", got.Signer.Subject)
	}
	if _, err := Verify(sig, []byte("surat palsu\n"), VerifyOptions{}); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("changed content: %v, want ErrDigestMismatch", err)
	}
}

func TestSignRejectsBadInput(t *testing.T) {
	pki := newPKI(t)
	ecKey, ecCert := pki.issue(t, "p256", signingUsage)
	otherKey, _ := pki.issue(t, "p256", signingUsage)
	edKey, edCert := pki.issue(t, "ed25519", signingUsage)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		signer crypto.Signer
		cert   *x509.Certificate
		opts   SignOptions
	}{
		{"nil signer", t.Context(), nil, ecCert, SignOptions{}},
		{"nil cert", t.Context(), ecKey, nil, SignOptions{}},
		{"key does not match cert", t.Context(), otherKey, ecCert, SignOptions{}},
		{"pss with ecdsa", t.Context(), ecKey, ecCert, SignOptions{PSS: true}},
		{"sha1", t.Context(), ecKey, ecCert, SignOptions{Hash: crypto.SHA1}},
		{"nil chain entry", t.Context(), ecKey, ecCert, SignOptions{Chain: []*x509.Certificate{nil}}},
		{"cancelled", cancelled, ecKey, ecCert, SignOptions{}},
		{"ed25519 with sha256", t.Context(), edKey, edCert, SignOptions{Hash: crypto.SHA256}},
		{"pss with ed25519", t.Context(), edKey, edCert, SignOptions{PSS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counting := &countingSigner{Signer: tc.signer}
			var s crypto.Signer = counting
			if tc.signer == nil {
				s = nil
			}
			if _, err := Sign(tc.ctx, strings.NewReader("x"), s, tc.cert, tc.opts); err == nil {
				t.Fatal("Sign succeeded")
			}
			if len(counting.digests) != 0 {
				t.Errorf("signer was called before the input was checked")
			}
		})
	}
	readErr := errors.New("disk gone")
	counting := &countingSigner{Signer: ecKey}
	if _, err := Sign(t.Context(), io.MultiReader(strings.NewReader("x"), iotest.ErrReader(readErr)), counting, ecCert, SignOptions{}); !errors.Is(err, readErr) || len(counting.digests) != 0 {
		t.Errorf("Sign with failing reader: %v, signer calls %d", err, len(counting.digests))
	}
	if _, err := SignDigest(t.Context(), make([]byte, 20), ecKey, ecCert, SignOptions{}); err == nil {
		t.Error("SignDigest accepted a 20-byte digest for SHA-256")
	}
}

func BenchmarkSignP256(b *testing.B) {
	pki := newPKI(b)
	key, cert := pki.issue(b, "p256", signingUsage)
	digest := make([]byte, 32)
	opts := SignOptions{Chain: []*x509.Certificate{pki.inter}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignDigest(b.Context(), digest, key, cert, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode isolates the CMS construction (attributes, hashing,
// DER) from the key operations that BenchmarkSignP256 includes.
func BenchmarkEncode(b *testing.B) {
	pki := newPKI(b)
	_, cert := pki.issue(b, "p256", signingUsage)
	alg := algorithm{kind: keyEC, hash: crypto.SHA256}
	digest, sig := make([]byte, 32), make([]byte, 72)
	t := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		attrs, err := signedAttributes(digest, t, cert)
		if err != nil {
			b.Fatal(err)
		}
		h := alg.hash.New()
		h.Write(attrs)
		h.Sum(nil)
		if _, err := encodeSignedData(cert, []*x509.Certificate{pki.inter}, alg, attrs, sig, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSigningTimeEncoding(t *testing.T) {
	pki := newPKI(t)
	key, cert := pki.issue(t, "p256", signingUsage)
	for _, tc := range []struct {
		when time.Time
		tag  byte
	}{
		{time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), 0x17},
		{time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC), 0x17},
		{time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), 0x18},
		{time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC), 0x18},
	} {
		t.Run(tc.when.Format(time.RFC3339), func(t *testing.T) {
			sig, err := Sign(t.Context(), strings.NewReader("x"), key, cert, SignOptions{SigningTime: tc.when})
			if err != nil {
				t.Fatal(err)
			}
			// RFC 5652 §11.3: UTCTime (0x17) through 2049, else
			// GeneralizedTime (0x18).
			sd, err := parse(sig)
			if err != nil {
				t.Fatal(err)
			}
			stamp := tc.when.Format("060102150405Z")
			if tc.tag == 0x18 {
				stamp = tc.when.Format("20060102150405Z")
			}
			if !bytes.Contains(sd.signer.attrs, append([]byte{tc.tag, byte(len(stamp))}, stamp...)) {
				t.Errorf("signing time not encoded as tag %#x %s", tc.tag, stamp)
			}
			got, err := Verify(sig, []byte("x"), VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !got.SigningTime.Equal(tc.when) {
				t.Errorf("signing time %v, want %v", got.SigningTime, tc.when)
			}
		})
	}
}
