package pades

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tekenid/teken/signature/cms"
)

// ErrNotSigned means Verify found no signature in the PDF.
var ErrNotSigned = errors.New("pades: pdf holds no signature")

// Status is the verdict on one signature, in the three values of ETSI EN
// 319 102-1 §5.1.3. The zero value is Invalid, so a report that was never
// filled in never reads as valid.
type Status int

const (
	// Invalid (TOTAL-FAILED): the signature is broken, does not cover
	// what it says, is not shown by any signature field, or was provably
	// made outside its certificate's validity or after its revocation.
	Invalid Status = iota
	// Indeterminate: the signature is intact, but whether its signer can
	// be trusted is not established: an unknown CA, no revocation data
	// for a certificate that names where to get it, a certificate that
	// expired with no timestamp to prove the signature older, an
	// untrusted timestamp authority; or it is in an algorithm
	// signature/cms does not accept (SHA-1), and was not checked.
	Indeterminate
	// Valid (TOTAL-PASSED): intact, covering its revision, by a
	// certificate that chains to the roots and was valid (and, as far as
	// the revocation data given tells, not revoked) when it signed.
	Valid
)

func (s Status) String() string {
	switch s {
	case Valid:
		return "VALID"
	case Indeterminate:
		return "INDETERMINATE"
	}
	return "INVALID"
}

// MarshalText writes the status as String does, for JSON reports.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Kind says what a signature dictionary holds.
type Kind string

// The kinds of signature Verify checks: a CMS signature of a signer
// (SubFilter ETSI.CAdES.detached, or adbe.pkcs7.detached in the same
// profile) and a document timestamp (ETSI.RFC3161, EN 319 142-1 §5.4).
const (
	KindSignature         Kind = "signature"
	KindDocumentTimestamp Kind = "document-timestamp"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Roots are the CAs signers must chain to; nil trusts none, so that
	// every signature is at best Indeterminate.
	Roots *x509.CertPool
	// Intermediates add to the certificates the signatures embed.
	Intermediates *x509.CertPool
	// TSARoots are the CAs timestamp authorities must chain to; nil
	// means Roots.
	TSARoots *x509.CertPool
	// CRLs are revocation lists the caller holds (Verify fetches
	// nothing); the document's DSS adds its own CRLs and OCSP responses.
	// A signer certificate that names a CRL distribution point or an OCSP
	// responder needs one of them, from its issuer (or, for OCSP, its
	// delegated responder) and issued after the signing time, to be
	// Valid.
	CRLs []*x509.RevocationList
	// Now is the validation time; zero means time.Now().
	Now time.Time
	// Limits bound the work of reading the PDF; the zero value is
	// DefaultLimits.
	Limits Limits
}

// Report is what Verify found in one PDF.
type Report struct {
	// Signatures are in the order of the revisions they sign, oldest
	// first.
	Signatures []SignatureReport
	// Size is the length of the file in bytes.
	Size int
}

// Valid reports whether the report holds signatures and every one is
// Valid.
func (r *Report) Valid() bool {
	if r == nil || len(r.Signatures) == 0 {
		return false
	}
	for _, s := range r.Signatures {
		if s.Status != Valid {
			return false
		}
	}
	return true
}

// SignatureReport is the verdict on one signature dictionary.
type SignatureReport struct {
	// Field is the full name of the signature field whose value the
	// dictionary is; empty for a dictionary no field refers to.
	Field     string
	Kind      Kind
	SubFilter string
	Status    Status
	// Reason says why the status is not Valid; several reasons are
	// joined by "; ".
	Reason string
	// Signer is the signer's (for a document timestamp, the authority's)
	// certificate, once the signature verified; nil before.
	Signer *x509.Certificate
	// SigningTime is /M, the time the signer claims; for a document
	// timestamp, the token's genTime. Zero when absent.
	SigningTime time.Time
	// TimestampTime is the genTime of a signature timestamp (B-T), or of
	// the document timestamp; zero without.
	TimestampTime time.Time
	// Level is the PAdES baseline level shown (EN 319 142-1 clause 6):
	// B-B; B-T with a signature timestamp; B-LT when, besides, the DSS
	// holds the certificates of the signer's chain (or the signature
	// embeds them) and, for each that publishes its status, revocation
	// data issued after the timestamp's genTime; B-LTA when a document
	// timestamp that verified (Valid) was added after that data. Empty
	// for a document timestamp or a signature that did not verify.
	Level string
	// ByteRange is the signature's /ByteRange: the bytes [0, ByteRange[1])
	// and [ByteRange[2], ByteRange[2]+ByteRange[3]) are signed.
	ByteRange [4]int
	// CoversWholeFile says the signed bytes run to the end of the file:
	// nothing was appended after this signature.
	CoversWholeFile bool

	rangeOK bool // a field's, whose ByteRange passed signedRange's checks
	// ltEnd is, for a B-LT signature, the offset past which a document
	// timestamp must begin to cover it and the DSS data its level rests
	// on.
	ltEnd int
}

// flag lowers the status to s and adds why.
func (r *SignatureReport) flag(s Status, format string, args ...any) {
	r.Status = min(r.Status, s)
	why := fmt.Sprintf(format, args...)
	if r.Reason == "" {
		r.Reason = why
		return
	}
	r.Reason += "; " + why
}

// Verify checks every signature of a signed PDF, each against the bytes
// it covers: the signature fields of the AcroForm (ISO 32000-1 §12.7.4.5,
// §12.8) name the signature dictionaries, whose /ByteRange must leave out
// exactly their /Contents hex string and nothing else; the CMS in
// /Contents is verified by signature/cms over those bytes (message digest,
// content type, signing-certificate-v2, the signature by the certificate);
// a signature timestamp (B-T) is verified and stamps the signature value;
// the signer chains to opts.Roots at the timestamp's genTime, else at the
// claimed signing time, and without a timestamp it must still be within
// its validity now; revocation of every certificate of the chain but the
// root is judged on opts.CRLs and on the CRLs and OCSP responses of the
// document's DSS (ETSI EN 319 142-1 §5.4.2), whose certificates also help
// build the chain. A document timestamp (ETSI.RFC3161) is verified over
// its byte range, its authority chained to TSARoots. The last signature
// must cover the whole file: a revision appended after it (which can
// change what the pages show) is reported as not covered, and makes it
// Invalid, unless all it adds is validation data (a DSS: its dictionary
// and streams, the catalog changed in /DSS and /Extensions alone), which
// is how B-LT is made. A /ByteRange found in the file whose dictionary no
// field refers to is reported as an Invalid, unreferenced signature, since
// no viewer would show it.
//
// An error means the PDF could not be read (ErrMalformed, ErrEncrypted,
// ErrTooComplex under opts.Limits), holds no signature (ErrNotSigned), or
// ctx ended; a broken signature is a report, not an error.
func Verify(ctx context.Context, pdf []byte, opts VerifyOptions) (*Report, error) {
	bud := newBudget(opts.Limits)
	d, err := parse(pdf, bud)
	if err != nil {
		return nil, err
	}
	fields, err := d.signatureFields()
	if bud.err != nil {
		return nil, bud.err
	}
	if err != nil {
		return nil, err
	}
	v := &verifier{d: d, opts: opts, now: opts.Now}
	if v.now.IsZero() {
		v.now = time.Now()
	}
	if v.opts.TSARoots == nil {
		v.opts.TSARoots = opts.Roots
	}
	if err := v.loadDSS(); err != nil {
		return nil, err
	}
	rep := &Report{Size: len(pdf)}
	holes := map[[2]int]bool{}
	for _, f := range fields {
		s, err := v.check(ctx, f)
		if err != nil {
			return nil, err
		}
		holes[[2]int{s.ByteRange[1], s.ByteRange[2]}] = true
		rep.Signatures = append(rep.Signatures, s)
	}
	if bud.err != nil {
		return nil, bud.err
	}
	orphans, err := unreferencedRanges(pdf, holes)
	if err != nil {
		return nil, err
	}
	for _, br := range orphans {
		s := SignatureReport{ByteRange: br, CoversWholeFile: br[2]+br[3] == len(pdf)}
		s.flag(Invalid, "signature dictionary with /ByteRange [%d %d %d %d] is the value of no signature field: no viewer shows it", br[0], br[1], br[2], br[3])
		rep.Signatures = append(rep.Signatures, s)
	}
	if len(rep.Signatures) == 0 {
		return nil, ErrNotSigned
	}
	slices.SortStableFunc(rep.Signatures, func(a, b SignatureReport) int {
		return (a.ByteRange[2] + a.ByteRange[3]) - (b.ByteRange[2] + b.ByteRange[3])
	})
	// The newest intact signature of a field must reach the end: what
	// follows it is signed by no one. (The others are Invalid already.)
	for i := len(rep.Signatures) - 1; i >= 0; i-- {
		s := &rep.Signatures[i]
		if !s.rangeOK || s.Signer == nil {
			continue
		}
		if end := s.ByteRange[2] + s.ByteRange[3]; end != len(pdf) {
			if err := v.appendedOnlyValidationData(end); err != nil {
				s.flag(Invalid, "does not cover the whole file: %d bytes after byte %d, a later revision, are signed by no one (%v)", len(pdf)-end, end, err)
			}
		}
		break
	}
	if bud.err != nil {
		return nil, bud.err
	}
	longTerm(rep.Signatures)
	return rep, nil
}

// verifier checks the signatures of one document.
type verifier struct {
	d    *document
	opts VerifyOptions
	now  time.Time
	lt   *ltData // the DSS; never nil once Verify loaded it
}

// check verifies one field's signature dictionary; an error only when ctx
// ended or the budget ran out.
func (v *verifier) check(ctx context.Context, f sigField) (SignatureReport, error) {
	r := SignatureReport{Field: f.name, Status: Valid}
	r.SubFilter = nameOf(f.sig["SubFilter"])
	br, der, err := v.signedRange(f)
	r.ByteRange = br
	if err != nil {
		r.flag(Invalid, "%v", err)
		return r, v.d.bud.err
	}
	r.rangeOK, r.CoversWholeFile = true, br[2]+br[3] == len(v.d.b)
	signed := func() io.Reader {
		return io.MultiReader(bytes.NewReader(v.d.b[:br[1]]), bytes.NewReader(v.d.b[br[2]:br[2]+br[3]]))
	}
	switch r.SubFilter {
	case "ETSI.CAdES.detached", "adbe.pkcs7.detached":
		r.Kind = KindSignature
		err = v.checkSignature(ctx, &r, f.sig, der, signed)
	case "ETSI.RFC3161":
		r.Kind = KindDocumentTimestamp
		err = v.checkDocumentTimestamp(ctx, &r, der, signed)
	default:
		r.flag(Invalid, "SubFilter %q is not one Verify checks (ETSI.CAdES.detached, adbe.pkcs7.detached, ETSI.RFC3161)", truncate(r.SubFilter))
	}
	return r, err
}

// signedRange checks the /ByteRange of f against the file and its own
// /Contents, and returns it with the DER in /Contents. The range must be
// [0 a b c] where [a, b) is exactly the /Contents hex string, '<' to '>',
// of this very dictionary, and b+c at most the file's length: no overlap,
// no other gap, nothing outside the file.
func (v *verifier) signedRange(f sigField) ([4]int, []byte, error) {
	var br [4]int
	if f.off < 0 {
		return br, nil, errors.New(f.where)
	}
	a, ok := f.sig["ByteRange"].(array)
	if !ok || len(a) != 4 {
		return br, nil, errors.New("/ByteRange is not an array of four numbers")
	}
	for i, e := range a {
		n, ok := e.(int64)
		if !ok || n < 0 || n > int64(len(v.d.b)) {
			return [4]int{}, nil, fmt.Errorf("/ByteRange %v is out of the file's %d bytes", a, len(v.d.b))
		}
		br[i] = int(n)
	}
	if br[0] != 0 || br[1] >= br[2] || br[2]+br[3] > len(v.d.b) {
		return br, nil, fmt.Errorf("/ByteRange [%d %d %d %d] does not start the file, overlaps or runs past its %d bytes", br[0], br[1], br[2], br[3], len(v.d.b))
	}
	hole, err := v.d.contentsSpan(f.off)
	if err != nil {
		return br, nil, fmt.Errorf("signature dictionary: %w", err)
	}
	if hole != [2]int{br[1], br[2]} {
		return br, nil, fmt.Errorf("/ByteRange leaves out bytes %d to %d, but the dictionary's /Contents is at %d to %d", br[1], br[2], hole[0], hole[1])
	}
	contents, ok := f.sig["Contents"].(pdfString)
	if !ok || v.d.b[hole[0]] != '<' {
		return br, nil, errors.New("/Contents is not a hex string")
	}
	der, err := trimPadding(contents)
	return br, der, err
}

// trimPadding returns the one DER element /Contents holds, which writers
// follow with zero bytes up to the reserved size; anything else after it
// is not theirs to add.
func trimPadding(contents []byte) ([]byte, error) {
	s := cryptobyte.String(contents)
	var der cryptobyte.String
	if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) {
		return nil, errors.New("/Contents is not a DER SEQUENCE")
	}
	if len(bytes.TrimLeft(s, "\x00")) != 0 {
		return nil, fmt.Errorf("/Contents has %d bytes after its signature that are not zero padding", len(s))
	}
	return der, nil
}

// checkSignature verifies a CMS signature over signed() and judges its
// signer.
func (v *verifier) checkSignature(ctx context.Context, r *SignatureReport, sig dict, der []byte, signed func() io.Reader) error {
	if m, ok := sig["M"].(pdfString); ok {
		r.SigningTime, _ = parseDate(string(m))
	}
	s, err := cms.VerifyReader(ctx, der, signed(), cms.VerifyOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.flag(cmsStatus(err), "%v", err)
		return nil
	}
	r.Signer, r.Level = s.Signer, "B-B"
	ts, tsTrusted := v.signatureTimestamp(r, der, s.Signature)
	if ts != nil {
		r.Level, r.TimestampTime = "B-T", ts.Time
	}
	at, proven := v.now, false
	switch {
	case tsTrusted:
		at, proven = ts.Time, true
	case !r.SigningTime.IsZero() && r.SigningTime.Before(v.now):
		at = r.SigningTime
	}
	chain, err := cms.VerifyChain(der, s.Signer, cms.VerifyOptions{Roots: v.opts.Roots, Intermediates: v.opts.Intermediates, CurrentTime: at})
	if err != nil {
		v.chainProblem(r, err, at, proven, "signer")
		return nil
	}
	if !proven {
		if exp := expiry(chain); v.now.After(exp) {
			r.flag(Indeterminate, "certificate expired on %s and no trusted signature timestamp proves the signature was made before", exp.UTC().Format(time.RFC3339))
		}
	}
	lt, ltEnd := v.revocation(r, der, chain, at, proven)
	if lt && tsTrusted && r.Level == "B-T" {
		r.Level, r.ltEnd = "B-LT", max(ltEnd, r.ByteRange[2]+r.ByteRange[3])
	}
	return nil
}

// signatureTimestamp verifies the first signature-time-stamp of der, if
// any: nil without one. A token that is broken or stamps something else
// makes the signature Invalid, one from an authority that does not chain
// to TSARoots Indeterminate (trusted false).
func (v *verifier) signatureTimestamp(r *SignatureReport, der, value []byte) (ts *cms.Timestamp, trusted bool) {
	tokens, err := cms.SignatureTimestamps(der)
	if err != nil {
		r.flag(Invalid, "signature timestamp: %v", err)
		return nil, false
	}
	if len(tokens) == 0 {
		return nil, false
	}
	ts, err = cms.VerifyTimestampToken(tokens[0], cms.VerifyOptions{})
	if err != nil {
		r.flag(cmsStatus(err), "signature timestamp: %v", err)
		return nil, false
	}
	if !ts.Stamps(value) {
		r.flag(Invalid, "signature timestamp: %v", cms.ErrTimestampMismatch)
		return nil, false
	}
	if _, err := ts.VerifyChain(cms.VerifyOptions{Roots: v.opts.TSARoots, Intermediates: v.opts.Intermediates, CurrentTime: v.now}); err != nil {
		v.chainProblem(r, err, v.now, false, "timestamp authority")
		return ts, false
	}
	return ts, true
}

// checkDocumentTimestamp verifies a document timestamp: an RFC 3161 token
// over the hash of the signed bytes (EN 319 142-1 §5.4).
func (v *verifier) checkDocumentTimestamp(ctx context.Context, r *SignatureReport, der []byte, signed func() io.Reader) error {
	ts, err := cms.VerifyTimestampToken(der, cms.VerifyOptions{})
	if err != nil {
		r.flag(cmsStatus(err), "document timestamp: %v", err)
		return nil
	}
	digest, err := cms.Digest(ctx, signed(), ts.Hash)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.flag(Invalid, "document timestamp: %v", err)
		return nil
	}
	if !bytes.Equal(digest, ts.HashedMessage) {
		r.flag(Invalid, "document timestamp: %v", cms.ErrDigestMismatch)
		return nil
	}
	r.Signer, r.SigningTime, r.TimestampTime = ts.Signer, ts.Time, ts.Time
	if _, err := ts.VerifyChain(cms.VerifyOptions{Roots: v.opts.TSARoots, Intermediates: v.opts.Intermediates, CurrentTime: v.now}); err != nil {
		v.chainProblem(r, err, v.now, false, "timestamp authority")
	}
	return nil
}

// nameOf is the text of a name object, "" for anything else.
func nameOf(v any) string {
	n, _ := v.(name)
	return string(n)
}
