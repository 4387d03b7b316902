package pades

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/tsa"
)

// Stamper gets an RFC 3161 token whose message imprint is h(data);
// *tsa.Client is one.
type Stamper interface {
	Stamp(ctx context.Context, h crypto.Hash, data []byte) (*tsa.Token, error)
}

var _ Stamper = (*tsa.Client)(nil)

// reserveDocTimestamp is the room in /Contents for the token. Its size is
// known only once the authority answered, and the byte range, which
// covers everything around /Contents, has to be fixed before it is asked:
// a token with the authority's certificate and an intermediate or two is
// 2 to 8 KiB, so 16 KiB leaves room for a long chain.
const reserveDocTimestamp = 16384

// AddDocumentTimestamp appends a document timestamp (/Type /DocTimeStamp,
// /SubFilter /ETSI.RFC3161, ETSI EN 319 142-1 §5.4.3) over the whole
// file, the token got from s over the ByteRange content. With a DSS added
// before it, that makes the signatures it covers PAdES B-LTA.
//
// The timestamp is an invisible signature field like Sign's (on the first
// page, /Rect [0 0 0 0], /F 132), and its dictionary is written as an
// incremental update, so earlier signatures stay valid. The imprint is
// SHA-256. The token is checked before it is written: its signature, and
// that it stamps exactly these bytes (a Stamper may be any code).
//
// Errors: the document's (ErrMalformed, ErrEncrypted, ErrTooComplex,
// ErrActiveContent), ErrTimestamp when s fails or answers with a token
// that does not stamp the file (transient: another try may succeed), and
// ErrTooLarge when the token does not fit the room reserved (also matching
// ErrTimestamp). DocMDP is not checked: EN 319 142-1 §5.4 puts document
// timestamps outside its restrictions.
func AddDocumentTimestamp(ctx context.Context, pdf []byte, s Stamper) ([]byte, error) {
	if s == nil {
		return nil, errors.New("pades: nil stamper")
	}
	bud := newBudget(Limits{})
	d, err := parse(pdf, bud)
	if err != nil {
		return nil, err
	}
	out, br, contents, err := docTimestampUpdate(d)
	if bud.err != nil {
		return nil, bud.err
	}
	if err != nil {
		return nil, err
	}
	byteRange := fillByteRange(out, br, contents)
	signed := make([]byte, 0, byteRange[1]+byteRange[3])
	signed = append(append(signed, out[:byteRange[1]]...), out[byteRange[2]:]...)
	tok, err := s.Stamp(ctx, crypto.SHA256, signed)
	if err != nil {
		return nil, fmt.Errorf("%w: document timestamp: %w", ErrTimestamp, err)
	}
	if tok == nil || len(tok.DER) == 0 {
		return nil, fmt.Errorf("%w: document timestamp: the stamper returned no token", ErrTimestamp)
	}
	ts, err := cms.VerifyTimestampToken(tok.DER, cms.VerifyOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: document timestamp token: %w", ErrTimestamp, err)
	}
	if !ts.Stamps(signed) {
		return nil, fmt.Errorf("%w: document timestamp token stamps other bytes than the file's", ErrTimestamp)
	}
	if room := (contents[1] - contents[0] - 2) / 2; len(tok.DER) > room {
		return nil, fmt.Errorf("%w: document timestamp token of %d bytes, %d reserved: %w", ErrTimestamp, len(tok.DER), room, ErrTooLarge)
	}
	hex.Encode(out[contents[0]+1:], tok.DER)
	return out, nil
}

// docTimestampUpdate writes the update with the document timestamp's
// field and dictionary, /ByteRange and /Contents still placeholders.
func docTimestampUpdate(d *document) (out []byte, br int, contents [2]int, err error) {
	pages, err := d.pages()
	if err != nil {
		return nil, 0, [2]int{}, err
	}
	rootRef, cat, err := d.catalog()
	if err != nil {
		return nil, 0, [2]int{}, err
	}
	// A timestamp vouches for what the file shows, as a signature does;
	// the same refusal of active content holds. Embedded files are let
	// through: the signatures it covers accepted them under their Limits.
	if err := d.checkActive(pages, rootRef, cat, true); err != nil {
		return nil, 0, [2]int{}, err
	}
	u := newUpdate(d)
	sigNum, widgetNum := u.alloc(), u.alloc()
	u.begin(sigNum, 0)
	u.buf.WriteString("<</Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161\n")
	br, contents = u.placeholders(reserveDocTimestamp)
	u.buf.WriteString(">>")
	u.end()
	pg := pages[0]
	widget := dict{
		"Type": name("Annot"), "Subtype": name("Widget"), "FT": name("Sig"),
		"V": ref{sigNum, 0}, "P": pg.ref,
		// §12.5.3: Print (4) and Locked (128), as Sign's invisible field.
		"F":    int64(132),
		"Rect": array{0.0, 0.0, 0.0, 0.0},
	}
	if err := u.addField(rootRef, cat, pg, widgetNum, widget, ref{}); err != nil {
		return nil, 0, [2]int{}, err
	}
	if d.bud.err != nil {
		return nil, 0, [2]int{}, d.bud.err
	}
	return u.finish(), br, contents, nil
}
