package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

// The parts of the test vectors that are not the story (vectors_test.go):
// the manifest, the signing, the documents and the result.

// manifest is manifest.json: what each file is, so that a checker in any
// language (examples/check-vectors.py) can go through them without
// knowing the story.
type manifest struct {
	Comment   string             `json:"comment"`
	Terminal  string             `json:"terminal"`
	Keys      []manifestKey      `json:"keys"`
	Signer    manifestSigner     `json:"signer"`
	Envelopes []manifestEnvelope `json:"envelopes"`
	Receipts  []manifestReceipt  `json:"receipts"`
	Results   []manifestResult   `json:"results"`
	Messages  []manifestMessage  `json:"messages"`
}

type manifestKey struct {
	Name       string `json:"name"`
	Alg        string `json:"alg"`
	PrivateKey string `json:"private_key"`
	PublicKey  string `json:"public_key"`
	JWK        string `json:"jwk"` // the RFC 7638 thumbprint input
	KID        string `json:"kid"`
}

type manifestSigner struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"private_key"`
	CA          string `json:"ca"`
	CertSHA256  string `json:"cert_sha256"`
}

type manifestEnvelope struct {
	File          string `json:"file"`
	Payload       string `json:"payload"`
	Typ           string `json:"typ"`
	Key           string `json:"key"`
	Header        string `json:"header"`
	Deterministic bool   `json:"deterministic"`
	VerifyAt      string `json:"verify_at"`
	Expect        string `json:"expect"` // "valid", or the reason the terminal refuses it with
	SHA256        string `json:"sha256"`
}

type manifestReceipt struct {
	File           string `json:"file"`
	Envelope       string `json:"envelope"`
	StoredEnvelope string `json:"stored_envelope,omitempty"`
}

type manifestResult struct {
	File       string            `json:"file"`
	Job        string            `json:"job"`
	Envelope   string            `json:"envelope"`
	Documents  map[string]string `json:"documents"`  // document id → its bytes
	Signatures map[string]string `json:"signatures"` // document id → the decoded signature
}

type manifestMessage struct {
	File   string `json:"file"`
	Schema string `json:"schema"`
}

// rfc6979 signs with deterministic ECDSA whatever random source it is
// handed: Go's ecdsa.PrivateKey.Sign follows RFC 6979 when rand is nil.
type rfc6979 struct{ *ecdsa.PrivateKey }

func (k rfc6979) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.PrivateKey.Sign(nil, digest, opts)
}

// signES256 makes the compact JWS api.Signer would make, header for header,
// with an RFC 6979 signature converted from DER to R‖S (RFC 7518 §3.4).
// der returns the DER signature instead: the commonest mistake.
func signES256(key *ecdsa.PrivateKey, typ string, payload []byte, der bool) ([]byte, error) {
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	input := jwsHeader(AlgES256, kid, typ) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	sig, err := key.Sign(nil, sum[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if !der {
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			return nil, err
		}
		sig = make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	}
	return []byte(input + "." + base64.RawURLEncoding.EncodeToString(sig)), nil
}

// jwsHeader is the protected header segment as go-jose writes it: members
// in lexicographic order, no spaces.
func jwsHeader(alg, kid, typ string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"alg":%q,"kid":%q,"typ":%q}`, alg, kid, typ))
}

func readVectorPEM(name, typ string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(vectorsDir, name))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%s: want a PEM %s block", name, typ)
	}
	return block.Bytes, nil
}

func readKey(name string) (crypto.Signer, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pem"))
	if err != nil {
		return nil, err
	}
	return ParsePrivateKeyPEM(b)
}

// vectorJob is the job of the story: a letter as cms, an attendance list
// as raw, and a PDF as pades with a visible block, for the test signer.
func vectorJob(signer *x509.Certificate, docs map[string][]byte) *Job {
	sum := sha256.Sum256(signer.Raw)
	surat := NewDocument("surat", "undangan-rapat.txt", "text/plain", docs["surat"])
	surat.Format = FormatCMS
	list := NewDocument("lampiran-1", "daftar-hadir.csv", "text/csv", docs["lampiran-1"])
	list.Format = FormatRaw
	pdf := NewDocument("surat-edaran", "surat-edaran.pdf", "application/pdf", docs["surat-edaran"])
	pdf.Format = FormatPAdES
	pdf.Visible = &Visible{VerifyURL: "https://tte.example.go.id/v/" + sampleJobID}
	return &Job{
		V: Version, JobID: sampleJobID, Terminal: sampleTerminal,
		IssuedAt: t0, ExpiresAt: t0.Add(7 * 24 * time.Hour),
		Signer: Signatory{CertSHA256: hex.EncodeToString(sum[:]), NIP: signer.Subject.SerialNumber, Name: signer.Subject.CommonName},
		Title:  "Undangan rapat koordinasi", Number: "005/123/SETDA/2026",
		Sender:    "Sekretariat Daerah Provinsi Sulawesi Tenggara",
		Fields:    []Field{{Label: "Sifat", Value: "Segera"}},
		Documents: []Document{surat, list, pdf},
	}
}

// vectorDocuments are the inputs under documents/, by document id.
var vectorDocuments = map[string]string{
	"surat":        "documents/undangan-rapat.txt",
	"lampiran-1":   "documents/daftar-hadir.csv",
	"surat-edaran": "documents/surat-edaran.pdf",
}

// signatureFiles are where the decoded signatures of the result are kept,
// so that openssl can be pointed at them directly.
var signatureFiles = map[string]string{
	"surat":        "signatures/surat.p7s",
	"lampiran-1":   "signatures/lampiran-1.sig",
	"surat-edaran": "signatures/surat-edaran.signed.pdf",
}

// terminalReceipt answers an envelope as daemon/intake.go does: stored,
// or refused with the verifier's reason and detail, the job id read
// unverified. Callers change the status for what the store decides
// (duplicate, conflict). Like tekend, it leaves "for" out of a job's receipt (absent
// means job) except when the receipt is sent again on a SyncRequest.
func terminalReceipt(env []byte, what ReceiptFor, at time.Time, err error) *Receipt {
	// As tekend builds them (daemon/intake.go receipt, controlRefused).
	r := &Receipt{V: Version, Terminal: sampleTerminal, For: what, EnvelopeSHA256: EnvelopeSHA256(env), At: at}
	r.Status = ReceiptStored
	if err != nil {
		r.Status, r.Reason, r.Detail = ReceiptRefused, Reason(err), RefusalDetail(err)
	}
	if what == ForSyncRequest && err != nil {
		if id, err := UnverifiedRequestID(env); err == nil {
			r.RequestID = id
		}
		return r
	}
	if id, err := UnverifiedJobID(env); err == nil {
		r.JobID = id
	}
	return r
}

func at(t time.Time) string { return t.UTC().Format(TimeLayout) }

// cmpOr returns v, or def when v is the zero value.
func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// envelopeVariants are the envelopes made of each payload: with either
// test key, and one ES256 envelope whose signature is left in DER.
var envelopeVariants = map[string]struct {
	key, suffix, expect string
	der                 bool
}{
	"ed25519":   {"ed25519", ".ed25519.jws", "valid", false},
	"es256":     {"p256", ".es256.jws", "valid", false},
	"es256-der": {"p256", "-der.es256.jws", string(ReasonBadSignature), true},
}

// thumbprintInput is the JSON that RFC 7638 hashes into the kid: the
// required members in lexicographic order, no spaces, EC coordinates
// left-padded to 32 bytes.
func thumbprintInput(pub crypto.PublicKey) string {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		raw, _ := k.Bytes() // 0x04 ‖ X ‖ Y, each 32 bytes
		return fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, b64(raw[1:33]), b64(raw[33:]))
	default:
		raw, _ := x509.MarshalPKIXPublicKey(pub)
		return fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":%q}`, b64(raw[len(raw)-32:]))
	}
}

// vectorResult signs each document of the job as daemon/sign.go does —
// cms.SignDigest and cms.Verify, cms.SignRaw, pades.Sign — with a software
// key in place of the token.
func vectorResult(s *vectorSet, key crypto.Signer, kid string) (*Result, error) {
	ctx := context.Background()
	wita := time.FixedZone("WITA", 8*3600)
	r := &Result{V: Version, JobID: s.job.JobID, Terminal: s.job.Terminal, KID: kid, Outcome: OutcomeSigned,
		SignerCert: s.signer.Raw, CompletedAt: vSignedAt.Add(time.Minute)}
	for _, doc := range s.job.Documents {
		sum := sha256.Sum256(doc.Content)
		out := SignedDocument{ID: doc.ID, SHA256: doc.SHA256, Format: doc.SignatureFormat(), SignedAt: vSignedAt}
		var err error
		switch out.Format {
		case FormatCMS:
			out.Signature, err = cms.SignDigest(ctx, sum[:], key, s.signer, cms.SignOptions{Hash: crypto.SHA256, SigningTime: vSignedAt})
			if err == nil {
				_, err = cms.Verify(out.Signature, doc.Content, cms.VerifyOptions{Roots: s.roots, CurrentTime: vSignedAt})
			}
		case FormatRaw:
			out.Signature, err = cms.SignRaw(ctx, sum[:], key, s.signer, cms.RawOptions{Hash: crypto.SHA256})
			if err == nil {
				err = cms.VerifyRaw(out.Signature, doc.Content, s.signer, cms.RawOptions{Hash: crypto.SHA256})
			}
		case FormatPAdES:
			var signed *pades.Signed
			signed, err = pades.Sign(ctx, doc.Content, key, s.signer, pades.Options{Hash: crypto.SHA256, Time: vSignedAt, Location: wita,
				Visible: &pades.Appearance{VerifyURL: doc.Visible.VerifyURL}})
			if err == nil {
				out.Signature, out.Level = signed.PDF, LevelBB
			}
		default:
			err = errors.New("no such format")
		}
		if err != nil {
			return nil, fmt.Errorf("sign document %s (%s): %w", doc.ID, out.Format, err)
		}
		r.Documents = append(r.Documents, out)
	}
	return r, nil
}

// writeOrCompare writes the file with -update, or reports how it differs.
func writeOrCompare(t *testing.T, dir, name string, got []byte) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(name))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run 'Golden|Vectors' -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the committed file (rerun with -update if intended):\n got %.300s\nwant %.300s", name, got, want)
	}
}
