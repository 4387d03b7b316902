package daemon

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/signature/tsa"
)

// ltvParts are what takes a signature beyond B-B, as configured (and, for
// the timestamp authorities, as a reload left them): the level aimed at,
// the authorities and the revocation checker.
type ltvParts struct {
	level string
	// require holds a signed result back until every document reached
	// level (signing.require_level; held.go).
	require bool
	// tsaRoots are tsa.ca_files, to check a signature timestamp read back
	// from a held signature.
	tsaRoots *x509.CertPool
	// explicit: signing.level was set. The implicit B-T of a terminal
	// with an authority is for PDFs only, as before edition 3: a cms
	// result then stays as an edition 2 central system knows it.
	explicit   bool
	tsa        *tsa.Client       // nil: no authority
	revocation revocationChecker // nil: revocation.check = off
}

// requires reports whether a result is held until its documents reach the
// level (signing.require_level).
func (p *ltvParts) requires() bool { return p != nil && p.require }

// wants reports whether a document of format f is taken to at least l.
func (p *ltvParts) wants(f api.Format, l string) bool {
	return p != nil && levelRank(p.targetFor(f)) >= levelRank(l)
}

// targetFor is the level a document of format f is taken to: raw stays
// B-B (a bare signature has nowhere to carry a timestamp), cms stops at
// B-LT (an archive timestamp is PAdES's document timestamp here).
func (p *ltvParts) targetFor(f api.Format) string {
	if p == nil {
		return api.LevelBB
	}
	switch f {
	case api.FormatRaw:
		return api.LevelBB
	case api.FormatCMS:
		if !p.explicit {
			return api.LevelBB
		}
		if levelRank(p.level) > levelRank(api.LevelBLT) {
			return api.LevelBLT
		}
	}
	return p.level
}

// augmentDocument takes a document signed in a card session to the
// configured level, after the session has closed: the card is never held
// while an authority or a responder answers. Each step builds on the one
// before and only once it succeeded: B-T, a signature timestamp (RFC 5126
// §5.11.4, written into the room pades.Sign reserved, or added to the
// CMS); B-LT, the validation data of the signer's chain and of the
// timestamp's authority, with revocation data issued after the timestamp
// (ETSI EN 319 102-1: after the best-signature-time), in a DSS or as CAdES
// certificate-values and revocation-values; B-LTA, a document timestamp
// over the whole PDF. A step that fails leaves the document at the level
// reached — a valid signature, never a broken one — and says why in
// level_error (and, for the timestamp, timestamp_error, as before): a
// letter never claims a level it did not reach.
//
// Its time is neither teken_card_sign_seconds nor
// teken_token_busy_seconds_total: it is not the token's.
func (d *docSigner) augmentDocument(ctx context.Context, sd *signedDoc, cert *x509.Certificate) {
	pending := sd.pending
	sd.pending = nil
	d.takeTo(ctx, d.ltv(), sd, cert, pending)
}

// takeTo takes sd from the level it has to the configured one; pending is
// the PAdES signature pades.Sign made, or nil for one found again in the
// PDF (a held result taken further later, held.go).
func (d *docSigner) takeTo(ctx context.Context, parts *ltvParts, sd *signedDoc, cert *x509.Certificate, pending *pades.Signed) {
	target := parts.targetFor(sd.Format)
	if levelRank(target) < levelRank(api.LevelBT) || levelRank(sd.Level) >= levelRank(target) {
		return
	}
	sd.LevelError = ""
	fail := func(err error) {
		sd.LevelError = fmt.Sprintf("%s not reached: %v", target, err)
		d.log.Warn("signature below the configured level", "document", sd.ID, "level", sd.Level, "want", target, "err", err)
	}
	if parts.tsa == nil {
		sd.TimestampError = "no timestamp authority is configured since a reload"
		fail(errors.New(sd.TimestampError))
		return
	}
	var token *tsa.Token
	if levelRank(sd.Level) < levelRank(api.LevelBT) {
		var err error
		if token, err = d.timestamp(ctx, parts, sd, pending); err != nil {
			fail(err)
			return
		}
		sd.Level, sd.TimestampError = api.LevelBT, ""
	}
	if levelRank(target) < levelRank(api.LevelBLT) {
		return
	}
	var vd pades.ValidationData
	if levelRank(sd.Level) < levelRank(api.LevelBLT) {
		var err error
		if token == nil {
			if token, err = signatureToken(ctx, parts, sd); err != nil {
				fail(err)
				return
			}
		}
		if vd, err = d.validationData(ctx, parts, cert, token); err != nil {
			fail(err)
			return
		}
		if err := d.addValidationData(ctx, sd, vd); err != nil {
			fail(err)
			return
		}
		sd.Level = api.LevelBLT
	}
	if levelRank(target) < levelRank(api.LevelBLTA) {
		return
	}
	rec := &recordingStamper{Client: parts.tsa}
	pdf, err := pades.AddDocumentTimestamp(ctx, sd.Signature, rec)
	if err == nil {
		err = d.checkGrowth(sd, pdf)
	}
	if err != nil {
		fail(err)
		return
	}
	sd.Signature, sd.Level = pdf, api.LevelBLTA
	// The document timestamp's own authority may be another than the
	// signature timestamp's (fail-over): its validation data then go in
	// a DSS after it, as an archive's next renewal would add them. B-LTA
	// stands without them; a verifier decades on needs them.
	if rec.token == nil || containsCert(vd.Certs, rec.token.Signer) {
		return
	}
	more, err := d.authorityData(ctx, parts, rec.token)
	if err == nil {
		pdf, err = pades.AddDSS(ctx, sd.Signature, more)
	}
	if err == nil {
		err = d.checkGrowth(sd, pdf)
	}
	if err != nil {
		d.log.Warn("document timestamp's authority without validation data", "document", sd.ID, "tsa", rec.token.URL, "err", err)
		return
	}
	sd.Signature = pdf
}

// timestamp adds the signature timestamp (B-T) to sd.
func (d *docSigner) timestamp(ctx context.Context, parts *ltvParts, sd *signedDoc, pending *pades.Signed) (*tsa.Token, error) {
	switch sd.Format {
	case api.FormatPAdES:
		if pending == nil {
			pending = &pades.Signed{PDF: sd.Signature} // found again from its /ByteRange
		}
		if _, err := pades.Timestamp(ctx, pending, pades.TSAOptions{Client: parts.tsa}); err != nil {
			// Not a signature of ours that a timestamp can be added to;
			// it was not touched and stays a valid B-B.
			d.log.Error("signed PDF cannot take a timestamp", "document", sd.ID, "err", err)
			sd.TimestampError = err.Error()
			return nil, err
		}
		sd.Signature = pending.PDF // patched in place: the same bytes, now stamped
		if !pending.Timestamped {
			sd.TimestampError = pending.TimestampError.Error()
			return nil, pending.TimestampError
		}
		return pending.Token, nil
	case api.FormatCMS:
		stamped, tok, err := stampCMS(ctx, parts.tsa, sd.Signature)
		if err != nil {
			sd.TimestampError = err.Error()
			return nil, err
		}
		sd.Signature = stamped
		return tok, nil
	}
	return nil, fmt.Errorf("format %q takes no timestamp", sd.Format)
}

// signatureToken reads back the signature timestamp of a signature that
// reached B-T earlier, as its authority's client would have checked it.
func signatureToken(ctx context.Context, parts *ltvParts, sd *signedDoc) (*tsa.Token, error) {
	var der []byte
	switch sd.Format {
	case api.FormatPAdES:
		tok, err := pades.SignatureTimestampToken(ctx, sd.Signature)
		if err != nil {
			return nil, err
		}
		der = tok
	case api.FormatCMS:
		tokens, err := cms.SignatureTimestamps(sd.Signature)
		if err != nil {
			return nil, err
		}
		if len(tokens) > 0 {
			der = tokens[len(tokens)-1]
		}
	}
	if der == nil {
		return nil, errors.New("the signature at B-T carries no signature timestamp")
	}
	ts, err := cms.VerifyTimestampToken(der, cms.VerifyOptions{Roots: parts.tsaRoots})
	if err != nil {
		return nil, fmt.Errorf("its signature timestamp: %w", err)
	}
	chain := ts.Chain
	if chain == nil {
		chain = []*x509.Certificate{ts.Signer}
	}
	return &tsa.Token{DER: der, GenTime: ts.Time, Signer: ts.Signer, Chain: chain}, nil
}

// addValidationData puts vd into sd: a DSS for a PDF, CAdES attributes
// for a CMS signature.
func (d *docSigner) addValidationData(ctx context.Context, sd *signedDoc, vd pades.ValidationData) error {
	switch sd.Format {
	case api.FormatPAdES:
		pdf, err := pades.AddDSS(ctx, sd.Signature, vd)
		if err == nil {
			err = d.checkGrowth(sd, pdf)
		}
		if err != nil {
			return err
		}
		sd.Signature = pdf
	case api.FormatCMS:
		der, err := cms.AddValidationData(sd.Signature, vd.Certs, vd.CRLs, vd.OCSPs)
		if err == nil && len(der) > api.MaxSignatureLen {
			err = fmt.Errorf("with its validation data the signature is %d bytes, more than the %d a Result carries", len(der), api.MaxSignatureLen)
		}
		if err != nil {
			return err
		}
		sd.Signature = der
	}
	return nil
}

// recordingStamper keeps the token it got, for the validation data of its
// authority.
type recordingStamper struct {
	*tsa.Client
	token *tsa.Token
}

func (r *recordingStamper) Stamp(ctx context.Context, h crypto.Hash, data []byte) (*tsa.Token, error) {
	tok, err := r.Client.Stamp(ctx, h, data)
	r.token = tok
	return tok, err
}

func containsCert(list [][]byte, c *x509.Certificate) bool {
	return c != nil && slices.ContainsFunc(list, func(b []byte) bool { return bytes.Equal(b, c.Raw) })
}

// authorityData is the validation data of a timestamp's authority alone.
func (d *docSigner) authorityData(ctx context.Context, parts *ltvParts, token *tsa.Token) (pades.ValidationData, error) {
	var b vdBuilder
	if parts.revocation == nil {
		b.certs(token.Chain)
		return b.vd, nil
	}
	err := b.chain(ctx, parts.revocation, token.Chain, token.GenTime, d.revocationTimeoutOrDefault())
	return b.vd, err
}

// revocationTimeoutOrDefault bounds one chain's revocation fetch.
func (d *docSigner) revocationTimeoutOrDefault() time.Duration {
	if d.revocationTimeout > 0 {
		return d.revocationTimeout
	}
	return revocationTimeoutDefault
}

// checkGrowth refuses a PDF that grew past what the job was admitted with
// (api.MaxResultFor).
func (d *docSigner) checkGrowth(sd *signedDoc, pdf []byte) error {
	if grown := len(pdf) - sd.originalSize; grown > api.MaxPAdESGrowth {
		return fmt.Errorf("the signed PDF would grow by %d bytes, more than the %d a Result allows for", grown, api.MaxPAdESGrowth)
	}
	return nil
}

// stampCMS adds a signature timestamp to a CMS signature (CAdES-T): the
// token stamps the signature value, which the card made already.
func stampCMS(ctx context.Context, c *tsa.Client, der []byte) ([]byte, *tsa.Token, error) {
	sig, err := cms.SignatureValue(der)
	if err != nil {
		return nil, nil, err
	}
	tok, err := c.Stamp(ctx, crypto.SHA256, sig)
	if err != nil {
		return nil, nil, err
	}
	out, err := cms.AddSignatureTimestamp(der, tok.DER)
	if err != nil {
		return nil, nil, fmt.Errorf("add the signature timestamp: %w", err)
	}
	return out, tok, nil
}

// validationData is what a verifier needs decades on to check the
// signature without the network: the signer's chain and the timestamp
// authority's, and revocation data for both issued after the timestamp.
func (d *docSigner) validationData(ctx context.Context, parts *ltvParts, cert *x509.Certificate, token *tsa.Token) (pades.ValidationData, error) {
	var vd pades.ValidationData
	if parts.revocation == nil {
		return vd, errors.New("revocation.check is off")
	}
	if token == nil {
		return vd, errors.New("no timestamp to date the revocation data after")
	}
	anchors, cas := d.signerCAs()
	chain, err := chainOf(cert, anchors, cas, token.GenTime)
	if err != nil {
		return vd, fmt.Errorf("signer chain at the timestamp: %w", err)
	}
	if chain == nil {
		return vd, errors.New("no signer CAs are configured (signing.signer_ca_files): the chain to put in the validation data is unknown")
	}
	var b vdBuilder
	for _, c := range [][]*x509.Certificate{chain, token.Chain} {
		if err := b.chain(ctx, parts.revocation, c, token.GenTime, d.revocationTimeoutOrDefault()); err != nil {
			return pades.ValidationData{}, err
		}
	}
	return b.vd, nil
}

// vdBuilder gathers validation data, each certificate once.
type vdBuilder struct {
	vd   pades.ValidationData
	seen map[string]bool
}

func (b *vdBuilder) certs(cs []*x509.Certificate) {
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	for _, c := range cs {
		if !b.seen[string(c.Raw)] {
			b.seen[string(c.Raw)] = true
			b.vd.Certs = append(b.vd.Certs, c.Raw)
		}
	}
}

// chain adds chain (leaf first) and revocation data for it issued after
// at. A chain of one certificate was not verified (an authority without
// tsa.ca_files): it goes in, its revocation cannot be had.
func (b *vdBuilder) chain(ctx context.Context, checker revocationChecker, chain []*x509.Certificate, at time.Time, timeout time.Duration) error {
	b.certs(chain)
	if len(chain) < 2 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ev, err := checker.Check(ctx, chain, at)
	if err != nil {
		return fmt.Errorf("revocation data for %s: %w", chain[0].Subject.CommonName, err)
	}
	b.certs(ev.Certs)
	b.vd.OCSPs = append(b.vd.OCSPs, ev.OCSPs...)
	b.vd.CRLs = append(b.vd.CRLs, ev.CRLs...)
	return nil
}

// revocationTimeoutDefault bounds one chain's revocation fetch when the
// docSigner was built without revocation.timeout (tests).
const revocationTimeoutDefault = 10 * time.Second
