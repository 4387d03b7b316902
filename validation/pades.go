package validation

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

func signatureVerdicts(ctx context.Context, pdf []byte, rep *pades.Report, t Trust) []SignatureVerdict {
	out := make([]SignatureVerdict, 0, len(rep.Signatures))
	for _, s := range rep.Signatures {
		sv := SignatureVerdict{Field: s.Field, Kind: string(s.Kind), SigningTime: timePtr(s.SigningTime),
			TimestampTime: timePtr(s.TimestampTime), Level: s.Level, ByteRange: s.ByteRange[:], CoversWholeFile: &s.CoversWholeFile}
		if sv.Kind == "" {
			sv.Kind = "unknown"
		}
		if s.Signer != nil {
			sv.Signer, sv.NIP = s.Signer.Subject.CommonName, s.Signer.Subject.SerialNumber
		}
		padesChecks(ctx, pdf, s, t).settle(&sv)
		// pades.Verify's verdict is the floor: the checks refine it and
		// may only lower it, but for a signer's status an online fetch
		// settled.
		if rank(Status(s.Status.String())) < rank(sv.Status) && !settledOnline(sv) {
			sv.Status = Status(s.Status.String())
		}
		out = append(out, sv)
	}
	return out
}

func settledOnline(sv SignatureVerdict) bool {
	c, ok := sv.Check(CheckRevocation)
	return ok && strings.Contains(c.Detail, fromOnline)
}

// part is one of the reasons pades.Verify joined, sorted to the check it
// belongs to with the status it implies.
type part struct {
	check  string
	status Status
	text   string
}

// sortReason splits a pades reason into its parts. The texts are those of
// signature/pades (verify.go, verify_trust.go); one not known here is an
// integrity failure, with the signature's status.
func sortReason(reason string, st Status) []part {
	if reason == "" {
		return nil
	}
	var out []part
	for _, p := range strings.Split(reason, "; ") {
		c, s := CheckIntegrity, st
		switch {
		case strings.Contains(p, "timestamp authority"), strings.HasPrefix(p, "signature timestamp:"):
			c = CheckTimestamp
			if strings.HasPrefix(p, "unknown CA") || strings.HasPrefix(p, "no CA bundle") || strings.Contains(p, "no trusted timestamp proves another time") {
				s = StatusIndeterminate
			} else if !strings.HasPrefix(p, "signature timestamp:") || st != StatusIndeterminate {
				s = StatusInvalid
			}
		case strings.HasPrefix(p, "no revocation data"):
			c, s = CheckRevocation, StatusIndeterminate
		case strings.Contains(p, " revoked on "):
			c, s = CheckRevocation, StatusIndeterminate
			if strings.Contains(p, "before the signing time") {
				s = StatusInvalid
			}
		case strings.HasPrefix(p, "unknown CA"), strings.HasPrefix(p, "no CA bundle"), strings.HasPrefix(p, "certificate expired on"),
			strings.HasPrefix(p, "signer certificate not valid at"):
			c, s = CheckChain, StatusIndeterminate
		case strings.HasPrefix(p, "signer certificate"):
			c, s = CheckChain, StatusInvalid
		case strings.HasPrefix(p, "does not cover the whole file"):
			s = StatusInvalid
		}
		// Verify's status is the worst of its reasons: none is worse.
		if rank(s) < rank(st) {
			s = st
		}
		out = append(out, part{c, s, p})
	}
	return out
}

// padesChecks are the checks of one signature of a PDF, from what
// pades.Verify reported and from the signature's own CMS.
func padesChecks(ctx context.Context, pdf []byte, s pades.SignatureReport, t Trust) checks {
	st := Status(s.Status.String())
	parts := sortReason(s.Reason, st)
	var cs checks
	if s.Signer == nil {
		// Not verified: the range, the CMS or the token is broken, or the
		// dictionary is no field's; nothing else was judged.
		cs.add(CheckIntegrity, st, "%s", orWhy(s.Reason, "not verified"))
		return cs
	}
	of := func(name string) []string {
		var out []string
		for _, p := range parts {
			if p.check == name {
				out = append(out, p.text)
			}
		}
		return out
	}
	add := func(name, ok string) Check {
		c := Check{Name: name, Status: StatusValid, Detail: ok}
		var why []string
		for _, p := range parts {
			if p.check == name {
				c.Status = worse(c.Status, p.status)
				why = append(why, p.text)
			}
		}
		if len(why) > 0 {
			c.Detail = strings.Join(why, "; ")
		}
		cs = append(cs, c)
		return c
	}
	der := contentsDER(pdf, s.ByteRange)
	if s.Kind == pades.KindDocumentTimestamp {
		add(CheckIntegrity, "the token's imprint matches the byte range")
		add(CheckTimestamp, fmt.Sprintf("genTime %s by %s (trusted)", stamp(s.TimestampTime), printable(s.Signer.Subject.CommonName)))
		return fixFloor(cs, st)
	}
	add(CheckIntegrity, "signature value, message digest and byte range verified")

	tsOK := len(of(CheckTimestamp)) == 0 && !s.TimestampTime.IsZero()
	at, proven := t.now(), false
	switch {
	case tsOK:
		at, proven = s.TimestampTime, true
	case !s.SigningTime.IsZero() && s.SigningTime.Before(at):
		at = s.SigningTime
	}
	when := "now: no trusted timestamp proves another time"
	switch {
	case proven:
		when = "the signature timestamp's genTime"
	case at.Equal(s.SigningTime):
		when = "the claimed signing time /M"
	}
	chainCheck := add(CheckChain, fmt.Sprintf("to the CA bundle at %s (%s)", stamp(at), when))

	online := false
	switch {
	case chainCheck.Status != StatusValid:
		cs.add(CheckRevocation, StatusIndeterminate, notChecked)
	case len(of(CheckRevocation)) > 0:
		rc := add(CheckRevocation, "")
		if strings.Contains(rc.Detail, " revoked on ") {
			cs[len(cs)-1].Detail += " (" + padesSource(der, s, at, proven, t, true) + ")"
		}
		if t.Online != nil && strings.HasPrefix(rc.Detail, "no revocation data") {
			cs[len(cs)-1] = padesOnline(ctx, der, s.Signer, at, proven, t, rc)
			online = strings.Contains(cs[len(cs)-1].Detail, fromOnline)
		}
	case !publishes(s.Signer):
		cs.add(CheckRevocation, StatusValid, "not published: the certificate names no CRL or OCSP responder")
	default:
		cs.add(CheckRevocation, StatusValid, "good (%s)", padesSource(der, s, at, proven, t, false))
	}

	switch {
	case len(of(CheckTimestamp)) > 0:
		add(CheckTimestamp, "")
	case s.TimestampTime.IsZero():
		cs.add(CheckTimestamp, StatusValid, "none: the signing time /M is the signer's claim")
	default:
		cs.add(CheckTimestamp, StatusValid, "genTime %s by %s (trusted)", stamp(s.TimestampTime), tsaName(der))
	}
	cs.add(CheckLevel, StatusValid, "%s", orWhy(s.Level, "none"))
	if online {
		// The online answer replaced the reason Verify had for the
		// floor; the other reasons are in their checks.
		return cs
	}
	return fixFloor(cs, st)
}

// fixFloor makes sure the worst check is no better than pades.Verify's
// verdict: a reason sorted too kindly lowers the last check that has
// one.
func fixFloor(cs checks, st Status) checks {
	worst := StatusValid
	for _, c := range cs {
		worst = worse(worst, c.Status)
	}
	if rank(worst) <= rank(st) {
		return cs
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Status != StatusValid {
			cs[i].Status = st
			return cs
		}
	}
	cs[0].Status = st
	return cs
}

// padesSource says where the data that shows the signer good (or
// revoked) came from: a --crl file, else the document's DSS, since
// pades.Verify reads nothing else. Which item of the DSS it was the
// report does not say.
func padesSource(der []byte, s pades.SignatureReport, at time.Time, proven bool, t Trust, revoked bool) string {
	if chain := embeddedChain(der, s.Signer, at, t); chain != nil {
		var d revData
		for _, l := range t.CRLs {
			d.crls = append(d.crls, sourced[*x509.RevocationList]{l, fromCRLArg})
		}
		for _, st := range statementsFor(d, chain[0], chain[1], at, t.now(), proven) {
			if st.revoked == revoked {
				return st.String()
			}
		}
	}
	if revoked {
		return "OCSP or CRL from " + fromDSS
	}
	if s.Level == "B-LT" || s.Level == "B-LTA" {
		return "OCSP or CRL from " + fromDSS + ", issued after the timestamp"
	}
	return "OCSP or CRL from " + fromDSS
}

// padesOnline asks t.Online for a signer pades.Verify found no data for.
func padesOnline(ctx context.Context, der []byte, signer *x509.Certificate, at time.Time, proven bool, t Trust, was Check) Check {
	chain := embeddedChain(der, signer, at, t)
	if chain == nil {
		was.Detail += " (online: the chain cannot be built from the certificates the signature embeds)"
		return was
	}
	rc, _ := revocationCheck(ctx, revData{}, chain, at, proven, t, fromOnline)
	return rc
}

// embeddedChain chains the signer to t.Roots with the certificates the
// signature embeds; nil when they do not reach.
func embeddedChain(der []byte, signer *x509.Certificate, at time.Time, t Trust) []*x509.Certificate {
	if der == nil || t.Roots == nil {
		return nil
	}
	chain, err := cms.VerifyChain(der, signer, cms.VerifyOptions{Roots: t.Roots, CurrentTime: at})
	if err != nil || len(chain) < 2 {
		return nil
	}
	return chain
}

// tsaName is the common name of the signature timestamp's authority.
func tsaName(der []byte) string {
	tokens, err := cms.SignatureTimestamps(der)
	if err != nil || len(tokens) == 0 {
		return "an authority"
	}
	ts, err := cms.VerifyTimestampToken(tokens[0], cms.VerifyOptions{})
	if err != nil {
		return "an authority"
	}
	return printable(ts.Signer.Subject.CommonName)
}

// contentsDER is the CMS in a signature's /Contents: the hex string the
// byte range leaves out, which pades.Verify checked is exactly that; nil
// when it does not read.
func contentsDER(pdf []byte, br [4]int) []byte {
	if br[1] < 0 || br[2] > len(pdf) || br[2]-br[1] < 2 {
		return nil
	}
	hexed := pdf[br[1]+1 : br[2]-1]
	raw := make([]byte, hex.DecodedLen(len(hexed)))
	if _, err := hex.Decode(raw, hexed); err != nil {
		return nil
	}
	s := cryptobyte.String(raw)
	var der cryptobyte.String
	if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) {
		return nil
	}
	return der
}

func orWhy(s, or string) string {
	if s == "" {
		return or
	}
	return s
}
