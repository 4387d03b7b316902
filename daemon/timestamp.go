package daemon

import (
	"context"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/pades"
)

// timestampDocument makes a PAdES document signed with room for a
// timestamp B-T: it asks the configured authority for a token over the
// signature value and writes it into the reserved room in place
// (pades.Timestamp; RFC 5126 §5.11.4, level B-T of ETSI EN 319 142-1).
// The token stamps the signature already made and changes nothing the
// signature covers, so no card is needed: the batch calls it after the
// card session has closed, and the token is never held while the network
// answers (up to tsa_timeout per document).
//
// The time it takes is neither teken_card_sign_seconds nor
// teken_token_busy_seconds_total: it is not the token's. An authority that
// fails leaves the document a valid B-B, and its Result says why in
// timestamp_error, as before.
func (d *docSigner) timestampDocument(ctx context.Context, sd *signedDoc) {
	p := sd.pending
	sd.pending = nil
	tsa := d.authority() // the one in force now (reload.go)
	if p == nil {
		return
	}
	if tsa == nil {
		sd.TimestampError = "signing.tsa_url was emptied by a reload after the document was signed"
		return
	}
	_, err := pades.Timestamp(ctx, p, *tsa)
	switch {
	case err != nil:
		// Not expected for a PDF pades.Sign has just made; its
		// signature was not touched and stays a valid B-B.
		d.log.Error("signed PDF cannot take a timestamp", "document", sd.ID, "err", err)
		sd.TimestampError = err.Error()
	case p.Timestamped:
		sd.Level = api.LevelBT
	default:
		sd.TimestampError = p.TimestampError.Error()
		d.log.Warn("signed PDF without timestamp", "document", sd.ID, "err", p.TimestampError)
	}
	sd.Signature = p.PDF // patched in place: the same bytes, now stamped
}
