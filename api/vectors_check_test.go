package api

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
)

// TestVectors makes every file of testdata/vectors again and compares it
// byte for byte with the committed one (-update writes them), and refuses
// a file there that is neither made here nor an input, so that nothing
// stale is left for integrators to trust.
func TestVectors(t *testing.T) {
	s, err := vectors()
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]bool{}
	for _, f := range s.files {
		writeOrCompare(t, vectorsDir, f.name, f.data)
		made[f.name] = true
	}
	err = filepath.WalkDir(vectorsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(vectorsDir, path)
		rel = filepath.ToSlash(rel)
		if !made[rel] && !vectorInput(rel) {
			t.Errorf("%s is in %s but no longer made: remove it", rel, vectorsDir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// vectorInput reports whether a file of the vectors directory is written
// by hand (or by another test): the README, kid.json, the signer PKI and
// the documents, committed once.
func vectorInput(rel string) bool {
	return rel == "README.md" || rel == "kid.json" || strings.HasPrefix(rel, "pki/") || strings.HasPrefix(rel, "documents/")
}

// readManifest reads the committed manifest.json.
func readManifest(t *testing.T) *manifest {
	t.Helper()
	var m manifest
	if err := json.Unmarshal(readVector(t, "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func readVector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectorsVerify checks the committed vectors as an integrator's code
// would use them, with the terminal's own verifier: every kid is the
// thumbprint of its key, every envelope verifies (or is refused for the
// reason the manifest names) at its time, every receipt hashes the
// envelope file it answers, and every signature of the result verifies
// against the test CA.
func TestVectorsVerify(t *testing.T) {
	m := readManifest(t)
	keys := map[string]crypto.PublicKey{}
	byName := map[string]manifestKey{}
	for _, k := range m.Keys {
		pub, err := ParsePublicKeyPEM(readVector(t, k.PublicKey))
		if err != nil {
			t.Fatalf("%s: %v", k.PublicKey, err)
		}
		priv, err := ParsePrivateKeyPEM(readVector(t, k.PrivateKey))
		if err != nil {
			t.Fatalf("%s: %v", k.PrivateKey, err)
		}
		kid, _ := KeyID(pub)
		sum := sha256.Sum256([]byte(k.JWK))
		if kid != k.KID || base64.RawURLEncoding.EncodeToString(sum[:]) != k.KID || thumbprintInput(pub) != k.JWK {
			t.Errorf("key %s: kid %s, manifest %s, jwk %s", k.Name, kid, k.KID, k.JWK)
		}
		if pk, _ := KeyID(priv.Public()); pk != kid {
			t.Errorf("key %s: the private key is not the public key's", k.Name)
		}
		keys[kid] = pub
		byName[k.Name] = k
	}
	for _, e := range m.Envelopes {
		t.Run(e.File, func(t *testing.T) {
			env := readVector(t, e.File)
			if len(bytes.TrimSpace(env)) != len(env) || EnvelopeSHA256(env) != e.SHA256 {
				t.Errorf("%s: trailing whitespace, or sha256 %s is not the manifest's %s", e.File, EnvelopeSHA256(env), e.SHA256)
			}
			parts := strings.Split(string(env), ".")
			header, _ := base64.RawURLEncoding.DecodeString(parts[0])
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			if string(header) != e.Header || !bytes.Equal(payload, readVector(t, e.Payload)) {
				t.Errorf("header %s or payload is not the manifest's (%s, %s)", header, e.Header, e.Payload)
			}
			if h := fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, byName[e.Key].Alg, byName[e.Key].KID, e.Typ); string(header) != h {
				t.Errorf("header %s, want %s", header, h)
			}
			when, err := time.Parse(time.RFC3339, e.VerifyAt)
			if err != nil {
				t.Fatal(err)
			}
			v := &Verifier{Keys: keys, Terminal: m.Terminal, Skew: DefaultSkew, Now: func() time.Time { return when }}
			switch e.Typ {
			case TypeJob:
				_, _, err = v.VerifyJob(env)
			case TypeCancel:
				_, err = v.VerifyCancel(env)
			case TypeResultAck:
				_, err = v.VerifyResultAck(env)
			case TypeResultAcks:
				_, err = v.VerifyResultAcks(env)
			case TypeSyncRequest:
				_, err = v.VerifySyncRequest(env)
			default:
				t.Fatalf("typ %s", e.Typ)
			}
			if got := cmpOr(string(Reason(err)), "valid"); got != e.Expect {
				t.Errorf("verified at %s: %v, want %s", e.VerifyAt, err, e.Expect)
			}
		})
	}
	// The Go library writes the same header and payload segments; only an
	// ES256 signature of its own differs, being randomised.
	job, _, err := (&Verifier{Keys: keys, Terminal: m.Terminal, Now: func() time.Time { return t0 }}).VerifyJob(readVector(t, "job.ed25519.jws"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewSigner(loadPrivate(t, "p256"))
	if err != nil {
		t.Fatal(err)
	}
	lib, err := es.SignJob(job)
	if err != nil {
		t.Fatal(err)
	}
	if vec := readVector(t, "job.es256.jws"); !bytes.Equal(lib[:bytes.LastIndexByte(lib, '.')], vec[:bytes.LastIndexByte(vec, '.')]) {
		t.Errorf("api.Signer's signing input differs from job.es256.jws's:\n%s", lib)
	}
	for _, r := range m.Receipts {
		rc, err := DecodeReceipt(readVector(t, r.File))
		if err != nil {
			t.Fatalf("%s: %v", r.File, err)
		}
		if rc.EnvelopeSHA256 != EnvelopeSHA256(readVector(t, r.Envelope)) || rc.Terminal != m.Terminal {
			t.Errorf("%s: envelope_sha256 %s is not the sha256 of %s", r.File, rc.EnvelopeSHA256, r.Envelope)
		}
		if r.StoredEnvelope != "" && rc.StoredEnvelopeSHA256 != EnvelopeSHA256(readVector(t, r.StoredEnvelope)) {
			t.Errorf("%s: stored_envelope_sha256 %s is not the sha256 of %s", r.File, rc.StoredEnvelopeSHA256, r.StoredEnvelope)
		}
	}
	for _, r := range m.Results {
		checkVectorResult(t, m, r)
	}
	for _, msg := range m.Messages {
		if err := decodeVector(readVector(t, msg.File), msg.Schema); err != nil {
			t.Errorf("%s (%s): %v", msg.File, msg.Schema, err)
		}
	}
}

// decodeVector reads a message as its receiver does: a signed payload
// strictly, a terminal's message tolerantly.
func decodeVector(b []byte, schema string) error {
	var m Message
	switch schema {
	case "job":
		m = &Job{}
	case "cancel":
		m = &Cancel{}
	case "result-ack":
		m = &ResultAck{}
	case "result-acks":
		m = &ResultAcks{}
	case "sync-request":
		m = &SyncRequest{}
	case "receipt":
		_, err := DecodeReceipt(b)
		return err
	case "result":
		_, err := DecodeResult(b)
		return err
	case "status":
		_, err := DecodeStatus(b)
		return err
	case "sync":
		_, err := DecodeSync(b)
		return err
	default:
		return fmt.Errorf("schema %q", schema)
	}
	return decode(b, MaxMessageBytes*32, true, m)
}

func checkVectorResult(t *testing.T, m *manifest, mr manifestResult) {
	t.Helper()
	r, err := DecodeResult(readVector(t, mr.File))
	if err != nil {
		t.Fatalf("%s: %v", mr.File, err)
	}
	var job Job
	if err := decode(readVector(t, mr.Job), MaxResultBytes, true, &job); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(r.SignerCert)
	if err != nil {
		t.Fatal(err)
	}
	if h := EnvelopeSHA256(r.SignerCert); h != job.Signer.CertSHA256 || h != m.Signer.CertSHA256 {
		t.Errorf("signer_cert hashes to %s, job names %s", h, job.Signer.CertSHA256)
	}
	if kid, _ := EnvelopeKID(readVector(t, mr.Envelope)); r.KID != kid || r.JobID != job.JobID {
		t.Errorf("result kid %s job %s, envelope kid %s job %s", r.KID, r.JobID, kid, job.JobID)
	}
	caDER, err := readVectorPEM(m.Signer.CA, "CERTIFICATE")
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if len(r.Documents) != len(job.Documents) {
		t.Fatalf("%d signed documents for %d", len(r.Documents), len(job.Documents))
	}
	for i, d := range r.Documents {
		doc := job.Documents[i]
		content := readVector(t, mr.Documents[d.ID])
		if d.ID != doc.ID || d.SHA256 != doc.SHA256 || !bytes.Equal(content, doc.Content) || d.Format != doc.SignatureFormat() {
			t.Errorf("document %d: %s %s %s, job has %s %s", i, d.ID, d.SHA256, d.Format, doc.ID, doc.SHA256)
		}
		if !bytes.Equal(d.Signature, readVector(t, mr.Signatures[d.ID])) {
			t.Errorf("%s is not the signature of %s in the result", mr.Signatures[d.ID], d.ID)
		}
		opts := cms.VerifyOptions{Roots: roots, CurrentTime: d.SignedAt}
		switch d.Format {
		case FormatCMS:
			_, err = cms.Verify(d.Signature, content, opts)
		case FormatRaw:
			err = cms.VerifyRaw(d.Signature, content, cert, cms.RawOptions{Hash: crypto.SHA256})
		case FormatPAdES:
			if !bytes.HasPrefix(d.Signature, content) {
				t.Errorf("%s: the signed PDF does not start with the document", d.ID)
			}
			var sig, signed []byte
			if sig, signed, err = pdfSignature(d.Signature); err == nil {
				_, err = cms.Verify(sig, signed, opts)
			}
		}
		if err != nil {
			t.Errorf("document %s (%s): %v", d.ID, d.Format, err)
		}
	}
}

var byteRange = regexp.MustCompile(`/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]`)

// pdfSignature returns the CMS signature of a PDF's last signature
// dictionary and the bytes it signs, its /ByteRange (ISO 32000-1
// §12.8.1): everything but the /Contents hex string.
func pdfSignature(pdf []byte) (sig, signed []byte, err error) {
	all := byteRange.FindAllSubmatch(pdf, -1)
	if len(all) == 0 {
		return nil, nil, errors.New("no /ByteRange")
	}
	var n [4]int
	for i := range n {
		n[i], _ = strconv.Atoi(string(all[len(all)-1][i+1]))
	}
	if n[0] != 0 || n[1] <= 0 || n[2] <= n[1]+2 || n[2]+n[3] != len(pdf) || pdf[n[1]] != '<' || pdf[n[2]-1] != '>' {
		return nil, nil, fmt.Errorf("/ByteRange %v does not frame a /Contents string of a %d-byte file", n, len(pdf))
	}
	raw, err := hex.DecodeString(string(pdf[n[1]+1 : n[2]-1]))
	if err != nil {
		return nil, nil, fmt.Errorf("/Contents: %w", err)
	}
	// The string is padded with zeros after the DER.
	var rv asn1.RawValue
	if _, err := asn1.Unmarshal(raw, &rv); err != nil {
		return nil, nil, fmt.Errorf("/Contents: %w", err)
	}
	return rv.FullBytes, append(bytes.Clone(pdf[:n[1]]), pdf[n[2]:]...), nil
}

// TestVectorsSchemas validates every message of the vectors with the
// JSON Schemas, by the independent validator TestSchemasValidateGolden
// uses.
func TestVectorsSchemas(t *testing.T) {
	py := debianPython(t)
	m := readManifest(t)
	dir := t.TempDir()
	var input strings.Builder
	for _, msg := range m.Messages {
		sp := filepath.Join(dir, msg.Schema+".schema.json")
		if _, err := os.Stat(sp); err != nil {
			b, _ := Schema(msg.Schema)
			if err := os.WriteFile(sp, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, _ := filepath.Abs(filepath.Join(vectorsDir, msg.File))
		input.WriteString(sp + " " + p + "\n")
	}
	cmd := exec.Command(py, "-c", validateScript)
	cmd.Stdin = strings.NewReader(input.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("validator: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines {
		if !strings.HasPrefix(line, "valid ") {
			t.Errorf("%s", line)
		}
	}
	if len(lines) != len(m.Messages) {
		t.Errorf("validator judged %d messages, want %d:\n%s", len(lines), len(m.Messages), out)
	}
}

// TestVectorsOpenSSL runs the command an integrator is told to run on the
// CMS signature, as it stands in the README, and the same on the PDF's.
func TestVectorsOpenSSL(t *testing.T) {
	openssl := testenv.LookPath(t, "openssl")
	run := func(sig, content string) {
		t.Helper()
		cmd := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", content, "-CAfile", "pki/ca.pem", "-out", os.DevNull)
		cmd.Dir = vectorsDir
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Verification successful") {
			t.Errorf("openssl cms -verify -in %s -content %s: %v\n%s", sig, content, err, out)
		}
	}
	run("signatures/surat.p7s", "documents/undangan-rapat.txt")
	sig, signed, err := pdfSignature(readVector(t, "signatures/surat-edaran.signed.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp, cp := filepath.Join(dir, "pdf.p7s"), filepath.Join(dir, "signed-ranges")
	if err := os.WriteFile(sp, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	run(sp, cp)
}
