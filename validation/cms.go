package validation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

// notChecked is the revocation check of a signer whose chain failed: it
// follows from the chain's verdict, and is left out of the reason.
const notChecked = "not checked: the signer's chain is not established"

// errNoBundle is why a signature checked without roots is INDETERMINATE:
// signature/cms and x509 would skip the chain, or use the system's.
const errNoBundle = "no CA bundle to check the signer against"

// VerifyCMS checks a detached CMS signature over content: intact; a
// signature timestamp, if any, over its value by an authority chaining to
// t.TSARoots; the signer chaining to t.Roots at the timestamp's genTime,
// else now (the signing-time attribute is the signer's claim); its status
// at that time from the CAdES revocation-values, t.CRLs or t.Online; and
// the level: B-T with a timestamp, B-LT when the signature's own
// validation data covers the chain with revocation data issued after the
// timestamp.
func VerifyCMS(ctx context.Context, sig, content []byte, t Trust) Verdict {
	v := Verdict{Format: api.FormatCMS, Status: StatusValid}
	sv := SignatureVerdict{Kind: string(pades.KindSignature)}
	judgeCMS(ctx, &sv, sig, content, t)
	v.Signatures = []SignatureVerdict{sv}
	v.settle()
	return v
}

func judgeCMS(ctx context.Context, sv *SignatureVerdict, sig, content []byte, t Trust) {
	var cs checks
	defer func() { cs.settle(sv) }()
	s, err := cms.Verify(sig, content, cms.VerifyOptions{})
	if err != nil {
		cs.add(CheckIntegrity, cmsStatus(err), "%v", err)
		return
	}
	sv.Signer, sv.NIP = s.Signer.Subject.CommonName, s.Signer.Subject.SerialNumber
	sv.SigningTime = timePtr(s.SigningTime)
	cs.add(CheckIntegrity, StatusValid, "signature value and message digest (%v) verified", s.DigestAlgorithm)

	certs, crls, basics, vvErr := cms.ValidationValues(sig)
	pool := x509.NewCertPool()
	var data revData
	if vvErr == nil {
		for _, der := range certs {
			if c, err := x509.ParseCertificate(der); err == nil {
				pool.AddCert(c)
			}
		}
		for _, der := range crls {
			if l, err := x509.ParseRevocationList(der); err == nil {
				data.crls = append(data.crls, sourced[*x509.RevocationList]{l, fromCAdES})
			}
		}
		for _, b := range basics {
			if full, err := wrapBasic(b); err == nil {
				data.ocsps = append(data.ocsps, sourced[[]byte]{full, fromCAdES})
			}
		}
	}
	for _, l := range t.CRLs {
		data.crls = append(data.crls, sourced[*x509.RevocationList]{l, fromCRLArg})
	}

	tsCheck, ts, trusted := signatureTimestamp(sig, s.Signature, pool, t)
	at, proven := t.now(), false
	if trusted {
		at, proven = ts.Time, true
	}
	if ts != nil {
		sv.TimestampTime = timePtr(ts.Time)
	}

	sv.Level = "B-B"
	if ts != nil {
		sv.Level = "B-T"
	}
	chain, chainCheck := signerChain(sig, s.Signer, pool, at, proven, t)
	cs = append(cs, chainCheck)
	if chain == nil {
		cs.add(CheckRevocation, StatusIndeterminate, notChecked)
		cs = append(cs, tsCheck)
		cs.add(CheckLevel, StatusValid, "%s", sv.Level)
		return
	}
	rc, embedded := revocationCheck(ctx, data, chain, at, proven, t, fromCAdES)
	if vvErr != nil && rc.Status != StatusValid {
		rc.Detail += fmt.Sprintf(" (the validation data does not read: %v)", vvErr)
	}
	cs = append(cs, rc, tsCheck)
	if embedded && proven && rc.Status == StatusValid && chainEmbedded(sig, chain) {
		sv.Level = "B-LT"
	}
	cs.add(CheckLevel, StatusValid, "%s", sv.Level)
}

// chainEmbedded says whether every certificate of chain but the root is
// in the signature: its certificates or its certificate-values.
func chainEmbedded(sig []byte, chain []*x509.Certificate) bool {
	for _, c := range chain[:len(chain)-1] {
		if !bytes.Contains(sig, c.Raw) {
			return false
		}
	}
	return true
}

// signatureTimestamp checks the first signature-time-stamp of sig, over
// value: nil without one. A token that is broken or stamps something
// else is INVALID, one from an authority that does not chain to the TSA
// roots INDETERMINATE (trusted false).
func signatureTimestamp(sig, value []byte, pool *x509.CertPool, t Trust) (c Check, ts *cms.Timestamp, trusted bool) {
	c = Check{Name: CheckTimestamp, Status: StatusValid}
	tokens, err := cms.SignatureTimestamps(sig)
	switch {
	case err != nil:
		c.Status, c.Detail = StatusInvalid, fmt.Sprintf("signature timestamp: %v", err)
		return c, nil, false
	case len(tokens) == 0:
		c.Detail = "none: the signing time is the signer's claim"
		return c, nil, false
	}
	ts, err = cms.VerifyTimestampToken(tokens[0], cms.VerifyOptions{})
	if err != nil {
		c.Status, c.Detail = cmsStatus(err), fmt.Sprintf("signature timestamp: %v", err)
		return c, nil, false
	}
	if !ts.Stamps(value) {
		c.Status, c.Detail = StatusInvalid, fmt.Sprintf("signature timestamp: %v", cms.ErrTimestampMismatch)
		return c, nil, false
	}
	by := printable(ts.Signer.Subject.CommonName)
	roots := t.tsaRoots()
	if roots == nil {
		c.Status, c.Detail = StatusIndeterminate, fmt.Sprintf("genTime %s by %s, not trusted: no CA bundle to check the timestamp authority against", stamp(ts.Time), by)
		return c, ts, false
	}
	if _, err := ts.VerifyChain(cms.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: t.now()}); err != nil {
		c.Status, c.Detail = StatusIndeterminate, fmt.Sprintf("genTime %s by %s, not trusted: %v", stamp(ts.Time), by, err)
		return c, ts, false
	}
	c.Detail = fmt.Sprintf("genTime %s by %s (trusted)", stamp(ts.Time), by)
	return c, ts, true
}

// signerChain chains the signer to t.Roots at at; nil and why not.
func signerChain(sig []byte, signer *x509.Certificate, pool *x509.CertPool, at time.Time, proven bool, t Trust) ([]*x509.Certificate, Check) {
	c := Check{Name: CheckChain, Status: StatusValid}
	if t.Roots == nil {
		c.Status, c.Detail = StatusIndeterminate, errNoBundle
		return nil, c
	}
	chain, err := cms.VerifyChain(sig, signer, cms.VerifyOptions{Roots: t.Roots, Intermediates: pool, CurrentTime: at})
	if err != nil {
		c.Status, c.Detail = classify(err, proven)
		return nil, c
	}
	c.Detail = fmt.Sprintf("to %q at %s (%s)", printable(chain[len(chain)-1].Subject.CommonName), stamp(at), atWhat(proven))
	return chain, c
}

func atWhat(proven bool) string {
	if proven {
		return "the signature timestamp's genTime"
	}
	return "now: no trusted timestamp proves an earlier time"
}

// cmsStatus judges a signature that did not verify: INVALID, except one
// in an algorithm signature/cms does not accept (SHA-1, say), which was
// not checked: INDETERMINATE, as EN 319 102-1 §5.2.8 has it.
func cmsStatus(err error) Status {
	if errors.Is(err, cms.ErrUnsupported) {
		return StatusIndeterminate
	}
	return StatusInvalid
}

// classify turns a chain error into a verdict: a signer that does not
// chain to the bundle, or whose certificate is out of its validity at a
// time nothing proves, is INDETERMINATE; expired at a timestamp's time,
// or any other failure, INVALID.
func classify(err error, proven bool) (Status, string) {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return StatusValid, ""
	case errors.As(err, &unknown):
		return StatusIndeterminate, "unknown CA: " + err.Error()
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && !proven:
		return StatusIndeterminate, "certificate not valid now, and no timestamp proves when it signed: " + err.Error()
	case errors.Is(err, cms.ErrUnsupported):
		return StatusIndeterminate, err.Error()
	}
	return StatusInvalid, err.Error()
}
