package ctl

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/validation"
)

// The verification core lives in package validation, which a central
// system imports too; these names keep the callers of ctl (internal/demo)
// as they were.
type (
	// Status is validation.Status.
	Status = validation.Status
	// Verdict is validation.Verdict.
	Verdict = validation.Verdict
	// SignatureVerdict is validation.SignatureVerdict.
	SignatureVerdict = validation.SignatureVerdict
	// Check is validation.Check.
	Check = validation.Check
	// Trust is validation.Trust.
	Trust = validation.Trust
)

// The verdicts, as validation has them.
const (
	StatusValid         = validation.StatusValid
	StatusIndeterminate = validation.StatusIndeterminate
	StatusInvalid       = validation.StatusInvalid
)

// ErrNoSignature is validation.ErrNoSignature.
var ErrNoSignature = validation.ErrNoSignature

// LoadRoots reads a PEM CA bundle (validation.LoadRoots).
func LoadRoots(path string) (*x509.CertPool, error) { return validation.LoadRoots(path) }

// LoadCRL reads a CRL, PEM or DER (validation.LoadCRL).
func LoadCRL(path string) (*x509.RevocationList, error) { return validation.LoadCRL(path) }

// VerifyResult is validation.VerifyResult.
func VerifyResult(ctx context.Context, r *api.Result, docs []string, t Trust) ([]Verdict, error) {
	return validation.VerifyResult(ctx, r, docs, t)
}

// VerifyDocument is validation.VerifyDocument.
func VerifyDocument(ctx context.Context, d api.SignedDocument, content []byte, signerCert *x509.Certificate, t Trust) Verdict {
	return validation.VerifyDocument(ctx, d, content, signerCert, t)
}

// VerifyCMS is validation.VerifyCMS.
func VerifyCMS(ctx context.Context, sig, content []byte, t Trust) Verdict {
	return validation.VerifyCMS(ctx, sig, content, t)
}

// VerifyPDF is validation.VerifyPDF.
func VerifyPDF(ctx context.Context, pdf []byte, t Trust) Verdict {
	return validation.VerifyPDF(ctx, pdf, t)
}

// WriteVerdicts is validation.WriteVerdicts.
func WriteVerdicts(w io.Writer, vs []Verdict, asJSON bool) error {
	return validation.WriteVerdicts(w, vs, asJSON)
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

// IsPDF reports whether b starts as a PDF does: %PDF- within its first
// kilobyte, where readers look for it.
func IsPDF(b []byte) bool { return bytes.Contains(b[:min(len(b), 1024)], []byte("%PDF-")) }
