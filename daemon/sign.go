package daemon

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
)

// docSigner turns a document and a card session into a signed document in
// the format the job asks for, with the engines of signature/.
type docSigner struct {
	metrics  *metrics
	log      *slog.Logger
	location *time.Location // of dates in visible signature blocks
	tsa      *pades.TSAOptions
	// limits are the ones intake inspected each document with, so the
	// signature refuses nothing intake accepted.
	limits pades.Limits
}

// signDocument signs one document in its requested format and checks the
// signature against the certificate before it is kept: a card that signs
// with another key than its certificate names must never yield a result.
//
// teken_card_sign_seconds observes the time the token spent on the
// document — reading the slot's key and making the signature — and not the
// rest (hashing, building the CMS or PDF, checking, a timestamp authority),
// so a slow token or reader shows there and a slow TSA does not.
func (d *docSigner) signDocument(ctx context.Context, s card, cert *x509.Certificate, doc api.Document, now time.Time) (api.SignedDocument, error) {
	m := d.metrics
	var onCard time.Duration
	defer func() { m.cardSign.Observe(onCard.Seconds()) }()
	signerStart := time.Now()
	card, err := s.Signer(device.SlotSignature)
	onCard += time.Since(signerStart)
	m.tokenTime(signerStart) // reads the slot's public key from the card
	if err != nil {
		return api.SignedDocument{}, err
	}
	signer := timedSigner{Signer: card, m: m, spent: &onCard}
	h, err := cms.DefaultHash(cert.PublicKey)
	if err != nil {
		return api.SignedDocument{}, fmt.Errorf("document %s: %w", doc.ID, err)
	}
	content := doc.Content
	hashOnly := len(content) == 0
	if hashOnly {
		// Only the dispatcher's SHA-256 is known (allow_hash_only).
		h = crypto.SHA256
	}
	digest, err := documentDigest(doc, h)
	if err != nil {
		return api.SignedDocument{}, err
	}
	out := api.SignedDocument{ID: doc.ID, SHA256: doc.SHA256, Format: doc.SignatureFormat(), SignedAt: now}
	switch out.Format {
	case api.FormatCMS:
		out.Signature, err = cms.SignDigest(ctx, digest, signer, cert, cms.SignOptions{Hash: h, SigningTime: now})
		if err != nil {
			return api.SignedDocument{}, fmt.Errorf("sign document %s: %w", doc.ID, err)
		}
		if !hashOnly {
			if _, err := cms.Verify(out.Signature, content, cms.VerifyOptions{CurrentTime: now}); err != nil {
				return api.SignedDocument{}, fmt.Errorf("check signature of document %s: %w", doc.ID, err)
			}
		}
	case api.FormatRaw:
		out.Signature, err = cms.SignRaw(ctx, digest, signer, cert, cms.RawOptions{Hash: h})
		if err != nil {
			return api.SignedDocument{}, fmt.Errorf("sign document %s: %w", doc.ID, err)
		}
		if !hashOnly {
			if err := cms.VerifyRaw(out.Signature, content, cert, cms.RawOptions{Hash: h}); err != nil {
				return api.SignedDocument{}, fmt.Errorf("check signature of document %s: %w", doc.ID, err)
			}
		}
	case api.FormatPAdES:
		signed, err := pades.Sign(ctx, content, signer, cert, d.padesOptions(doc, h, now))
		if err != nil {
			return api.SignedDocument{}, fmt.Errorf("sign PDF %s: %w", doc.ID, err)
		}
		out.Signature, out.Level = signed.PDF, api.LevelBB
		if signed.Timestamped {
			out.Level = api.LevelBT
		} else if signed.TimestampError != nil {
			out.TimestampError = signed.TimestampError.Error()
			d.log.Warn("signed PDF without timestamp", "document", doc.ID, "err", signed.TimestampError)
		}
	default:
		return api.SignedDocument{}, fmt.Errorf("document %s: format %q: %w", doc.ID, out.Format, device.ErrUnsupported)
	}
	return out, nil
}

// documentDigest hashes the document bytes the terminal holds, which are the
// bytes the official could open; the declared hash is used only for a
// hash-only job.
func documentDigest(doc api.Document, h crypto.Hash) ([]byte, error) {
	if len(doc.Content) == 0 {
		d, err := hex.DecodeString(doc.SHA256)
		if err != nil || len(d) != sha256.Size {
			return nil, fmt.Errorf("document %s: bad sha256 %q", doc.ID, doc.SHA256)
		}
		return d, nil
	}
	w := h.New()
	w.Write(doc.Content)
	return w.Sum(nil), nil
}

// padesOptions asks for the job's visible block, dated in the terminal's
// time zone, and a timestamp when a TSA is configured.
func (d *docSigner) padesOptions(doc api.Document, h crypto.Hash, now time.Time) pades.Options {
	return pades.Options{Hash: h, Time: now, Location: d.location, Visible: appearance(doc), TSA: d.tsa, Limits: d.limits}
}

// appearance is the visible block a pades document asks for, or nil.
func appearance(doc api.Document) *pades.Appearance {
	v := doc.Visible
	if v == nil {
		return nil
	}
	a := &pades.Appearance{Page: v.Page, VerifyURL: v.VerifyURL}
	if len(v.Rect) == 4 {
		copy(a.Rect[:], v.Rect)
	}
	return a
}
