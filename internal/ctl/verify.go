package ctl

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/cms"
)

// Verdict is the outcome of checking one document's signature.
type Verdict struct {
	Document    string // the file checked
	DocumentID  string // the result's document id; empty for --sig
	Format      api.Format
	Signer      string // certificate CN
	NIP         string // certificate serialNumber
	SigningTime time.Time
	Err         error // nil when valid
}

// Valid reports whether the signature verified.
func (v Verdict) Valid() bool { return v.Err == nil }

// ErrNoSignature says a result holds no signature for a document.
var ErrNoSignature = errors.New("the result holds no signature for this document")

// LoadRoots reads a PEM CA bundle.
func LoadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, errors.New("no CA bundle: set --ca, TEKEN_SIGNER_CA, TEKEN_CA or signer_ca in the config file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return p, nil
}

// ReadResult decodes a result file as results --out writes it (the wire
// JSON of a Result).
func ReadResult(raw []byte) (*api.Result, error) {
	r, err := api.DecodeResult(raw)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return r, nil
}

// VerifyResult checks each document file against the signature the result
// holds for it, matched by the document's SHA-256.
func VerifyResult(r *api.Result, docs []string, roots *x509.CertPool) ([]Verdict, error) {
	if r.Outcome != api.OutcomeSigned {
		return nil, fmt.Errorf("job %s ended %s: the result holds no signatures", r.JobID, r.Outcome)
	}
	var signerCert *x509.Certificate
	if len(r.SignerCert) > 0 {
		c, err := x509.ParseCertificate(r.SignerCert)
		if err != nil {
			return nil, fmt.Errorf("result signer certificate: %w", err)
		}
		signerCert = c
	}
	byHash := make(map[string]api.SignedDocument, len(r.Documents))
	for _, d := range r.Documents {
		byHash[d.SHA256] = d
	}
	out := make([]Verdict, 0, len(docs))
	for _, path := range docs {
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("document: %w", err)
		}
		sum := sha256.Sum256(content)
		d, ok := byHash[hex.EncodeToString(sum[:])]
		if !ok {
			out = append(out, Verdict{Document: path, Err: ErrNoSignature})
			continue
		}
		var v Verdict
		switch d.Format {
		case api.FormatCMS:
			v = VerifyCMS(d.Signature, content, roots)
		case api.FormatRaw:
			v = verifyRaw(d, content, signerCert, roots)
		default:
			v = Verdict{Format: d.Format, Err: fmt.Errorf("format %q cannot be checked", d.Format)}
		}
		v.Document, v.DocumentID = path, d.ID
		out = append(out, v)
	}
	return out, nil
}

// VerifyCMS checks a detached CMS signature over content, its signer
// chaining to roots.
func VerifyCMS(sig, content []byte, roots *x509.CertPool) Verdict {
	v := Verdict{Format: api.FormatCMS}
	s, err := cms.Verify(sig, content, cms.VerifyOptions{Roots: roots})
	if s != nil && s.Signer != nil {
		v.Signer, v.NIP, v.SigningTime = s.Signer.Subject.CommonName, s.Signer.Subject.SerialNumber, s.SigningTime
	}
	v.Err = err
	return v
}

func verifyRaw(d api.SignedDocument, content []byte, cert *x509.Certificate, roots *x509.CertPool) Verdict {
	v := Verdict{Format: api.FormatRaw, SigningTime: d.SignedAt}
	if cert == nil {
		v.Err = errors.New("raw signature without the signer certificate")
		return v
	}
	v.Signer, v.NIP = cert.Subject.CommonName, cert.Subject.SerialNumber
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: d.SignedAt,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		v.Err = fmt.Errorf("signer certificate not trusted: %w", err)
		return v
	}
	v.Err = cms.VerifyRaw(d.Signature, content, cert, cms.RawOptions{})
	return v
}
