package validation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

// VerifyResult checks each document file against the signature the result
// holds for it, matched by the document's SHA-256.
func VerifyResult(ctx context.Context, r *api.Result, docs []string, t Trust) ([]Verdict, error) {
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
			v := Verdict{Document: path, Status: StatusInvalid, Signatures: []SignatureVerdict{}}
			v.fail(StatusInvalid, "%v", ErrNoSignature)
			out = append(out, v)
			continue
		}
		v := VerifyDocument(ctx, d, content, signerCert, t)
		v.Document = path
		out = append(out, v)
	}
	return out, nil
}

// VerifyDocument checks one signed document of a result against the
// document's bytes as dispatched: a CMS signature over them, a raw
// signature by signerCert (the result's), or a signed PDF that begins
// with them and whose newest signature, by signerCert, covers all that
// the terminal added.
func VerifyDocument(ctx context.Context, d api.SignedDocument, content []byte, signerCert *x509.Certificate, t Trust) Verdict {
	var v Verdict
	switch d.Format {
	case api.FormatCMS:
		v = VerifyCMS(ctx, d.Signature, content, t)
	case api.FormatRaw:
		v = verifyRaw(ctx, d, content, signerCert, t)
	case api.FormatPAdES:
		v = verifyPAdES(ctx, d.Signature, content, signerCert, t)
	default:
		v = Verdict{Format: d.Format, Signatures: []SignatureVerdict{}}
		v.fail(StatusInvalid, "format %q cannot be checked", d.Format)
	}
	v.DocumentID = d.ID
	return v
}

// verifyRaw checks a raw signature by cert, the result's: it carries no
// timestamp and no validation data, so the chain is judged now and the
// revocation on t.CRLs and t.Online alone.
func verifyRaw(ctx context.Context, d api.SignedDocument, content []byte, cert *x509.Certificate, t Trust) Verdict {
	v := Verdict{Format: api.FormatRaw, Status: StatusValid}
	sv := SignatureVerdict{Kind: string(pades.KindSignature), SigningTime: timePtr(d.SignedAt)}
	if cert != nil {
		sv.Signer, sv.NIP = cert.Subject.CommonName, cert.Subject.SerialNumber
	}
	var cs checks
	switch err := checkRaw(d, content, cert); {
	case err != nil:
		cs.add(CheckIntegrity, StatusInvalid, "%s", err)
	default:
		cs.add(CheckIntegrity, StatusValid, "raw signature over the document's digest verified")
		cs = append(cs, rawTrust(ctx, cert, t)...)
		cs.add(CheckTimestamp, StatusValid, "none: a raw signature carries none, and signed_at is the terminal's claim")
		cs.add(CheckLevel, StatusValid, "none: a raw signature has no baseline level")
	}
	cs.settle(&sv)
	v.Signatures = []SignatureVerdict{sv}
	v.settle()
	return v
}

func checkRaw(d api.SignedDocument, content []byte, cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("raw signature without the signer certificate")
	}
	return cms.VerifyRaw(d.Signature, content, cert, cms.RawOptions{})
}

// rawTrust is the chain and revocation checks of a raw signature.
func rawTrust(ctx context.Context, cert *x509.Certificate, t Trust) checks {
	var cs checks
	if t.Roots == nil {
		cs.add(CheckChain, StatusIndeterminate, errNoBundle)
		cs.add(CheckRevocation, StatusIndeterminate, notChecked)
		return cs
	}
	now := t.now()
	chains, err := cert.Verify(x509.VerifyOptions{Roots: t.Roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		st, why := classify(fmt.Errorf("%w: %w", cms.ErrUntrusted, err), false)
		cs.add(CheckChain, st, "%s", why)
		cs.add(CheckRevocation, StatusIndeterminate, notChecked)
		return cs
	}
	chain := chains[0]
	cs.add(CheckChain, StatusValid, "to %q at %s (%s)", printable(chain[len(chain)-1].Subject.CommonName), stamp(now), atWhat(false))
	var data revData
	for _, l := range t.CRLs {
		data.crls = append(data.crls, sourced[*x509.RevocationList]{l, fromCRLArg})
	}
	rc, _ := revocationCheck(ctx, data, chain, now, false, t, fromCRLArg)
	return append(cs, rc)
}

// VerifyPDF checks every signature of a signed PDF on its own (a file
// results --out wrote, say).
func VerifyPDF(ctx context.Context, pdf []byte, t Trust) Verdict {
	v := Verdict{Format: api.FormatPAdES, Status: StatusValid, Signatures: []SignatureVerdict{}}
	rep, err := pades.Verify(ctx, pdf, padesOptions(t))
	if err != nil {
		v.fail(StatusInvalid, "%v", err)
		return v
	}
	v.Signatures = signatureVerdicts(ctx, pdf, rep, t)
	v.settle()
	return v
}

// verifyPAdES is VerifyPDF for a pades result, with what the result
// promises besides: the signed PDF is the document as dispatched followed
// by the terminal's update, its newest signature covers that update, and
// that signature is by the result's signer certificate.
func verifyPAdES(ctx context.Context, signed, original []byte, signerCert *x509.Certificate, t Trust) Verdict {
	v := Verdict{Format: api.FormatPAdES, Status: StatusValid, Signatures: []SignatureVerdict{}}
	if !bytes.HasPrefix(signed, original) {
		v.fail(StatusInvalid, "the signed PDF does not begin with the document as dispatched")
	}
	rep, err := pades.Verify(ctx, signed, padesOptions(t))
	if err != nil {
		v.fail(StatusInvalid, "%v", err)
		return v
	}
	v.Signatures = signatureVerdicts(ctx, signed, rep, t)
	v.settle()
	// The terminal's signature is the newest of a signer: document
	// timestamps and validation data may follow it.
	var newest *pades.SignatureReport
	for i := len(rep.Signatures) - 1; i >= 0; i-- {
		if rep.Signatures[i].Kind != pades.KindDocumentTimestamp {
			newest = &rep.Signatures[i]
			break
		}
	}
	switch {
	case newest == nil || newest.ByteRange[2]+newest.ByteRange[3] <= len(original):
		v.fail(StatusInvalid, "no signature covers what the terminal added to the document")
	case signerCert != nil && (newest.Signer == nil || !newest.Signer.Equal(signerCert)):
		v.fail(StatusInvalid, "the newest signature is not by the result's signer certificate")
	}
	return v
}

func padesOptions(t Trust) pades.VerifyOptions {
	return pades.VerifyOptions{Roots: t.Roots, TSARoots: t.TSARoots, CRLs: t.CRLs, Now: t.Now}
}
