package validation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/tekenid/teken/signature/revocation"
)

// Where revocation data came from, as the revocation check names it.
const (
	fromCAdES  = "the CAdES revocation-values"
	fromCRLArg = "a --crl file"
	fromOnline = "an online fetch"
	fromDSS    = "the DSS"
)

// revData is the revocation data a signature is judged on, each item
// with where it came from.
type revData struct {
	crls  []sourced[*x509.RevocationList]
	ocsps []sourced[[]byte] // DER OCSPResponse
}

type sourced[T any] struct {
	v    T
	from string
}

// statement is what one CRL or OCSP response says of a certificate.
type statement struct {
	revoked   bool
	revokedAt time.Time
	reason    int
	kind      string    // OCSP or CRL
	from      string    // one of the from constants
	issued    time.Time // producedAt of an OCSP response, thisUpdate of a CRL
}

func (s statement) String() string {
	verb := "this update"
	if s.kind == "OCSP" && s.from != fromOnline {
		verb = "produced"
	}
	return fmt.Sprintf("%s from %s, %s %s", s.kind, s.from, verb, stamp(s.issued))
}

// oidOCSPBasic is id-pkix-ocsp-basic (RFC 6960 §4.2.1).
var oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

// wrapBasic makes a BasicOCSPResponse, as CAdES revocation-values hold
// it (RFC 5126 §6.3.4), the OCSPResponse x/crypto/ocsp parses:
// SEQUENCE { responseStatus ENUMERATED successful(0), responseBytes [0]
// EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } }
// (RFC 6960 §4.2.1).
func wrapBasic(basic []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(0)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidOCSPBasic)
				b.AddASN1OctetString(basic)
			})
		})
	})
	return b.Bytes()
}

// fresh says whether data issued at thisUpdate, valid until nextUpdate,
// speaks for a signature made at at: issued after it when a timestamp
// proves that time (EN 319 102-1 §5.2.5: revocation data after the best
// signature time), else current now, since a claimed time proves nothing
// and the certificate may have been revoked up to now.
func fresh(thisUpdate, nextUpdate, at, now time.Time, proven bool) bool {
	if proven {
		return !thisUpdate.Before(at)
	}
	return !thisUpdate.After(now) && (nextUpdate.IsZero() || !nextUpdate.Before(now))
}

// statementsFor gathers what d says about cert, issued by issuer, for a
// signature at at. A CRL must be the issuer's and signed by it; an OCSP
// response signed by the issuer or by a responder it delegated to with
// id-kp-OCSPSigning (RFC 6960 §4.2.2.2); both fresh. "unknown" says
// nothing.
func statementsFor(d revData, cert, issuer *x509.Certificate, at, now time.Time, proven bool) []statement {
	var out []statement
	for _, c := range d.crls {
		l := c.v
		if l == nil || !bytes.Equal(l.RawIssuer, issuer.RawSubject) || !fresh(l.ThisUpdate, l.NextUpdate, at, now, proven) || l.CheckSignatureFrom(issuer) != nil {
			continue
		}
		s := statement{kind: "CRL", from: c.from, issued: l.ThisUpdate}
		for _, r := range l.RevokedCertificateEntries {
			if r.SerialNumber != nil && r.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				s.revoked, s.revokedAt, s.reason = true, r.RevocationTime, r.ReasonCode
				break
			}
		}
		out = append(out, s)
	}
	for _, o := range d.ocsps {
		resp := ocspAnswer(o.v, cert, issuer)
		if resp == nil || !fresh(resp.ThisUpdate, resp.NextUpdate, at, now, proven) {
			continue
		}
		s := statement{kind: "OCSP", from: o.from, issued: resp.ProducedAt}
		switch resp.Status {
		case ocsp.Good:
		case ocsp.Revoked:
			s.revoked, s.revokedAt, s.reason = true, resp.RevokedAt, resp.RevocationReason
		default:
			continue
		}
		out = append(out, s)
	}
	return out
}

// ocspAnswer parses an OCSP response about cert and checks who signed
// it; nil when it is not an answer about cert from issuer.
func ocspAnswer(der []byte, cert, issuer *x509.Certificate) *ocsp.Response {
	resp, err := revocation.Answer(der, cert, issuer)
	if err != nil {
		return nil
	}
	return resp
}

// publishes says whether a certificate names where its status is
// published, so that a verifier needs revocation data for it.
func publishes(c *x509.Certificate) bool {
	return len(c.CRLDistributionPoints) > 0 || len(c.OCSPServer) > 0
}

// revocationCheck judges every certificate of chain but the root on d
// (and, for the signer, on t.Online when d does not decide), for a
// signature at at, proven when a trusted timestamp vouches for it. As
// pades.Verify has it: the signer needs a statement when it publishes its
// status; a CA certificate without one is not held against the
// signature, a revoked one is. embedded reports whether each certificate
// that publishes its status has a statement from the signature's own
// data (from): what level B-LT rests on.
func revocationCheck(ctx context.Context, d revData, chain []*x509.Certificate, at time.Time, proven bool, t Trust, from string) (c Check, embedded bool) {
	c = Check{Name: CheckRevocation, Status: StatusValid}
	if len(chain) < 2 {
		c.Detail = "not published: the signer certificate is its own CA"
		return c, false
	}
	embedded = proven
	now := t.now()
	var signer string
	var problems []string
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		who := "certificate"
		if i > 0 {
			who = fmt.Sprintf("CA certificate %q", printable(cert.Subject.String()))
		}
		needs := publishes(cert)
		st := statementsFor(d, cert, issuer, at, now, proven)
		if needs && !slices.ContainsFunc(st, func(s statement) bool { return s.from == from }) {
			embedded = false
		}
		var note string
		if len(st) == 0 && needs && i == 0 && t.Online != nil {
			var s *statement
			s, note = online(ctx, t, cert, issuer, at, proven)
			if s != nil {
				st = append(st, *s)
			}
		}
		if len(st) == 0 {
			if needs && i == 0 {
				c.Status = worse(c.Status, StatusIndeterminate)
				why := fmt.Sprintf("no data: the certificate publishes its status at %s, and no CRL or OCSP response of its issuer %s was given", printable(strings.Join(append(slices.Clone(cert.CRLDistributionPoints), cert.OCSPServer...), ", ")), wanted(at, proven))
				if note != "" {
					why += " (" + note + ")"
				}
				problems = append(problems, why)
			}
			if !needs && i == 0 {
				signer = "not published: the certificate names no CRL or OCSP responder"
			}
			continue
		}
		var revoked *statement
		for j, s := range st {
			if s.revoked && (revoked == nil || s.revokedAt.Before(revoked.revokedAt)) {
				revoked = &st[j]
			}
		}
		if revoked == nil {
			if i == 0 {
				signer = "good (" + st[0].String() + ")"
			}
			continue
		}
		why := ""
		if revoked.reason > 0 {
			why = fmt.Sprintf(" (reason code %d)", revoked.reason)
		}
		switch {
		case !revoked.revokedAt.After(at):
			c.Status = StatusInvalid
			problems = append(problems, fmt.Sprintf("revoked: %s revoked on %s%s, before the signing time %s (%s)", who, stamp(revoked.revokedAt), why, stamp(at), revoked))
		case !proven:
			c.Status = worse(c.Status, StatusIndeterminate)
			problems = append(problems, fmt.Sprintf("revoked: %s revoked on %s%s, and no trusted signature timestamp proves the signature was made before (%s)", who, stamp(revoked.revokedAt), why, revoked))
		case i == 0:
			signer = fmt.Sprintf("good at the signing time, revoked later on %s%s (%s)", stamp(revoked.revokedAt), why, revoked)
		}
	}
	if len(problems) > 0 {
		c.Detail = strings.Join(problems, "; ")
		return c, false
	}
	c.Detail = signer
	return c, embedded
}

func wanted(at time.Time, proven bool) string {
	if proven {
		return "issued after " + stamp(at)
	}
	return "current now"
}

// defaultOnlineTimeout bounds an online check when Trust.OnlineTimeout
// is zero: an OCSP request and, failing it, a CRL download.
const defaultOnlineTimeout = 30 * time.Second

// online asks t.Online for cert's status; a statement, or a note on why
// there is none.
func online(ctx context.Context, t Trust, cert, issuer *x509.Certificate, at time.Time, proven bool) (*statement, string) {
	timeout := t.OnlineTimeout
	if timeout <= 0 {
		timeout = defaultOnlineTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	after := time.Time{}
	if proven {
		after = at
	}
	ev, err := t.Online.Check(ctx, []*x509.Certificate{cert, issuer}, after)
	var revoked *revocation.RevokedError
	switch {
	case errors.As(err, &revoked):
		return &statement{revoked: true, revokedAt: revoked.RevokedAt, reason: revoked.Reason, kind: "OCSP or CRL", from: fromOnline, issued: t.now()}, ""
	case errors.Is(err, revocation.ErrUnknown):
		return nil, "online: the responder says unknown"
	case err != nil:
		return nil, "online: " + err.Error()
	case len(ev.Statuses) == 0 || ev.Statuses[0].Source == "none":
		return nil, "online: no source to ask"
	}
	s := ev.Statuses[0]
	return &statement{kind: strings.ToUpper(s.Source), from: fromOnline, issued: s.ThisUpdate}, ""
}
