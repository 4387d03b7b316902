package pades

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tekenid/teken/signature/cms"
)

// revocation judges the signer certificate, chain[0], on the CRLs the
// caller gave (VerifyOptions.CRLs); nothing is fetched. A certificate
// that names where its status is published (a CRL distribution point, an
// OCSP responder) needs a CRL from its issuer to be Valid: without one
// nothing says it was not revoked. One that names none is taken as its
// CA's statement that it is not revoked by list. at is the signing time,
// proven when a trusted timestamp vouches for it.
func (v *verifier) revocation(r *SignatureReport, chain []*x509.Certificate, at time.Time, proven bool) {
	if len(chain) < 2 {
		return // a root signing itself: nobody above it publishes its status
	}
	leaf, issuer := chain[0], chain[1]
	crl := v.crlFor(issuer, at, proven)
	if crl == nil {
		if len(leaf.CRLDistributionPoints) > 0 || len(leaf.OCSPServer) > 0 {
			r.flag(Indeterminate, "no revocation data: the certificate publishes its status at %s, and no CRL of its issuer %s was given", printable(strings.Join(append(append([]string{}, leaf.CRLDistributionPoints...), leaf.OCSPServer...), ", ")), crlWanted(at, proven))
		}
		return
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber == nil || e.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			continue
		}
		when := e.RevocationTime.UTC().Format(time.RFC3339)
		switch {
		case !e.RevocationTime.After(at):
			r.flag(Invalid, "certificate revoked on %s, before the signing time %s", when, at.UTC().Format(time.RFC3339))
		case !proven:
			r.flag(Indeterminate, "certificate revoked on %s, and no trusted signature timestamp proves the signature was made before", when)
		}
		return
	}
}

// crlFor picks the newest CRL signed by issuer that speaks for the
// signing time: one issued after it when a timestamp proves that time,
// else one current now, since a claimed time proves nothing and the
// certificate may have been revoked up to now.
func (v *verifier) crlFor(issuer *x509.Certificate, at time.Time, proven bool) *x509.RevocationList {
	var best *x509.RevocationList
	for _, c := range v.opts.CRLs {
		if c == nil || !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
			continue
		}
		if proven && c.ThisUpdate.Before(at) {
			continue
		}
		if !proven && (c.ThisUpdate.After(v.now) || (!c.NextUpdate.IsZero() && c.NextUpdate.Before(v.now))) {
			continue
		}
		if c.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if best == nil || c.ThisUpdate.After(best.ThisUpdate) {
			best = c
		}
	}
	return best
}

func crlWanted(at time.Time, proven bool) string {
	if proven {
		return "issued after " + at.UTC().Format(time.RFC3339)
	}
	return "current now"
}

// cmsStatus judges a signature that did not verify: Invalid, except one
// in an algorithm signature/cms does not accept (SHA-1, say), which was
// not checked at all: Indeterminate, as EN 319 102-1 §5.2.8 has it for a
// failure of the cryptographic constraints.
func cmsStatus(err error) Status {
	if errors.Is(err, cms.ErrUnsupported) {
		return Indeterminate
	}
	return Invalid
}

// chainProblem says why a certificate did not chain, as Indeterminate
// when more data or trust could settle it, Invalid when not: expired at
// a proven time, a key not allowed to sign, a broken path.
func (v *verifier) chainProblem(r *SignatureReport, err error, at time.Time, proven bool, who string) {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	when := at.UTC().Format(time.RFC3339)
	switch {
	case v.opts.Roots == nil && who == "signer", v.opts.TSARoots == nil && who != "signer":
		r.flag(Indeterminate, "no CA bundle to check the %s against", who)
	case errors.As(err, &unknown):
		issuer := "unknown"
		if unknown.Cert != nil {
			issuer = unknown.Cert.Issuer.String()
		}
		r.flag(Indeterminate, "unknown CA: the %s certificate (issuer %s) does not chain to a trusted CA", who, printable(issuer))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && proven:
		r.flag(Invalid, "%s certificate was not valid at the signature timestamp's time %s", who, when)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		r.flag(Indeterminate, "%s certificate not valid at %s, and no trusted timestamp proves another time", who, when)
	default:
		r.flag(Invalid, "%s certificate: %v", who, err)
	}
}

// expiry is the earliest NotAfter of a chain.
func expiry(chain []*x509.Certificate) time.Time {
	exp := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(exp) {
			exp = c.NotAfter
		}
	}
	return exp
}

// printable replaces control and format characters, which a hostile
// certificate or field name could use to rewrite a terminal's screen,
// with their escapes.
func printable(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) {
			fmt.Fprintf(&b, "\\u%04x", c)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
