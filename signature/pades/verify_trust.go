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

// revocation judges every certificate of chain but the root, each
// against its issuer, on the evidence evidenceFor gathers (the caller's
// CRLs and the DSS's CRLs and OCSP responses; nothing is fetched). The
// signer certificate, chain[0], that names where its status is published
// (a CRL distribution point, an OCSP responder) needs such evidence to be
// Valid: without one nothing says it was not revoked. One that names none
// is taken as its CA's statement that it is not revoked by list; a CA
// certificate without evidence is not held against the signature, but a
// revoked one is. at is the signing time, proven when a trusted timestamp
// vouches for it.
//
// lt reports what level B-LT needs (EN 319 142-1 §6.3): every certificate
// but the root in the signature (der) or the DSS, and for each that
// publishes its status, a DSS statement issued after the proven time;
// ltEnd is the offset just past the DSS streams that takes (for each
// certificate the oldest that serves, so that data added after a
// document timestamp does not hide that it covered earlier data).
func (v *verifier) revocation(r *SignatureReport, der []byte, chain []*x509.Certificate, at time.Time, proven bool) (lt bool, ltEnd int) {
	if len(chain) < 2 {
		return false, 0 // a root signing itself: nobody above it publishes its status
	}
	lt = proven && v.lt.dss != nil
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		who := "certificate"
		if i > 0 {
			who = fmt.Sprintf("CA certificate %q", printable(cert.Subject.String()))
		}
		if !bytes.Contains(der, cert.Raw) {
			off := v.dssCert(cert)
			if off < 0 {
				lt = false
			}
			ltEnd = max(ltEnd, off+1)
		}
		needs := len(cert.CRLDistributionPoints) > 0 || len(cert.OCSPServer) > 0
		ev := v.evidenceFor(cert, issuer, at, proven)
		if len(ev) == 0 {
			if needs {
				lt = false
				if i == 0 {
					r.flag(Indeterminate, "no revocation data: the certificate publishes its status at %s, and no CRL or OCSP response of its issuer %s was given or is in the DSS", printable(strings.Join(append(append([]string{}, cert.CRLDistributionPoints...), cert.OCSPServer...), ", ")), crlWanted(at, proven))
				}
			}
			continue
		}
		var revoked *evidence
		first := -1 // the oldest DSS statement: what a document timestamp must cover
		for j, e := range ev {
			if e.revoked && (revoked == nil || e.revokedAt.Before(revoked.revokedAt)) {
				revoked = &ev[j]
			}
			if e.off >= 0 && (first < 0 || e.off < first) {
				first = e.off
			}
		}
		if needs && first < 0 {
			lt = false
		}
		ltEnd = max(ltEnd, first+1)
		if revoked == nil {
			continue
		}
		when := revoked.revokedAt.UTC().Format(time.RFC3339)
		why := ""
		if revoked.reason > 0 {
			why = fmt.Sprintf(" (reason code %d)", revoked.reason)
		}
		switch {
		case !revoked.revokedAt.After(at):
			lt = false
			r.flag(Invalid, "%s revoked on %s%s, before the signing time %s", who, when, why, at.UTC().Format(time.RFC3339))
		case !proven:
			lt = false
			r.flag(Indeterminate, "%s revoked on %s%s, and no trusted signature timestamp proves the signature was made before", who, when, why)
		}
	}
	return lt, ltEnd
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
