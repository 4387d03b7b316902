package daemon

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
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
	parts    *ltvParts
	live     *atomic.Pointer[ltvParts] // when set, the parts a reload left (reload.go), in place of parts
	// signerCAs are the signer CAs in force, for the chain the
	// validation data holds (augment.go).
	signerCAs         signerCAs
	revocationTimeout time.Duration
	// limits are the ones intake inspected each document with, so the
	// signature refuses nothing intake accepted.
	limits pades.Limits
}

// signedDoc is a document signed in a card session, with what is left to
// do for it once the session has closed.
type signedDoc struct {
	api.SignedDocument
	// pending, when set, is a PAdES signature made with room for a
	// timestamp that the authority has still to give (augmentDocument,
	// after the card session). Its PDF is the same slice as Signature and
	// is patched in place.
	pending *pades.Signed
	// augment says the document is to be taken beyond B-B after the
	// card session, which asks the network; originalSize is the length
	// of the PDF as sent, which the signed one may outgrow only by
	// api.MaxPAdESGrowth.
	augment      bool
	originalSize int
}

// signDocument signs one document in its requested format and checks the
// signature against the certificate before it is kept: a card that signs
// with another key than its certificate names must never yield a result.
// It is card work only and makes no network request: a PAdES document is
// signed B-B with room reserved for the timestamp, which the batch adds
// after the card session (timestampDocument).
//
// teken_card_sign_seconds observes the time the token spent on the
// document — reading the slot's key and making the signature — and not the
// rest (hashing, building the CMS or PDF, checking), so a slow token or
// reader shows there; a timestamp authority is not even asked here.
func (d *docSigner) signDocument(ctx context.Context, s card, cert *x509.Certificate, doc api.Document, jabatan string, placed *kiosk.Block, now time.Time) (signedDoc, error) {
	m := d.metrics
	var onCard time.Duration
	defer func() { m.cardSign.Observe(onCard.Seconds()) }()
	signerStart := time.Now()
	card, err := s.Signer(device.SlotSignature)
	onCard += time.Since(signerStart)
	m.tokenTime(signerStart) // reads the slot's public key from the card
	if err != nil {
		return signedDoc{}, err
	}
	signer := timedSigner{Signer: card, m: m, spent: &onCard}
	h, err := cms.DefaultHash(cert.PublicKey)
	if err != nil {
		return signedDoc{}, fmt.Errorf("document %s: %w", doc.ID, err)
	}
	content := doc.Content
	hashOnly := len(content) == 0
	if hashOnly {
		// Only the dispatcher's SHA-256 is known (allow_hash_only).
		h = crypto.SHA256
	}
	digest, err := documentDigest(doc, h)
	if err != nil {
		return signedDoc{}, err
	}
	out := signedDoc{SignedDocument: api.SignedDocument{ID: doc.ID, SHA256: doc.SHA256, Format: doc.SignatureFormat(), SignedAt: now}, originalSize: len(content)}
	out.augment = d.ltv().wants(out.Format, api.LevelBT)
	switch out.Format {
	case api.FormatCMS:
		out.Signature, err = cms.SignDigest(ctx, digest, signer, cert, cms.SignOptions{Hash: h, SigningTime: now})
		if err != nil {
			return signedDoc{}, fmt.Errorf("sign document %s: %w", doc.ID, err)
		}
		if !hashOnly {
			if _, err := cms.Verify(out.Signature, content, cms.VerifyOptions{CurrentTime: now}); err != nil {
				return signedDoc{}, fmt.Errorf("check signature of document %s: %w", doc.ID, err)
			}
		}
	case api.FormatRaw:
		out.Signature, err = cms.SignRaw(ctx, digest, signer, cert, cms.RawOptions{Hash: h})
		if err != nil {
			return signedDoc{}, fmt.Errorf("sign document %s: %w", doc.ID, err)
		}
		if !hashOnly {
			if err := cms.VerifyRaw(out.Signature, content, cert, cms.RawOptions{Hash: h}); err != nil {
				return signedDoc{}, fmt.Errorf("check signature of document %s: %w", doc.ID, err)
			}
		}
	case api.FormatPAdES:
		// With a TSA configured, pades.Sign only reserves the room: the
		// timestamp is fetched after the card session.
		opts, err := d.padesOptions(doc, jabatan, placed, h, now)
		if err != nil {
			return signedDoc{}, fmt.Errorf("place the block of PDF %s: %w", doc.ID, err)
		}
		signed, err := pades.Sign(ctx, content, signer, cert, opts)
		if err != nil {
			return signedDoc{}, fmt.Errorf("sign PDF %s: %w", doc.ID, err)
		}
		if grown := len(signed.PDF) - len(content); grown > api.MaxPAdESGrowth {
			// The job was admitted on the promise that its Result fits
			// (api.MaxResultFor); a chain of certificates this long
			// would break it.
			return signedDoc{}, fmt.Errorf("sign PDF %s: the signature grew it by %d bytes, more than the %d a Result allows for", doc.ID, grown, api.MaxPAdESGrowth)
		}
		out.Signature, out.Level = signed.PDF, api.LevelBB
		if opts.TSA != nil {
			out.pending = signed
		}
		out.augment = out.augment && opts.TSA != nil
	default:
		return signedDoc{}, fmt.Errorf("document %s: format %q: %w", doc.ID, out.Format, device.ErrUnsupported)
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
// time zone, the lock a certifying ttd puts on the document, and, when a
// TSA is configured, room for its timestamp.
func (d *docSigner) padesOptions(doc api.Document, jabatan string, placed *kiosk.Block, h crypto.Hash, now time.Time) (pades.Options, error) {
	a, err := appearance(doc, jabatan, placed, d.limits)
	if err != nil {
		return pades.Options{}, err
	}
	o := pades.Options{Hash: h, Time: now, Location: d.location, Visible: a, Limits: d.limits, Certify: doc.Certify}
	if parts := d.ltv(); parts.wants(api.FormatPAdES, api.LevelBT) && parts.tsa != nil {
		o.TSA = &pades.TSAOptions{Client: parts.tsa}
	}
	return o, nil
}

// appearance is the visible block a pades document asks for, or nil: a
// ttd with the signer's jabatan, or a paraf; placed by page and rect, or
// at the anchor text found in the document (pades.ErrAnchorNotFound when
// it is not there). placed, when set, is where intake found the anchor's
// block: the document has not changed since, and the search is not paid
// again while the token waits.
func appearance(doc api.Document, jabatan string, placed *kiosk.Block, lim pades.Limits) (*pades.Appearance, error) {
	v := doc.Visible
	if v == nil {
		return nil, nil
	}
	a := &pades.Appearance{Page: v.Page, VerifyURL: v.VerifyURL, Jabatan: jabatan,
		Paraf: v.Mark == api.MarkParaf, Initials: v.Initials}
	if len(v.Rect) == 4 {
		copy(a.Rect[:], v.Rect)
	}
	if an := v.Anchor; an != nil && placed != nil {
		a.Page, a.Rect = placed.Page, placed.Rect
	} else if an != nil {
		found, err := pades.FindAnchor(doc.Content, pades.Anchor{Text: an.Text, Occurrence: an.Occurrence, Page: v.Page}, lim)
		if err != nil {
			return nil, err
		}
		w, h := pades.DefaultWidth, pades.DefaultHeight
		if a.Paraf {
			w, h = pades.ParafWidth, pades.ParafHeight
		}
		if len(an.Size) == 2 {
			w, h = an.Size[0], an.Size[1]
		}
		// The block's lower left corner at the anchor text's, moved by
		// the offset.
		x, y := found.Rect[0], found.Rect[1]
		if len(an.Offset) == 2 {
			x, y = x+an.Offset[0], y+an.Offset[1]
		}
		a.Page, a.Rect = found.Page, [4]float64{x, y, x + w, y + h}
	}
	return a, nil
}
